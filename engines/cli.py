"""CLI commands of this package: build (registered by app/cli.py).

Implementations are imported inside each command, so `roadsight --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import typer


def build(
    onnx: Path = typer.Option(..., "--onnx", help="ONNX model with roadsight metadata (FP32, FP16 or INT8 Q/DQ)."),
    out: Path = typer.Option(None, "--out", "-o", help="Engine file to write (default: ONNX name with .engine); a .json sidecar goes next to it."),
    batch: str = typer.Option(None, "--batch", "-b", help="N, or MIN,OPT,MAX for a dynamic-batch ONNX (default: the ONNX's batch, 1 if dynamic)."),
    workspace: float = typer.Option(4.0, "--workspace", min=0.0625, help="TensorRT workspace limit in GiB."),
    timing_cache: Path = typer.Option(None, "--timing-cache", help="Tactic timing cache file: read if it exists, then updated (faster rebuilds)."),
    device: int = typer.Option(0, "--device", min=0, help="GPU index to build for."),
) -> None:
    """Build a TensorRT engine from an ONNX model (strongly typed: the ONNX sets every precision).

    The engine runs only with the same TensorRT version on the same GPU architecture; the sidecar OUT.json records both, and loading the engine checks them.

    Examples:

      roadsight build --onnx model.onnx --out model.engine

      roadsight build --onnx model.int8-trt.onnx --batch 1,4,8 --workspace 2 --timing-cache trt.cache
    """
    from rich.console import Console

    from engines.build import build_engine

    console = Console()
    out = out or onnx.with_suffix(".engine")
    build_engine(onnx, out, batch=batch, workspace_gib=workspace, timing_cache=timing_cache, device=device, log=console.print)
    console.print(f"wrote [bold]{out}[/] and {out.name}.json")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
    app.command("build")(build)
