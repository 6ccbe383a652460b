"""``ganime models``: list, pull and import weights."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ..models import REGISTRY, build_model, default_model, find_weights, import_lama
from ..models import pull as pull_model
from ..weights import WeightsError
from ..weights import shipped_dir as weights_shipped
from ..weights import store_dir as weights_store
from .app import Command, app, err, out


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """A weight file that cannot be fetched, read or written: one line, exit 1."""
    try:
        yield
    except WeightsError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None


models_app = typer.Typer(help="List, download and import models.", no_args_is_help=False)


app.add_typer(models_app, name="models")


def _count_parameters(name: str) -> int:
    return sum(p.numel() for p in build_model(name).parameters())


def _weights_state(name: str) -> tuple[str, str]:
    """(short state for the table, where the weights come from / are)."""
    spec = REGISTRY[name]
    if not spec.needs_weights:
        return "built in", "weight-free"
    path = find_weights(name)
    if path is not None and path.parent == weights_shipped():
        return "shipped", f"shipped with ganime ({path})"
    if spec.source is not None:
        src = spec.source
        where = f"hf://{src.repo}/{src.filename}@{src.revision[:12]} ({src.license or spec.license})"
        how = f"`ganime models pull {name}`"
    else:
        where, how = "no download", spec.how_to_get or "--weights FILE"
    if path is not None:
        return "present", f"{where}; installed: {path}"
    return "missing", f"{where}; get it: {how}"


@models_app.callback(invoke_without_command=True)
def models_list(ctx: typer.Context) -> None:
    """List every model: size, whether its weights are here, what it does, where weights come from."""
    if ctx.invoked_subcommand is not None:
        return
    # Fits 80 columns and pipes whole: names never wrap or get cut, long text folds,
    # and the long sources and paths go below the table, one line each.
    table = Table(title="ganime models", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("weights", no_wrap=True)
    table.add_column("what it does", overflow="fold", ratio=1)
    best = default_model()
    notes = []
    for name, spec in REGISTRY.items():
        params = _count_parameters(name)
        state, where = _weights_state(name)
        colour = {"missing": "yellow", "present": "green", "shipped": "green"}.get(state)
        table.add_row(
            name + (" *" if name == best else ""),
            f"{params / 1e6:.2f} M" if params else "-",
            f"[{colour}]{state}[/]" if colour else state,
            escape(spec.summary),
        )
        if spec.needs_weights:
            notes.append(f"{name}: {escape(where)}")
    out.print(table)
    out.print("* the default model")
    for line in notes:
        out.print(line, soft_wrap=True)


@models_app.command("pull", cls=Command)
def models_pull(name: Annotated[str, typer.Argument(help="A model with a download (see `ganime models`).")]) -> None:
    """Download a model's weights from the Hugging Face Hub and install them."""
    if name not in REGISTRY:
        raise typer.BadParameter(f"unknown model {name!r} (choose from {', '.join(REGISTRY)})", param_hint="NAME")
    with _one_line_errors(), err.status(f"downloading {name}"):
        path = pull_model(name)
    out.print(f"installed {name}: {escape(str(path))}")


@models_app.command("import-lama", cls=Command)
def models_import_lama(
    checkpoint: Annotated[Path, typer.Argument(help="Official LaMa best.ckpt, its zip, or a safetensors conversion.")],
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Argument(help="The ganime weight file to write (default: install under --name)."),
    ] = None,
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Install as this registered model (big-lama, lama-fourier, anime-lama)."),
    ] = None,
    half: Annotated[bool, typer.Option(help="Store half-precision tensors (half the size).")] = False,
) -> None:
    """Convert a LaMa checkpoint into a ganime weight file (tensors only; nothing else is unpickled)."""
    if output is None and name is None:
        raise typer.BadParameter("give an OUTPUT file or --name to install it as", param_hint="OUTPUT")
    if name is not None and (name not in REGISTRY or REGISTRY[name].arch != "lama"):
        lamas = ", ".join(n for n, s in REGISTRY.items() if s.arch == "lama")
        raise typer.BadParameter(f"{name!r} is not a LaMa model ({lamas})", param_hint="--name")
    dest = output or weights_store() / f"{name}.safetensors"
    with _one_line_errors():
        path = import_lama(checkpoint, dest, {"model": name} if name else None, half=half)
    out.print(f"wrote {escape(str(path))}")


@models_app.command("import-segmenter", cls=Command)
def models_import_segmenter(
    onnx_file: Annotated[Path, typer.Argument(help="A released u2net.onnx or u2netp.onnx (rembg's).")],
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Argument(help="The ganime weight file to write (default: install it as the character segmenter)."),
    ] = None,
) -> None:
    """Convert a U²-Net ONNX file into the character segmenter's weights (needs ganime[onnx])."""
    from .. import segment

    with _one_line_errors():
        path = segment.import_onnx(onnx_file, output or weights_store() / "u2net.safetensors")
    out.print(f"wrote {escape(str(path))}")
