"""The process's named helper threads: one single-thread executor per name, shared by
every user in the process (a batch of episodes leaves no idle threads behind) and
forgotten in a forked child, which has none of its parent's threads."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_THREADS: dict[str, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def thread(name: str) -> ThreadPoolExecutor:
    """The one thread called ``name`` (started on first use)."""
    with _LOCK:
        pool = _THREADS.get(name)
        if pool is None:
            pool = _THREADS[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        return pool


def started(name: str) -> ThreadPoolExecutor | None:
    """The thread called ``name`` if it was started, else None (nothing is started)."""
    with _LOCK:
        return _THREADS.get(name)


def _forget() -> None:
    _THREADS.clear()


os.register_at_fork(after_in_child=_forget)
