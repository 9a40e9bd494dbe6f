"""The `kit` executable's entry point. Ctrl-C and SIGTERM are taken before
anything else is imported, so a signal while kit starts ends it with one
line and exit code 130 (never a traceback, never killed outright); kit.cli
then makes them stop a run cleanly.

scripts/kit-launcher.c (the installed `kit`) blocks both signals before it
starts Python, and run_as_command() lets them in once the handlers below
are set: even a signal in the first millisecond is taken here."""
import os
import signal
import sys

_STOP = {signal.SIGINT, signal.SIGTERM}


def _stopped_while_starting(signum, frame):
    os.write(2, b"kit: interrupted\n")
    os._exit(130)       # nothing has started: nothing to stop or clean up


for _signum in _STOP:
    signal.signal(_signum, _stopped_while_starting)

# numpy's OpenBLAS keeps a thread per CPU that spins for a while after each
# call it serves: on the machine being measured that is CPU taken from the
# engines' threads (posixaio's helper, a thread pool). kit's arrays are
# small; one thread does. Only in kit's own command: `import kit` in
# someone's notebook leaves their numpy as they have it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# papermill imports nbformat, which imports jsonschema, which builds an IRI
# grammar with lark at import when rfc3987-syntax is installed (JupyterLab
# brings it): 2-3 s of every kit command that publishes. kit checks no IRI,
# and jsonschema leaves that format unchecked without it. Only in kit's own
# command, as above.
sys.modules.setdefault("rfc3987_syntax", None)


def main():
    """Runs the command; a signal that comes once it has finished (while
    Python shuts down, which puts back the default: death by signal) is
    ignored: the work is done and said."""
    from .cli import main as cli_main
    code = None
    try:
        code = cli_main()
    except KeyboardInterrupt:           # between the command's end and here
        pass
    while True:                 # ignored, not blocked: any thread may be the one a signal reaches
        try:
            for signum in _STOP:
                signal.signal(signum, signal.SIG_IGN)
            break
        except KeyboardInterrupt:       # yet another Ctrl-C while setting that up
            code = None
    if code is None:
        os.write(2, b"kit: interrupted\n")
        code = 130
    return code


def run_as_command():
    """The launcher's way in: sys.argv is ["-c", args...]."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP)     # a signal that came early is taken now
    sys.argv[0] = "kit"
    sys.exit(main())
