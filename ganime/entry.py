"""The ``ganime`` command's entry point: light enough that Ctrl-C during start-up is one line."""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point (``ganime``, ``python -m ganime``)."""
    try:
        from .cli import main as run  # torch, PyAV, ...: seconds on a cold start
    except KeyboardInterrupt:
        sys.stderr.write("interrupted while starting: nothing was written\n")
        raise SystemExit(130) from None
    run()
