"""The process's named helper threads: one single-thread executor per name, shared by
every user in the process (a batch of episodes leaves no idle threads behind) and
forgotten in a forked child, which has none of its parent's threads."""

from __future__ import annotations

import os
import sys
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


def lower_priority(nice: int) -> bool:
    """Lower the calling thread's scheduling priority by ``nice`` steps; the threads it
    starts afterwards inherit it. Linux only, where a thread's id names the thread alone
    to ``setpriority`` (elsewhere it could name another process): nothing is done there.
    Returns whether the priority was lowered."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + nice))
    except (OSError, AttributeError):
        return False
    return True


def _forget() -> None:
    _THREADS.clear()


os.register_at_fork(after_in_child=_forget)
