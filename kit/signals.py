"""Ctrl-C and SIGTERM held over a step that must not be cut in half: a
program half attached, a child started but not yet known to its parent."""
import contextlib
import signal
import threading


@contextlib.contextmanager
def held():
    """Ctrl-C and SIGTERM wait until the block ends: a KeyboardInterrupt
    halfway would leave BPF programs loaded for the rest of a notebook's
    life, let bcc close descriptors twice, or lose a child process that was
    started but not yet returned (never reaped). The signal is noted, then
    delivered once, as the block ends. (Blocking it would not do: the kernel
    hands a process's signal to any thread that does not block it, and
    Python acts on it in the main thread all the same.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    signals = (signal.SIGINT, signal.SIGTERM)
    old = {signum: signal.signal(signum, lambda signum, _frame: caught.append(signum)) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])
