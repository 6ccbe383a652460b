"""The fuzzing campaign (``benchmarks/fuzz.py``) at one case of each kind: slow, left out of the default run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_benchmark


@pytest.mark.slow
def test_no_damaged_or_absurd_input_gets_a_traceback_a_hang_or_a_false_output(tmp_path: Path) -> None:
    fuzz = load_benchmark("fuzz")
    cases = fuzz.campaign(per_kind=1, seed=0, timeout=120, work=tmp_path)
    kinds = {c.kind for c in cases}
    assert kinds == set(fuzz.MUTATIONS) | set(fuzz.MADE) | {"whole"}
    assert [f"{c.kind} {c.name}: {c.problem}" for c in cases if c.problem] == []
    assert all(c.returncode in (0, 1) for c in cases if not c.command.startswith("(not made"))
