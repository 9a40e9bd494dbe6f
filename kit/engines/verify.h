/*
 * verify.h - the on-disk pattern kit writes and checks.
 *
 * Every KIT_VERIFY_UNIT bytes of a file carry a header (magic, the unit's own
 * file offset, the writer's seed, a crc32c) and a payload derived from
 * (offset, seed). Any bs that is a multiple of the unit can therefore be
 * checked, whichever bs wrote the file, and a misplaced block is caught by
 * its offset even when its checksum is fine.
 */
#ifndef KIT_VERIFY_H
#define KIT_VERIFY_H

#include "kit.h"

#define KIT_VERIFY_MAGIC 0x3179667276746b69ull /* "iktvrfy1" little-endian */

struct kit_unit_header {
	uint64_t magic;
	uint64_t offset;
	uint64_t seed;
	uint32_t crc;        /* crc32c of the unit with this field zeroed */
	uint32_t reserved;
};

#endif
