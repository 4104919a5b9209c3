"""CLI commands of this package (registered by app/cli.py)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
