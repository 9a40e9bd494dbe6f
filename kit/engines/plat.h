/*
 * plat.h - a latency's bin in kit's histograms (fio's io_u_plat layout,
 * stat.c): the one definition, for the storage driver and the network load
 * generator alike, so both fill bins kit.hist reads the same way.
 */
#ifndef KIT_PLAT_H
#define KIT_PLAT_H

#include "kit.h"

static inline unsigned plat_val_to_idx(uint64_t val)
{
	unsigned msb, error_bits, base, offset, idx;

	msb = val ? 63 - __builtin_clzll(val) : 0;
	if (msb <= KIT_PLAT_BITS)
		return (unsigned)val;
	error_bits = msb - KIT_PLAT_BITS;
	base = (error_bits + 1) << KIT_PLAT_BITS;
	offset = (KIT_PLAT_VAL - 1) & (val >> error_bits);
	idx = base + offset;
	return idx < KIT_PLAT_NR ? idx : KIT_PLAT_NR - 1;
}

#endif
