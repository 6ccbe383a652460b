"""Sources that failed on their own content, remembered so that a rerun does not decode them again.

A damaged episode (cut short, or with no picture that decodes) fails only after it
has been decoded to its end, which costs as long as converting it. Rerunning a season
to pick up where it stopped would spend that again on every damaged file and fail
the same way. Such a failure is remembered by the file's path, size and modification
time and by the options that decide it (the excerpt, ``--keep-incomplete``): while
none of them changes, the file fails at once, saying when and why it failed before
and how to try again. Replacing the file (a new rip, a repaired download) or asking
differently tries again on its own; ``--retry`` does so regardless.

The record is a small JSON file under ``$GANIME_HOME`` (``~/.cache/ganime``),
written whole (temporary name, then renamed), so two runs never leave it torn.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .weights import store_dir

_LIMIT = 2000  # entries kept; the oldest go first


@dataclass(frozen=True)
class Failure:
    """A remembered failure: when it happened and the one-line reason it gave."""

    when: float  # seconds since the epoch
    message: str

    def describe(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.when))
        return f"failed before ({stamp}) and has not changed since: {self.message}"


def log_path() -> Path:
    """Where failures are remembered (beside the weight store)."""
    return store_dir().parent / "failures.json"


def _key(src: Path) -> str:
    return str(src.resolve())


def _identity(src: Path, attempt: str) -> dict[str, object]:
    st = src.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "attempt": attempt}


def _load(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: nothing is remembered
    return data if isinstance(data, dict) else {}


def _save(path: Path, data: dict[str, dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def lookup(src: Path, attempt: str) -> Failure | None:
    """The failure remembered for ``src`` as it is now, asked as ``attempt``, or None."""
    entry = _load(log_path()).get(_key(src))
    try:
        if entry is None or {k: entry.get(k) for k in ("size", "mtime_ns", "attempt")} != _identity(src, attempt):
            return None
        return Failure(float(entry["when"]), str(entry["message"]))
    except (OSError, KeyError, TypeError, ValueError):
        return None


def remember(src: Path, attempt: str, message: str) -> None:
    """Remember that ``src``, as it is now, failed on its content when asked as ``attempt``.

    Best effort: a cache that cannot be written costs only the time it would save.
    """
    try:
        path = log_path()
        data = _load(path)
        data[_key(src)] = {**_identity(src, attempt), "when": time.time(), "message": message}
        if len(data) > _LIMIT:
            for k in sorted(data, key=lambda k: data[k].get("when", 0))[: len(data) - _LIMIT]:
                del data[k]
        _save(path, data)
    except OSError:
        pass


def forget(src: Path) -> None:
    """Forget ``src`` (it converted after all). Best effort, as ``remember``."""
    try:
        path = log_path()
        data = _load(path)
        if data.pop(_key(src), None) is not None:
            _save(path, data)
    except OSError:
        pass
