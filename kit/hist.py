"""Latency histograms in fio's io_u_plat layout (stat.c), and fio's way of
reading percentiles from them, so kit's and fio's numbers agree bucket for
bucket (and fio's json+ "bins" can be read into the same arrays)."""
import numpy as np

PLAT_BITS = 6
PLAT_VAL = 1 << PLAT_BITS
PLAT_GROUP_NR = 29
PLAT_NR = PLAT_GROUP_NR * PLAT_VAL

# fio's default percentile_list
PERCENTILES = (1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0,
               90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99)


def idx_to_val(idx):
    """The value fio reports for bucket idx: exact below 128, else the midpoint."""
    idx = np.asarray(idx, dtype=np.int64)
    error_bits = np.maximum((idx >> PLAT_BITS) - 1, 0)
    base = np.left_shift(np.int64(1), error_bits + PLAT_BITS)
    k = idx % PLAT_VAL
    mid = base + ((k + 0.5) * np.left_shift(np.int64(1), error_bits)).astype(np.int64)
    return np.where(idx < (PLAT_VAL << 1), idx, mid)


def val_to_idx(val):
    val = np.asarray(val, dtype=np.int64)
    msb = np.where(val > 0, np.floor(np.log2(np.maximum(val, 1))).astype(np.int64), 0)
    # log2 can round up just below a power of two: correct it exactly
    msb = np.where(np.left_shift(np.int64(1), msb) > val, msb - 1, msb)
    error_bits = msb - PLAT_BITS
    idx = ((error_bits + 1) << PLAT_BITS) + ((PLAT_VAL - 1) & np.right_shift(val, np.maximum(error_bits, 0)))
    return np.where(msb <= PLAT_BITS, val, np.minimum(idx, PLAT_NR - 1))


BUCKET_VALUES = idx_to_val(np.arange(PLAT_NR))


def percentile_key(p):
    return "%f" % p


def percentiles(counts, n=None, plist=PERCENTILES):
    """fio's calc_clat_percentiles: for each p, the first bucket whose running
    count reaches p/100 * n. Returns {"99.000000": ns, ...}; {} when empty."""
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum()) if n is None else n
    if n <= 0:
        return {}
    cum = np.cumsum(counts)
    out = {}
    for p in sorted(plist):
        i = int(np.searchsorted(cum, p / 100.0 * n, side="left"))
        out[percentile_key(p)] = int(BUCKET_VALUES[min(i, PLAT_NR - 1)])
    return out


def to_bins(counts):
    """Sparse json+ form: {"<bucket value>": count} for non-empty buckets."""
    counts = np.asarray(counts)
    nz = np.nonzero(counts)[0]
    return {str(int(BUCKET_VALUES[i])): int(counts[i]) for i in nz}


def from_bins(bins):
    """Dense counts from json+ bins (fio's or kit's)."""
    counts = np.zeros(PLAT_NR, dtype=np.int64)
    if bins:
        vals = np.array([int(k) for k in bins], dtype=np.int64)
        counts_in = np.array(list(bins.values()), dtype=np.int64)
        np.add.at(counts, val_to_idx(vals), counts_in)
    return counts
