"""The `roadsight` command: one entry point, one error style.

Each area registers its own commands (model/cli.py, engines/cli.py, calibration/cli.py,
app/commands.py); heavy imports happen inside the commands, so `roadsight --help` is instant and
works without torch.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from engines.errors import RoadsightError
from engines.meta import __version__

app = typer.Typer(
    name="roadsight",
    help=(
        "Real-time driving perception: vehicles, drivable area and lane lines from one network,\n\n"
        "from training to an INT8 TensorRT engine to a live, measured stream.\n\n"
        "Typical flow: data synth -> train -> val -> export -> quantize -> build -> run / bench."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"roadsight {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """roadsight: multi-task driving perception for the edge."""


def _register_all() -> None:
    from app import commands as app_commands
    from calibration import cli as calibration_cli
    from engines import cli as engines_cli
    from model import cli as model_cli

    for module in (model_cli, engines_cli, calibration_cli, app_commands):
        module.register(app)


def main() -> None:
    """Console-script entry: run the CLI, turn a RoadsightError into one line and exit code 1."""
    _register_all()
    try:
        app()
    except RoadsightError as error:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
