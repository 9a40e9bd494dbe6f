/*
 * registry.c - the list of engines. Adding an engine: one C file defining a
 * struct kit_engine (or a .cpp file exposing one as extern "C"), and its line
 * here. Python reads names from this list.
 */
#include "engine.h"

#ifndef KIT_SOURCE_HASH
#define KIT_SOURCE_HASH "unknown"
#endif
#ifndef KIT_LIBURING_VERSION
#define KIT_LIBURING_VERSION "unknown"
#endif

/* one line per engine, in the order `kit doctor` lists them */
#define ENGINE_LIST(X) \
	X(sync)        \
	X(psync)       \
	X(threadpool)  \
	X(posixaio)    \
	X(libaio)      \
	X(io_uring)    \
	X(asio)        \
	X(stdasync)    \
	X(null)

#define DECLARE(name) extern const struct kit_engine kit_engine_##name;
#define ENTRY(name) &kit_engine_##name,
ENGINE_LIST(DECLARE)

static const struct kit_engine *const engines[] = { ENGINE_LIST(ENTRY) };

#define NR_ENGINES ((int)(sizeof(engines) / sizeof(engines[0])))

const struct kit_engine *kit_engine_get(int index)
{
	return index >= 0 && index < NR_ENGINES ? engines[index] : NULL;
}

int kit_engine_count(void)
{
	return NR_ENGINES;
}

const char *kit_engine_name(int index)
{
	return index >= 0 && index < NR_ENGINES ? engines[index]->name : NULL;
}

const char *kit_engine_framework(int index)
{
	return index >= 0 && index < NR_ENGINES ? engines[index]->framework : NULL;
}

int kit_engine_is_sync(int index)
{
	return index >= 0 && index < NR_ENGINES ? engines[index]->sync : -1;
}

const char *kit_source_hash(void)
{
	return KIT_SOURCE_HASH;
}

const char *kit_liburing_version(void)
{
	return KIT_LIBURING_VERSION;
}
