"""The Typer application, the consoles and the helpers every command shares."""

from __future__ import annotations

import re
from typing import Annotated, NoReturn, Optional

import click
import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from .. import __version__
from ..entry import Terminated, exit_code
from ..models import REGISTRY, find_weights


class Command(typer.core.TyperCommand):
    """A command whose usage line names its arguments as command-line tools do
    (``INPUTS...``, ``[OUTPUT]``), where typer 0.29 writes ``{inputs}...``."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        pieces = []
        for piece in super().collect_usage_pieces(ctx):
            m = re.fullmatch(r"([{\[])([\w-]+)[}\]](\.\.\.)?", piece)
            if m is None:
                pieces.append(piece)
                continue
            name = m[2].upper().replace("-", "_") + (m[3] or "")
            pieces.append(name if m[1] == "{" else f"[{name}]")
        return pieces


app = typer.Typer(
    name="ganime",
    help="Convert 4:3 animation to 16:9 by generating the missing sides.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)


err = Console(stderr=True, highlight=False, soft_wrap=True)  # one error, one line, however long its path


out = Console(highlight=False)


def _version(value: bool) -> None:
    if value:
        out.print(f"ganime {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],  # noqa: UP045 - typer reads the annotation
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """ganime: 4:3 animation to 16:9, sides generated, everything else kept."""


def usage_error(flag: str, message: str) -> NoReturn:
    """A usage error found before any file is opened: one line naming the option, exit 2."""
    err.print(f"[red]error:[/] {escape(flag)}: {escape(message)}")
    raise typer.Exit(2)


def check_device(spec: str) -> None:
    """A ``--device`` this machine cannot use is a usage error, before any file is opened."""
    from ..engine import select_device

    try:
        select_device(spec)
    except ValueError as e:
        usage_error("--device", str(e))


def parse_time(text: str | None, flag: str) -> float | None:
    """Seconds from ``90``, ``1:30`` or ``00:01:30.5``."""
    if text is None:
        return None
    if not re.fullmatch(r"\d+(\.\d+)?|(\d+:){1,2}\d+(\.\d+)?", text.strip()):
        raise typer.BadParameter(f"not a time: {text!r} (use seconds or [HH:]MM:SS[.ms])", param_hint=flag)
    seconds = 0.0
    for part in text.strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def on_off(text: str, hint: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off"):
        raise typer.BadParameter(f"expected on or off, got {text!r}", param_hint=hint)
    return value == "on"


def model_list(text: str | None) -> tuple[str, ...]:
    """Names from ``--model a,b``; by default every model that can run here."""
    runnable = [n for n, s in REGISTRY.items() if not s.needs_weights or find_weights(n) is not None]
    names = tuple(n.strip() for n in (text or ",".join(runnable)).split(",") if n.strip())
    for n in names:
        if n not in REGISTRY:
            raise typer.BadParameter(f"unknown model {n!r} (choose from {', '.join(REGISTRY)})", param_hint="--model")
    return names


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt as e:  # outside a command's own handling (Click's, while parsing)
        err.print(f"[yellow]{stop_word(e)}[/]: nothing was written")
        raise SystemExit(exit_code(e)) from None


def stop_word(e: KeyboardInterrupt) -> str:
    """What stopped the command, in a word or three: Ctrl-C or a signal."""
    return e.what if isinstance(e, Terminated) else "interrupted"
