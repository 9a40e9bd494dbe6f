"""The statistics measurements are judged by, in one place: the sweeps decide
what to measure again with them, and the pages what to claim.

IOPS are not normal and a few repeats support no t interval, so every
figure here is a median, an order statistic or a rank test (numpy only).
"""
import numpy as np

UNSTABLE_CV = 0.10      # pyperf warns when the stdev exceeds 10 % of the mean
BOOTSTRAP = 2000

# A trend is claimed only when a rank test finds one (Mann-Kendall, two-sided
# 1 %) and it is large enough to matter: the last third of the samples
# differs from the first third by more than this share of the median.
TREND_Z = 2.576
TREND_PCT = 10.0
MIN_TREND_SAMPLES = 6   # fewer windows than this say nothing about a trend
DRIFT_PCT = 10.0        # a point's repeats that rise (or fall) in time order by more than this
SUITE_DRIFT_PCT = 5.0   # the whole measurement: later runs above their points' medians by more than this


def median_interval(values, seed=0):
    """The median and a 95 % interval for it: a percentile bootstrap from 5
    repeats on, the observed min and max below that. Either way the interval
    lies within what was measured: never below zero, never symmetric by
    assumption (IOPS are not normal, and 2 repeats support no t interval).
    NaN values (a run that measured nothing) are left out."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if not len(v):
        return float("nan"), float("nan"), float("nan")
    med = float(np.median(v))
    if len(v) < 5:
        return med, float(v.min()), float(v.max())
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(v, size=(BOOTSTRAP, len(v)), replace=True), axis=1)
    return med, float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def spread(values):
    """The width of median_interval relative to the median (0.25: the
    interval spans a quarter of the median); NaN below two values."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) < 2:
        return float("nan")
    med, lo, hi = median_interval(v)
    return (hi - lo) / med if med else float("inf") if hi > lo else 0.0


def unstable(values):
    """The repeats disagree: their interval is wider than ±10 % of the
    median (pyperf's rule), the interval the pages draw."""
    s = spread(values)
    return bool(s == s and s > 2 * UNSTABLE_CV)


def mann_kendall_z(values):
    """Mann-Kendall's trend statistic as a normal score: positive when later
    values tend to be higher (ties count as neither; continuity corrected)."""
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n < 3:
        return 0.0
    diff = np.sign(v[None, :] - v[:, None])
    s = float(np.triu(diff, 1).sum())
    var = n * (n - 1) * (2 * n + 5) / 18.0
    if s == 0:
        return 0.0
    return (s - np.sign(s)) / np.sqrt(var)


def _thirds_change(v, scale):
    third = max(len(v) // 3, 1)
    return 100.0 * (float(np.mean(v[-third:])) - float(np.mean(v[:third]))) / scale


def trend(values):
    """A trend within one run, from its IOPS per window in time order:
    {"change_pct": last third against first third, in % of the median,
    "z": Mann-Kendall's score, "trend": both beyond noise}, or None when the
    run has too few windows to tell (or measured nothing)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) < MIN_TREND_SAMPLES:
        return None
    med = float(np.median(v))
    if med <= 0:
        return None
    change, z = _thirds_change(v, med), mann_kendall_z(v)
    return {"change_pct": round(change, 1), "z": round(float(z), 2),
            "trend": bool(abs(z) > TREND_Z and abs(change) > TREND_PCT)}


def drift(values):
    """A point's repeats in the order they ran: the change from the first to
    the last in % of their median when they rise (or fall) at every step
    and by more than DRIFT_PCT in all, else 0.0; None below 3 repeats."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) < 3:
        return None
    med = float(np.median(v))
    steps = np.diff(v)
    if med <= 0 or not (np.all(steps > 0) or np.all(steps < 0)):
        return 0.0
    change = 100.0 * (v[-1] - v[0]) / med
    return round(change, 1) if abs(change) > DRIFT_PCT else 0.0


def suite_drift(runs):
    """Whether the device (or the machine) changed during a whole
    measurement: runs are (time order, point, value); each run is compared
    with its own point's median, and those ratios tested for a trend over
    the measurement's time. Returns {"change_pct", "z", "drift", "runs"} or
    None when fewer than 9 runs of points measured at least twice."""
    by_point = {}
    for order, point, value in runs:
        if value == value:
            by_point.setdefault(point, []).append((order, value))
    rel = []
    for seq in by_point.values():
        if len(seq) < 2:
            continue
        med = float(np.median([v for _o, v in seq]))
        if med > 0:
            rel += [(o, v / med - 1.0) for o, v in seq]
    if len(rel) < 9:
        return None
    rel.sort(key=lambda x: x[0])
    dev = np.array([d for _o, d in rel])
    change, z = _thirds_change(dev, 1.0), mann_kendall_z(dev)
    return {"change_pct": round(change, 1), "z": round(float(z), 2), "runs": len(rel),
            "drift": bool(abs(z) > TREND_Z and abs(change) > SUITE_DRIFT_PCT)}


# Whether two sets of repeats differ: a rank test (Mann-Whitney), exact by
# permutation while the arrangements are few. No rank test can reach 5 %
# with fewer than 4 repeats a side (3 and 3: the most extreme arrangement
# still comes 1 time in 10 by chance; 2 and 2: 1 in 3, non-overlapping
# min-max ranges), and one sample a side says nothing of the noise at all.
SIGNIFICANCE = 0.05
EXACT_ARRANGEMENTS = 20_000


def _clean(values):
    v = np.asarray(values, dtype=float)
    return v[~np.isnan(v)]


def _ranks(pooled):
    """Ranks 1..n, ties sharing their mean rank."""
    order = np.argsort(pooled, kind="stable")
    ranks = np.empty(len(pooled))
    ranks[order] = np.arange(1, len(pooled) + 1)
    for value in np.unique(pooled):
        tied = pooled == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def rank_test(a, b):
    """Two-sided p-value of Mann-Whitney's rank test of A against B (NaN
    left out): exact over every arrangement of the pooled ranks while they
    are at most EXACT_ARRANGEMENTS, else the normal approximation (ties
    corrected). 1.0 when a side is empty."""
    import itertools
    import math
    a, b = _clean(a), _clean(b)
    if not len(a) or not len(b):
        return 1.0
    pooled = np.concatenate([a, b])
    ranks = _ranks(pooled)
    n, na = len(pooled), len(a)
    expected = na * (n + 1) / 2.0
    observed = abs(ranks[:na].sum() - expected)
    if math.comb(n, na) <= EXACT_ARRANGEMENTS:
        picks = np.array(list(itertools.combinations(range(n), na)))
        sums = ranks[picks].sum(axis=1)
        return float(np.mean(np.abs(sums - expected) >= observed - 1e-9))
    nb = n - na
    ties = sum(c ** 3 - c for c in np.unique(pooled, return_counts=True)[1])
    var = na * nb / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = max(observed - 0.5, 0.0) / math.sqrt(var)
    return float(math.erfc(z / math.sqrt(2)))


def smallest_p(na, nb):
    """The rank test's smallest possible p-value with na and nb repeats (all
    of one side above all of the other): 2 / C(na + nb, na)."""
    import math
    return min(1.0, 2.0 / math.comb(na + nb, na)) if na and nb else 1.0


def repeats_needed(na, nb):
    """The repeats a side (at least as many as either has) with which the
    rank test could tell the two apart at SIGNIFICANCE at all."""
    n = max(na, nb, 1)
    while smallest_p(n, n) > SIGNIFICANCE:
        n += 1
    return n


def apart(a, b):
    """Whether two sets of repeats differ beyond run-to-run noise:
    {"apart": the rank test at SIGNIFICANCE, "p", "n": (na, nb),
    "enough": whether so few repeats could show a difference at all,
    "needed": repeats a side that could}."""
    a, b = _clean(a), _clean(b)
    p = rank_test(a, b)
    return {"apart": bool(p <= SIGNIFICANCE), "p": p, "n": (len(a), len(b)),
            "enough": smallest_p(len(a), len(b)) <= SIGNIFICANCE, "needed": repeats_needed(len(a), len(b))}
