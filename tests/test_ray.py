"""``convert --ray``: a library on a local 2-CPU Ray, against the same batch run locally."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import cartoon_frames, decoded_frames

from ganime import pipeline, synthetic

ray = pytest.importorskip("ray")
from ganime import cluster  # noqa: E402 - only where Ray is installed


@pytest.fixture(scope="module")
def local_ray() -> object:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def library(root: Path, episodes: int, frames: int, width: int = 64, height: int = 48) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(episodes):
        clip = cartoon_frames(frames, width, height, seed=i, pan=1.0)
        synthetic.write_clip(root / f"ep{i}.mkv", clip, Fraction(24), synthetic.melody(frames / 24))
    return root


OPTIONS = pipeline.ConvertOptions(model="edge", device="cpu")


def test_a_library_on_ray_is_the_local_batch(local_ray: object, tmp_path: Path) -> None:
    # 100x76 is widened to a width that is not a multiple of 16, where libx264 reads
    # memory of its own it never wrote (the writer keeps that steady): the same bytes.
    lib = library(tmp_path / "lib", 3, 12, 100, 76)
    (lib / "broken.mkv").write_bytes(b"\x1a\x45\xdf\xa3 not a video")  # one bad episode
    local = pipeline.convert_many([lib], tmp_path / "local", OPTIONS)
    seen: list[cluster.Overall] = []
    remote = cluster.convert_on_ray([lib], tmp_path / "ray", OPTIONS, progress=seen.append)
    assert [r.status for r in remote] == [r.status for r in local] == ["failed", "converted", "converted", "converted"]
    assert "broken.mkv" in remote[0].message
    for a, b in zip(local[1:], remote[1:], strict=True):
        assert b.output is not None and b.output.parent == tmp_path / "ray" and b.frames == a.frames == 12
        assert b.output.read_bytes() == a.output.read_bytes()  # the same file, byte for byte
    assert seen and seen[-1].done == 4 and seen[-1].frames == 36
    again = cluster.convert_on_ray([lib], tmp_path / "ray", OPTIONS)  # finished episodes are skipped
    assert [r.status for r in again] == ["failed", "skipped", "skipped", "skipped"]


def test_a_worker_killed_mid_episode_is_run_again(local_ray: object, tmp_path: Path) -> None:
    lib = library(tmp_path / "lib", 2, 72)
    killed: list[int] = []

    def kill_first_worker(o: cluster.Overall) -> None:
        for frames, _total, pid in o.running.values():
            if not killed and frames > 0:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    results = cluster.convert_on_ray([lib], tmp_path / "out", OPTIONS, progress=kill_first_worker)
    assert killed, "no worker reported progress before finishing"
    assert [r.status for r in results] == ["converted", "converted"]
    for r in results:
        assert len(decoded_frames(r.output)) == 72
    assert not list((tmp_path / "out").glob("*.partial*"))  # nothing half-written is left


def test_without_ray_the_flag_says_so_in_one_line(tmp_path: Path) -> None:
    lib = library(tmp_path / "lib", 1, 4)
    code = (
        "import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
        "from ganime.cli import main; sys.argv = ['ganime', 'convert', sys.argv[1], '--ray', '-m', 'edge']; main()"
    )
    out = subprocess.run([sys.executable, "-c", code, str(lib)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "pip install 'ganime[ray]'" in out.stderr and "Traceback" not in out.stderr
    assert not list(lib.glob("*16x9*"))
