"""CLI commands of this package: predict and build (registered by app/cli.py).

Implementations are imported inside each command, so `roadsight --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import typer


def predict(
    model: Path = typer.Option(..., "--model", "-m", help="Model: .onnx (ONNX Runtime), .engine (TensorRT) or .pt (PyTorch)."),
    source: str = typer.Option(..., "--source", "-s", help="An image, a folder of images or a quoted glob such as 'imgs/*.jpg'."),
    save_dir: Path = typer.Option(Path("runs/predict"), "--save-dir", help="Folder for annotated images and one JSON per image."),
    conf: float = typer.Option(0.25, "--conf", min=0.0, max=1.0, help="Keep detections scoring above this."),
    iou: float = typer.Option(0.45, "--iou", min=0.0, max=1.0, help="NMS IoU threshold (class-aware)."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu, cuda[:N] or tensorrt[:N] for ONNX Runtime; openvino or openvino:GPU for OpenVINO; .engine files always use the GPU."),
    masks: bool = typer.Option(False, "--masks", help="Also store the drivable/lane masks in the JSON files (run-length encoded)."),
) -> None:
    """Detect vehicles and segment drivable area and lanes in images.

    Writes SAVE_DIR/NAME (boxes, drivable area and lanes drawn) and SAVE_DIR/STEM.json (detections in frame pixels, drivable fraction, lane pixels, latency per stage; layout in engines/perception.py).

    Examples:

      roadsight predict --model model.onnx --source data/synth/images/val

      roadsight predict -m model.engine -s 'clips/*.jpg' --conf 0.4 --save-dir runs/predict/trt

      roadsight predict -m best.pt -s frame.jpg --masks
    """
    from engines.predict import run_predict

    run_predict(model, source, save_dir, conf=conf, iou=iou, device=device, masks=masks)


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
    app.command("predict")(predict)
    app.command("build")(build)
