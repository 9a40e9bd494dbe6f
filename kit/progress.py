"""Progress bars for long work: tqdm (a widget in Jupyter, a line on a
terminal), and nothing at all when output is not interactive."""
import contextlib
import sys


def interactive():
    if "ipykernel" in sys.modules:
        return True
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


class _Quiet:
    def update_to(self, n, **postfix):
        pass


class _Bar:
    def __init__(self, t):
        self.t = t

    def update_to(self, n, **postfix):
        if n > self.t.n:
            self.t.update(n - self.t.n)
        if postfix:
            self.t.set_postfix(postfix, refresh=False)


@contextlib.contextmanager
def bar(total, label, unit="", enabled=None, file=None):
    """enabled: True, False, or None for 'when someone is watching'.
    file: where the bar goes, sys.stderr by default."""
    file = file or sys.stderr
    if enabled is False or (enabled is None and not interactive()) or not total or file is None:
        yield _Quiet()
        return
    from tqdm.auto import tqdm
    with tqdm(total=total, desc=label, unit=unit, unit_scale=True, leave=False,
              file=file, dynamic_ncols=True) as t:
        yield _Bar(t)
