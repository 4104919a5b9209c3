"""CLI commands of this package (registered by app/cli.py): calibrate, quantize, outliers."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _require_onnx(command: str) -> None:
    """calibrate/quantize read and write ONNX graphs: one-line error when the `onnx` package is missing."""
    import importlib.util

    from engines.errors import MissingDependency

    if importlib.util.find_spec("onnx") is None:
        raise MissingDependency("onnx", f"roadsight {command}", "pip install onnx (or 'roadsight[train]')")


def calibrate(
    model: Path = typer.Option(..., "--model", "-m", help="FP32 ONNX from `roadsight export` (its metadata gives imgsz)."),
    source: list[str] = typer.Option(..., "--source", "-s", help="Folder, video or quoted glob; repeat for more. Frames are spread over all."),
    n: int = typer.Option(512, "--n", min=1, help="Frames to keep (TensorRT/ModelOpt recommend >= 500)."),
    out: Path = typer.Option(Path("calib.npz"), "--out", "-o", help="Cache to write (.npz, uint8 letterboxed frames)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed; another seed picks another subset."),
) -> None:
    """Sample diverse frames and cache them preprocessed exactly as at inference.

    Each video is sampled evenly over its length and each image folder at random; the budget is shared evenly between
    videos/folders. Frames are stored letterboxed as uint8 (engines.preprocess), with the model's preprocessing key.

    Constant frames and random noise are skipped; a source made mostly of them, or none at all, is refused.

    Examples:

      roadsight calibrate --model runs/n-gated/best.onnx --source data/bdd/images/train --n 512 --out calib.npz

      roadsight calibrate -m best.onnx -s drive1.mp4 -s drive2.mp4 -s 'frames/**/*.jpg' --n 256 --seed 1
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    _require_onnx("calibrate")
    from calibration.cache import calibrate as run

    console = Console()
    with Progress(TextColumn("reading frames"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("frames", total=n)
        path, cache = run(model, source, n=n, out=out, seed=seed, on_frame=lambda: bar.advance(task))
    counts = cache.counts
    skipped = ", ".join(f"{counts[k]} {k}" for k in ("unreadable", "constant", "noise") if counts.get(k))
    h, w = cache.meta.imgsz
    console.print(
        f"wrote [bold]{path}[/]: {len(cache)} frames at {w}x{h} (uint8 letterboxed, key {cache.key})"
        + (f"; skipped {skipped}" if skipped else "")
    )
    if len(cache) < min(n, 500):
        console.print(f"[yellow]note:[/] only {len(cache)} frames; INT8 scales are more reliable with ~500.")


def quantize(
    model: Path = typer.Option(..., "--model", "-m", help="FP32 ONNX from `roadsight export`."),
    calib: Path = typer.Option(..., "--calib", "-c", help="Cache from `roadsight calibrate` for this model's input size."),
    target: str = typer.Option("trt", "--target", "-t", help="trt: symmetric INT8 Q/DQ for TensorRT 10/11; cpu: uint8/int8 for ONNX Runtime on x86."),
    method: str = typer.Option("max", "--method", help="Activation ranges: max, entropy or percentile (99.999)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output ONNX (default: MODEL.int8-TARGET.onnx)."),
    backend: str = typer.Option("auto", "--backend", help="auto (ModelOpt for trt when installed), modelopt or ort."),
    val: Path = typer.Option(None, "--val", help="Dataset root (BDD100K layout, split 'val') for the accuracy gate."),
    max_drop: float = typer.Option(1.0, "--max-drop", help="Gate: fail if mAP50, drivable mIoU or lane IoU drops more than this many points."),
    limit: int = typer.Option(None, "--limit", min=1, help="Gate: evaluate only the first N validation images."),
    reduce_range: bool = typer.Option(False, "--reduce-range", help="cpu: 7-bit weights for x86 CPUs without VNNI."),
    float_attention: bool = typer.Option(False, "--float-attention", help="Keep the attention MatMuls (QK^T, PV) in float."),
    json_out: bool = typer.Option(False, "--json", help="Print the result (and gate) as JSON."),
) -> None:
    """Quantize an FP32 ONNX to INT8 with a calibration cache, optionally gated on accuracy.

    trt: per-channel int8 weights, symmetric activations (zero-points 0), detection head final convs, DFL and
    segmentation logits kept float, Q/DQ placed for TensorRT fusion and checked against its rules.

    cpu: uint8 activations, int8 weights, QDQ (ONNX Runtime fuses it into QLinear kernels).

    With --val, FP32 and INT8 are evaluated on the same images; the command exits 1 with the table if any task
    metric drops more than --max-drop points.

    Examples:

      roadsight quantize --model best.onnx --calib calib.npz --target trt

      roadsight quantize -m best.onnx -c calib.npz -t cpu --val data/bdd --max-drop 1.5

      roadsight quantize -m best.onnx -c calib.npz --method entropy --backend ort -o best.int8.onnx
    """
    from rich.console import Console

    _require_onnx("quantize")
    from calibration.quantize import pick_backend, quantize as run
    from engines.errors import RoadsightError

    console = Console()
    used = pick_backend(target, method, backend)
    with console.status(f"quantizing {model.name} for {target} with {used} ({method} calibration)..."):
        result = run(model, calib, target=target, method=method, out=out, backend=backend, reduce_range=reduce_range,
                     float_attention=float_attention)
    counts = ", ".join(f"{v} {k}" for k, v in result.summary.items())
    console.print(f"wrote [bold]{result.path}[/] ({target}, {result.backend}, {method}, {result.frames} frames, {result.seconds:.1f} s): {counts}")
    report = {"quantize": result.to_json()}
    if val is not None:
        from calibration.cache import read_meta
        from calibration.gate import gate
        from model.bdd import BDDDataset
        from model.classes import stored_class_map

        meta = read_meta(model)
        dataset = BDDDataset(val, "val", stored_class_map(meta.names, meta.class_map))  # the model's classes
        with console.status(f"accuracy gate: evaluating FP32 and INT8 on {min(len(dataset), limit or len(dataset))} images..."):
            verdict = gate(model, result.path, dataset, max_drop, limit=limit)
        report["gate"] = verdict.to_json()
        console.print(verdict.table())
        if json_out:
            typer.echo(json.dumps(report, indent=2))
        if not verdict.passed:
            worst = max(verdict.failures, key=lambda k: verdict.rows[k][2])
            raise RoadsightError(
                f"quantize: accuracy gate failed on {', '.join(verdict.failures)}. Expected drops <= {max_drop:g} points, "
                f"got {verdict.rows[worst][2]:.2f} ({worst}). Try --method entropy or percentile, more calibration "
                f"frames, or a model trained with clipped/gated attention; {result.path} was kept for inspection."
            )
        return
    if json_out:
        typer.echo(json.dumps(report, indent=2))


def outliers(
    weights: Path = typer.Option(..., "--weights", "-w", help="Checkpoint (.pt) from `roadsight train`."),
    data: list[str] = typer.Option(..., "--data", "-d", help="Folder, video or quoted glob of frames; repeatable."),
    n: int = typer.Option(64, "--n", min=1, help="Frames to run (spread over the sources)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    json_out: bool = typer.Option(False, "--json", help="Print the statistics as JSON instead of the table."),
    plot: Path = typer.Option(None, "--plot", help="Write a PNG bar chart of inf-norm and kurtosis per tensor."),
) -> None:
    """Measure activation outliers: max|x| and kurtosis per sample (Bondarenko et al. 2023).

    Watched: the attention's input/output, each head's output, the FFN output, backbone stages and neck blocks.
    Outlier-free attention (clipped softmax, gates) should show a small max|x| and a kurtosis near 3 (Gaussian)
    on the attention tensors. Needs the `train` extra (torch).

    Examples:

      roadsight outliers --weights runs/n-vanilla/best.pt --data data/bdd/images/val --n 64

      roadsight outliers -w best.pt -d drive.mp4 --json --plot outliers.png
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from calibration.outliers import outliers as run, plot as draw, table

    console = Console(stderr=json_out)
    with Progress(TextColumn("reading frames"), BarColumn(), MofNCompleteColumn(), console=console, transient=True) as bar:
        task = bar.add_task("frames", total=n)
        result = run(weights, data, n=n, seed=seed, on_frame=lambda: bar.advance(task))
    if json_out:
        typer.echo(json.dumps(result, indent=2))
    else:
        console.print(table(result))
    if plot is not None:
        console.print(f"wrote [bold]{draw({weights.stem: result}, plot)}[/]")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
    app.command("calibrate")(calibrate)
    app.command("quantize")(quantize)
    app.command("outliers")(outliers)
