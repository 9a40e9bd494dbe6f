"""The two kinds of failure a user sees.

OptionError: the request itself is wrong (bad option, unsafe target). The CLI
prints its one line and exits 2 before anything is written.
RunError: a valid request failed on this machine (I/O error, verify mismatch,
missing kernel feature). The CLI prints its line and exits 1.
"""


class KitError(Exception):
    """Base for errors kit explains in one line."""


class OptionError(KitError, ValueError):
    """An option has a value kit cannot accept; says which and what is allowed."""

    def __init__(self, option, problem):
        self.option = option
        self.problem = problem
        super().__init__(f"{option}: {problem}" if option else problem)


class RunError(KitError, RuntimeError):
    """A run could not be done, or stopped on an error, on this machine."""
