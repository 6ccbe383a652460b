"""The fuzzing campaign (``benchmarks/fuzz.py``) at one case of each kind: slow, left out of the default run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_no_damaged_or_absurd_input_gets_a_traceback_a_hang_or_a_false_output(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("fuzz", ROOT / "benchmarks" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    fuzz = importlib.util.module_from_spec(spec)
    sys.modules["fuzz"] = fuzz  # its dataclasses look their module up
    spec.loader.exec_module(fuzz)
    cases = fuzz.campaign(per_kind=1, seed=0, timeout=120, work=tmp_path)
    kinds = {c.kind for c in cases}
    assert kinds == set(fuzz.MUTATIONS) | set(fuzz.MADE)
    assert [f"{c.kind} {c.name}: {c.problem}" for c in cases if c.problem] == []
    assert all(c.returncode in (0, 1) for c in cases if not c.command.startswith("(not made"))
