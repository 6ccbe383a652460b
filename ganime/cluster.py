"""A library converted on a Ray cluster: one Ray task per episode.

``ganime convert Library/ -o out/ --ray [ADDRESS]`` plans the batch as a local run does
(same inputs, same output names, finished outputs skipped), then runs every episode
as a Ray task: one GPU each where the cluster has GPUs, else one CPU (the task's torch
then uses one thread, so tasks do not fight over cores). Each task is an ordinary
``convert_file`` on a worker: the output is written as ``NAME.partial.EXT`` and renamed
when complete, so a worker killed mid-episode leaves no half-written output, and Ray
runs the task again (``RETRIES``). A failing episode is reported like a local failure
and never stops the others. Workers report their frames to a small actor, so the
driver shows overall progress (episodes done, frames per second, ETA).

Ray is optional (``pip install 'ganime[ray]'``); the files must be at the same paths on
every node (a shared disk), as they are for a local Ray.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .pipeline import (
    ConvertError,
    ConvertOptions,
    Result,
    convert_file,
    own_outputs_skipped,
    plan_outputs,
    remembered_failure,
    scan_inputs,
)

RETRIES = 3  # runs of an episode whose worker died (a killed process, a lost node)
REPORT_EVERY = 0.25  # seconds between a worker's progress reports


class RayUnavailable(RuntimeError):
    """Ray is not installed or the cluster cannot be reached."""


@dataclass(frozen=True)
class Overall:
    """Progress of the whole batch on the cluster."""

    episodes: int
    done: int
    frames: int  # frames converted so far, over every episode
    total: int | None  # frames expected in all, when every episode's length is known
    elapsed: float
    running: dict[int, tuple[int, int | None, int]] = field(default_factory=dict)  # index -> frames, total, pid

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        if not self.total or not self.frames:
            return None
        return (self.total - self.frames) / max(self.fps, 1e-9)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray needs Ray: pip install 'ganime[ray]'") from None
    return ray


class _Tally:
    """Frames each running episode has converted (a Ray actor: workers report, the driver reads)."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[int, int | None, int]] = {}

    def report(self, index: int, frames: int, total: int | None, pid: int) -> None:
        self.seen[index] = (frames, total, pid)

    def snapshot(self) -> dict[int, tuple[int, int | None, int]]:
        return dict(self.seen)


def _convert_episode(src: str, dst: str, options: ConvertOptions, tally: object, index: int, files: int) -> dict:
    """One episode on a worker; plain data back (a Result holds exceptions and probes)."""
    last = [0.0]

    def progress(p: object) -> None:
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY or getattr(p, "done", False):
            last[0] = now
            tally.report.remote(index, p.frames, p.total, os.getpid())  # type: ignore[attr-defined]

    try:
        r = convert_file(src, dst, options, progress, index=index, files=files)
    except ConvertError as e:
        return {"status": "failed", "message": str(e)}
    except Exception as e:  # noqa: BLE001 - one bad episode must not stop a library
        return {"status": "failed", "message": f"{src}: {type(e).__name__}: {e}"}
    return {
        "status": r.status,
        "message": r.message,
        "frames": r.frames,
        "seconds": r.seconds,
        "fill_seconds": r.fill_seconds,
        "decode_errors": r.decode_errors,
        "warnings": list(r.warnings),
    }


def convert_on_ray(
    inputs: Iterable[str | Path],
    output: str | Path | None = None,
    options: ConvertOptions | None = None,
    address: str | None = None,
    progress: Callable[[Overall], None] | None = None,
    on_result: Callable[[Result], None] | None = None,
    poll: float = 0.25,
) -> list[Result]:
    """Convert files and folders with one Ray task per episode; results in input order.

    ``address``: a running cluster (``auto``, ``ray://host:10001``, ``host:6379``), or
    None / ``local`` to start a Ray on this machine for the run.
    """
    ray = _import_ray()
    options = options or ConvertOptions()
    out = Path(output) if output is not None else None
    scan = scan_inputs(inputs)
    planned = plan_outputs(scan.found, out, options.aspect)
    skipped = own_outputs_skipped(scan, on_result)
    started_here = not ray.is_initialized()
    if started_here:
        try:
            local = address in (None, "", "local")
            ray.init(address=None if local else address, include_dashboard=False, log_to_driver=False)
        except Exception as e:  # noqa: BLE001 - any reason the cluster cannot be reached is one line
            raise RayUnavailable(f"cannot start or reach Ray at {address or 'local'}: {e}") from None
    try:
        return skipped + _run(ray, planned, options, progress, on_result, poll)
    finally:
        if started_here:
            ray.shutdown()


def _run(
    ray: object,
    planned: list[tuple[Path, Path | None, Path]],
    options: ConvertOptions,
    progress: Callable[[Overall], None] | None,
    on_result: Callable[[Result], None] | None,
    poll: float,
) -> list[Result]:
    results: dict[int, Result] = {}
    gpus = ray.cluster_resources().get("GPU", 0) > 0  # type: ignore[attr-defined]
    task = ray.remote(_convert_episode).options(  # type: ignore[attr-defined]
        num_gpus=1 if gpus else 0,
        num_cpus=1,
        max_retries=RETRIES,
        # One torch thread per task on CPU: tasks, not threads, share the cores.
        runtime_env=None if gpus else {"env_vars": {"OMP_NUM_THREADS": "1"}},
    )
    tally = ray.remote(_Tally).remote()  # type: ignore[attr-defined]
    pending: dict[object, int] = {}
    for i, (src, _root, dst) in enumerate(planned):
        if dst.exists() and not options.overwrite:  # a finished episode: as a local batch skips it
            results[i] = Result(src, dst, "skipped", "output exists (use --overwrite to replace it)")
        else:
            known = remembered_failure(src, dst, options)  # damaged, and not decoded again
            if known is None:
                pending[task.remote(str(src), str(dst), options, tally, i, len(planned))] = i
                continue
            results[i] = known
        if on_result:
            on_result(results[i])
    started = time.perf_counter()
    finished_frames = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll)  # type: ignore[attr-defined]
        for ref in ready:
            i = pending.pop(ref)
            src, _root, dst = planned[i]
            try:
                data = ray.get(ref)  # type: ignore[attr-defined]
            except Exception as e:  # noqa: BLE001 - the task failed beyond its retries
                data = {"status": "failed", "message": f"{src}: worker failed ({type(e).__name__}: {e})"}
            results[i] = Result(
                src,
                dst if data["status"] != "failed" else None,
                data["status"],
                data.get("message", ""),
                data.get("frames", 0),
                data.get("seconds", 0.0),
                data.get("decode_errors", 0),
                warnings=data.get("warnings", []),
                fill_seconds=data.get("fill_seconds", 0.0),
            )
            finished_frames += results[i].frames
            if on_result:
                on_result(results[i])
        if progress:
            seen = ray.get(tally.snapshot.remote())  # type: ignore[attr-defined]
            running = {i: v for i, v in seen.items() if i in pending.values()}
            frames = finished_frames + sum(f for f, _, _ in running.values())
            totals = [t for _, t, _ in running.values()]
            total = None
            if not any(t is None for t in totals) and len(running) == len(pending):
                total = finished_frames + sum(t or 0 for t in totals)
            done = sum(1 for r in results.values() if r.status != "skipped")
            progress(Overall(len(planned), done, frames, total, time.perf_counter() - started, running))
    return [results[i] for i in range(len(planned))]
