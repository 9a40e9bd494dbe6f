/*
 * registry.c - the list of engines. Adding an engine: one C file exporting a
 * struct kit_engine, one extern line in engine.h, one line here.
 */
#include "engine.h"

#ifndef KIT_SOURCE_HASH
#define KIT_SOURCE_HASH "unknown"
#endif
#ifndef KIT_LIBURING_VERSION
#define KIT_LIBURING_VERSION "unknown"
#endif

static const struct kit_engine *const engines[] = {
	&kit_engine_sync,
	&kit_engine_psync,
	&kit_engine_threadpool,
	&kit_engine_posixaio,
	&kit_engine_libaio,
	&kit_engine_io_uring,
};

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
