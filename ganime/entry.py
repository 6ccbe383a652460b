"""The ``ganime`` command's entry point: light enough that Ctrl-C during start-up is one line."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a killed job, a stopped container, a closed terminal).

    A KeyboardInterrupt, so that it stops a conversion where Ctrl-C does and leaves
    as little behind: the file being written is removed. The exit code is 128 plus
    the signal's number, as a shell reports a process the signal ended.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def what(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def exit_code(e: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 128 + N for signal N."""
    return e.exit_code if isinstance(e, Terminated) else 130


_signalled: int | None = None  # the termination signal received, if any


def _terminate(signum: int, frame: FrameType | None) -> None:
    global _signalled
    # Once: a second signal while the first one's clean-up runs must not cut it short.
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    _signalled = signum
    raise Terminated(signum)


def main() -> None:
    """Console-script entry point (``ganime``, ``python -m ganime``)."""
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _terminate)
    try:
        from .cli import main as run  # torch, PyAV, ...: seconds on a cold start
    except KeyboardInterrupt as e:
        what = e.what if isinstance(e, Terminated) else "interrupted"
        sys.stderr.write(f"{what} while starting: nothing was written\n")
        raise SystemExit(exit_code(e)) from None
    try:
        run()
    except SystemExit as e:
        if _signalled is None:
            raise
        # Stopped by SIGTERM or SIGHUP, its clean-up done (the partial output removed, the
        # line said): leave now, without tearing down torch and PyAV. Under load, one such
        # exit in CI ended in a segmentation fault instead of exit code 129.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(e.code if isinstance(e.code, int) else 128 + _signalled)
