"""kit: measure and explain Linux I/O engines.

    import kit
    r = kit.run(kit.Job(ioengine="libaio", rw="randread", bs="4k", iodepth=16))
    r.to_frame()
"""
import importlib

__version__ = "0.1.0"

# Loaded on first use, so that `kit` (the command) starts in milliseconds and
# `import kit` stays light without bcc, numpy or the compiled engines.
_PUBLIC = {"Job": "job", "Result": "results", "run": "api", "KitError": "errors",
           "OptionError": "errors", "RunError": "errors", "run_net": "api", "NetJob": "net.job"}

__all__ = ["Job", "Result", "run", "run_net", "NetJob", "trace", "KitError", "OptionError", "RunError",
           "__version__"]


def __getattr__(name):
    if name == "trace":
        from .tracers import Trace
        return Trace
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    try:
        return importlib.import_module(f".{name}", __name__)     # kit.target, kit.fio, ...
    except ModuleNotFoundError:
        raise AttributeError(f"module 'kit' has no attribute {name!r}") from None
