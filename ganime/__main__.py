"""``python -m ganime``."""

from .cli import main

main()
