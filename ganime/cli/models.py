"""``ganime models``: list, pull and import weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..models import REGISTRY, build_model, default_model, find_weights, import_lama
from ..models import pull as pull_model
from ..weights import WeightsError
from ..weights import store_dir as weights_store
from .app import app, err, out

models_app = typer.Typer(help="List, download and import models.", no_args_is_help=False)


app.add_typer(models_app, name="models")


def _count_parameters(name: str) -> int:
    return sum(p.numel() for p in build_model(name).parameters())


@models_app.callback(invoke_without_command=True)
def models_list(ctx: typer.Context) -> None:
    """List every model: size, where its weights come from, whether they are here."""
    if ctx.invoked_subcommand is not None:
        return
    table = Table(title="ganime models", title_justify="left")
    for col in ("name", "parameters", "weights", "source", "what it does"):
        table.add_column(col)
    best = default_model()
    for name, spec in REGISTRY.items():
        label = f"{name} (default)" if name == best else name
        params = _count_parameters(name)
        size = f"{params / 1e6:.1f} M" if params else "-"
        if not spec.needs_weights:
            state, source = "none needed", "-"
        else:
            path = find_weights(name)
            state = f"[green]present[/] {escape(str(path))}" if path else "[yellow]missing[/]"
            if spec.source is not None:
                src = spec.source
                source = f"hf://{src.repo}/{src.filename}@{src.revision[:12]} ({src.license or spec.license})"
            else:
                source = "import (see `ganime models import-lama`)"
        table.add_row(label, size, state, escape(source), escape(spec.summary))
    out.print(table)


@models_app.command("pull")
def models_pull(name: Annotated[str, typer.Argument(help="A model with a download (see `ganime models`).")]) -> None:
    """Download a model's weights from the Hugging Face Hub and install them."""
    if name not in REGISTRY:
        raise typer.BadParameter(f"unknown model {name!r} (choose from {', '.join(REGISTRY)})", param_hint="NAME")
    try:
        with err.status(f"downloading {name}"):
            path = pull_model(name)
    except WeightsError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    out.print(f"installed {name}: {escape(str(path))}")


@models_app.command("import-lama")
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
    try:
        path = import_lama(checkpoint, dest, half=half)
    except WeightsError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    out.print(f"wrote {escape(str(path))}")
