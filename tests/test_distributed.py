"""``torchrun -m ganime train`` with two CPU processes (gloo): one run, sharded data, exact resume."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import cartoon_frames
from PIL import Image

from ganime import synthetic, weights
from ganime.train.data import DataOptions, Samples, gather


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("footage")
    for s in range(2):
        synthetic.write_clip(root / f"clip{s}.mkv", cartoon_frames(10, 86, 48, seed=s, pan=1.0), crf=10)
    for s in range(4):
        Image.fromarray(cartoon_frames(1, 86, 48, seed=100 + s)[0]).save(root / f"still{s}.png")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(footage: Path, out: Path, steps: int, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "ganime", "train", "-d", str(footage), "-o", str(out), "-m", "big-lama",
           "--set", "n_blocks=1", "--set", "ngf=8", "--height", "32", "--batch-size", "2", "--device", "cpu",
           "--steps", str(steps), "--val-every", "2", "--checkpoint-every", "2", *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def why(run: subprocess.CompletedProcess) -> str:
    """What a failed run printed, from a crash's Python stacks when one was dumped."""
    at = run.stderr.find("Fatal Python error")
    return run.stderr[at : at + 6000] if at >= 0 else run.stderr[-3000:]


def test_each_rank_draws_from_its_own_shard(footage: Path) -> None:
    options = DataOptions(height=32, width=56)
    train, val = gather([footage], options)
    ranks = [Samples(train, val, options, seed=0, shard=(r, 2)) for r in range(2)]
    ids = [{id(f) for f in s.frames} for s in ranks]
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    assert not torch.equal(ranks[0].batch(0, 2)[0], ranks[1].batch(0, 2)[0])


def test_torchrun_trains_on_two_processes_and_resumes_exactly(footage: Path, tmp_path: Path) -> None:
    whole = torchrun(footage, tmp_path / "whole.safetensors", 4)
    assert whole.returncode == 0, why(whole)
    log = [json.loads(line) for line in (tmp_path / "whole.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3, 4]  # rank 0 alone logs
    state = torch.load(tmp_path / "whole.ckpt", weights_only=True)
    assert state["step"] == 4 and state["rng"].shape[0] == 2  # every rank's RNG, to resume exactly

    first = torchrun(footage, tmp_path / "part.safetensors", 2)
    assert first.returncode == 0, why(first)
    resumed = torchrun(footage, tmp_path / "part.safetensors", 4, "--resume", str(tmp_path / "part.ckpt"))
    assert resumed.returncode == 0, why(resumed)
    a = torch.load(tmp_path / "whole.ckpt", weights_only=True)["g"]
    b = torch.load(tmp_path / "part.ckpt", weights_only=True)["g"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # Rank 0 wrote the weights that validated best, at one of the validation steps.
    _, _, tensors, meta = weights.read(tmp_path / "whole.safetensors")
    assert int(meta["trained_steps"]) in (0, 2, 4) and tensors
