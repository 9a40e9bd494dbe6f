"""An independent reader of kit's on-disk pattern (kit/engines/verify.h),
in numpy: every 512-byte unit holds magic, its own offset, the writer's seed,
a crc32c, and 480 payload bytes from a splitmix64 stream of (offset ^ seed)."""
import numpy as np

UNIT = 512
MAGIC = 0x3179667276746B69
PREFILL_SEED = 0x6B6974
WORDS = (UNIT - 32) // 8
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def expected_payload(offsets, seeds):
    k = np.arange(1, WORDS + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (offsets ^ seeds)[:, None] + k[None, :] * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _C1
        z = (z ^ (z >> np.uint64(27))) * _C2
        return z ^ (z >> np.uint64(31))


def read_units(path, size):
    with open(path, "rb") as fh:
        raw = np.frombuffer(fh.read(size), dtype=np.uint64).reshape(-1, UNIT // 8)
    return raw


def check(path, size):
    """{'seeds': per-unit seed array, 'ok': every unit is a well-formed unit at
    its own offset with the payload its seed implies, 'bad_units': indexes}."""
    units = read_units(path, size)
    offsets = np.arange(len(units), dtype=np.uint64) * np.uint64(UNIT)
    seeds = units[:, 2]
    good = (units[:, 0] == np.uint64(MAGIC)) & (units[:, 1] == offsets)
    good &= np.all(units[:, 4:] == expected_payload(offsets, seeds), axis=1)
    return {"seeds": seeds, "ok": bool(good.all()), "bad_units": np.nonzero(~good)[0]}
