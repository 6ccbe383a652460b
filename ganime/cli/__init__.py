"""The ``ganime`` command line: maps flags to library calls and owns the terminal.

Exit codes: 0 every file converted (or skipped as already done), 1 some file failed,
2 usage error (bad flag, missing input).

One module per group of commands: ``convert`` (convert, probe), ``quality`` (eval,
preview), ``train``, ``models``; ``app`` holds the application and shared helpers.
"""

from . import convert, models, quality, train  # noqa: F401 - importing them registers their commands
from .app import app, main

__all__ = ["app", "main"]
