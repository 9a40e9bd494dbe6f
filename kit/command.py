"""The `kit` executable's entry point: it takes Ctrl-C and SIGTERM before
anything else is imported, so that a signal while kit starts ends it with
one line and exit code 130 (never a traceback, never killed outright), then
hands over to kit.cli, which makes them stop a run cleanly."""
import os
import signal


def _stopped_while_starting(signum, frame):
    os.write(2, b"kit: interrupted\n")
    os._exit(130)       # nothing has started: nothing to stop or clean up


for _signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_signum, _stopped_while_starting)


def main():
    from .cli import main as cli_main
    return cli_main()
