"""CLI commands for data, training, evaluation, model info and export (registered by app/cli.py).

Implementations are imported inside each command: torch loads only for commands that need it.
"""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(help="Datasets in the BDD100K multi-task layout (images, JSON boxes, PNG masks).", no_args_is_help=True)
model_app = typer.Typer(help="Inspect the network: sizes, attention variants, parameters and GFLOPs.", no_args_is_help=True)


@data_app.command("synth")
def data_synth(
    out: Path = typer.Option(..., "--out", help="Folder to write (BDD100K multi-task layout)."),
    n: int = typer.Option(200, "--n", min=1, help="Number of scenes (split into train/val)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; another seed gives a disjoint set."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", min=0.0, max=1.0, help="Share of scenes in val/."),
    video: Path | None = typer.Option(None, "--video", help="Also write a 1280x720 drive clip to this .mp4."),
    frames: int = typer.Option(300, "--frames", min=1, help="Frames in the --video clip."),
) -> None:
    """Generate procedural driving scenes with exact labels.

    Examples:

      roadsight data synth --out data/synth --n 2000 --seed 0

      roadsight data synth --out data/val --n 300 --seed 1 --val-fraction 1

      roadsight data synth --out data/clip --n 1 --video data/drive.mp4 --frames 600
    """
    from model.synth import synth_command

    synth_command(out=out, n=n, seed=seed, val_fraction=val_fraction, video=video, frames=frames)


def register(app: typer.Typer) -> None:
    """Add data/model/train/val/export commands to the root app."""
    app.add_typer(data_app, name="data")
    app.add_typer(model_app, name="model")
