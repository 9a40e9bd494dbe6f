"""kit: measure and explain Linux I/O engines.

    import kit
    r = kit.run(kit.Job(ioengine="libaio", rw="randread", bs="4k", iodepth=16))
    r.to_frame()
"""
__version__ = "0.1.0"

from .errors import KitError, OptionError, RunError  # noqa: E402
from .job import Job  # noqa: E402
from .results import Result  # noqa: E402
from .runner import run  # noqa: E402

__all__ = ["Job", "Result", "run", "trace", "KitError", "OptionError", "RunError", "__version__"]


def __getattr__(name):
    # the tracers load on first use: `import kit` stays light without bcc
    if name == "trace":
        from .tracers import Trace
        return Trace
    raise AttributeError(f"module 'kit' has no attribute {name!r}")
