"""``ganime train``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .. import video
from ..entry import exit_code
from ..models import PREFERENCE, REGISTRY
from ..weights import WeightsError
from .app import Command, app, err, out, stop_word


def _config_overrides(items: list[str] | None) -> dict:
    """``--set n_blocks=3 --set ngf=32`` -> {"n_blocks": 3, "ngf": 32} (numbers parsed)."""
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _other_rank() -> bool:
    """Under torchrun, ranks other than 0 train quietly (rank 0 reports for the run)."""
    return int(os.environ.get("RANK", "0") or 0) > 0


@app.command(cls=Command)
def train(
    data: Annotated[
        list[Path], typer.Option("--data", "-d", help="Videos, images or folders of them (16:9 or wider).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="The weight file to write (.safetensors).")],
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--model", "-m", help="Model to train (its architecture). Default: the best neural model."),
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps.")] = 1000,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per step.")] = 8,
    lr: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(min=0.0, help="Generator learning rate (Adam). Default: LaMa 1e-3, others 2e-4."),
    ] = None,
    set_: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--set", help="Model config override, e.g. --set n_blocks=3 (repeatable)."),
    ] = None,
    init: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Start from these weights: a model name or a .safetensors file (fine-tuning)."),
    ] = None,
    resume: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Continue an interrupted run exactly from its checkpoint."),
    ] = None,
    val_every: Annotated[int, typer.Option(min=1, help="Validate (and keep the best weights) every N steps.")] = 200,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            min=1,
            help="Write OUTPUT.ckpt every N steps: all --resume needs, so both networks and both Adam states"
            " (GLCIC's is ~170 MB, nearly all of it the discriminator's, beside a 2 MB weight file); delete it"
            " once the run is final.",
        ),
    ] = 200,
    height: Annotated[int, typer.Option(min=16, help="Training height (the width is 16:9 of it).")] = 144,
    ssim_weight: Annotated[
        float, typer.Option(min=0.0, help="Add this weight of 1 - SSIM to the family's losses (0: the papers').")
    ] = 0.0,
    val_frames: Annotated[int, typer.Option(min=1, help="Held-out frames scored at each validation.")] = 128,
    perceptual: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Folder of perceptual weights (VGG16 for the loss, LPIPS for validation).",
            envvar="GANIME_PERCEPTUAL",
        ),
    ] = None,
    perceptual_weight: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(min=0.0, help="Weight of the VGG16 perceptual loss. Default: LaMa 30, others 0."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.", envvar="GANIME_DEVICE")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for initialisation and data order.")] = 0,
) -> None:
    """Fine-tune or train a model on your own shows (16:9 footage is its own ground truth)."""
    from ..train import StepReport, Stopped, Trainer, TrainOptions

    name = model or next((n for n in PREFERENCE if REGISTRY[n].needs_weights), "glcic")
    if name not in REGISTRY:
        raise typer.BadParameter(f"unknown model {name!r} (choose from {', '.join(REGISTRY)})", param_hint="--model")
    width = round(height * 16 / 9 / 8) * 8
    options = TrainOptions(
        data=data, output=output, model=name, steps=steps, batch_size=batch_size, lr=lr,
        config=_config_overrides(set_), init=init, resume=resume, val_every=val_every,
        checkpoint_every=checkpoint_every, device=device, seed=seed, height=height // 8 * 8, width=width,
        ssim_weight=ssim_weight, val_frames=val_frames, perceptual=perceptual, perceptual_weight=perceptual_weight,
    )  # fmt: skip
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=_other_rank(),
    )
    task = progress.add_task(f"train {name}", total=steps, info="")

    def show(r: StepReport) -> None:
        text = " ".join(f"{k} {v:.4f}" for k, v in r.losses.items())
        if r.val:
            text += f" | val PSNR {r.val['psnr']:.2f} SSIM {r.val['ssim']:.3f}"
            if "lpips" in r.val:
                text += f" LPIPS {r.val['lpips']:.4f}"
        progress.update(task, completed=r.step, info=escape(text))

    try:
        with progress:
            trainer = Trainer(options, progress=show)
            shots, frames, vshots, vframes = trainer.shots
            err.print(f"training on {frames} frames in {shots} shots; validating on {vframes} frames in {vshots} shots")
            for note in trainer.notes:
                err.print(f"[yellow]note:[/] {escape(note)}")
            progress.update(task, completed=trainer.step)
            path = trainer.run()
    except (ValueError, FileNotFoundError, WeightsError, video.VideoError, FloatingPointError) as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    except Stopped as e:
        err.print(f"[yellow]{escape(str(e))}[/] (best weights so far in {escape(str(output))})")
        raise typer.Exit(130) from None
    except KeyboardInterrupt as e:
        err.print(f"[yellow]{stop_word(e)}[/]: the last checkpoint written, if any, resumes the run (--resume)")
        raise typer.Exit(exit_code(e)) from None
    if _other_rank():
        return
    best = f"LPIPS {trainer.best:.4f}" if trainer.validation.score == "lpips" else f"PSNR {trainer.best:.2f} dB"
    out.print(f"wrote {escape(str(path))} ({_mb(path)}; best validation {best}, {trainer.step} steps)")
    if trainer.best_step == 0 and trainer.step > 0:
        # Said plainly: a fine-tune that never beat its start leaves the weights as they were.
        out.print("no validation beat the start: the file holds the weights the run started from")
    ckpt = trainer.o.checkpoint
    if ckpt is not None and ckpt.exists():
        out.print(
            f"checkpoint {escape(str(ckpt))} ({_mb(ckpt)}): what --resume needs to go on exactly,"
            f" {trainer.state_summary()}; delete it once the run is final"
        )


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"
