"""``python -m ganime``."""

from .entry import main

main()
