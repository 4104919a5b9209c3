"""CLI commands of this package (registered by app/cli.py)."""

from pathlib import Path

import typer


def bench(
    model: list[Path] = typer.Option(None, "--model", "-m", help="Model to time (.onnx, .engine); repeat for several. The first is the reference for ratios."),
    batch: str = typer.Option("1", "--batch", "-b", help="Batch sizes, comma-separated, e.g. 1,4,8 (engines with a fixed batch run only theirs)."),
    runs: int = typer.Option(200, "--runs", "-n", min=1, help="Timed runs per engine and batch."),
    warmup: int = typer.Option(20, "--warmup", min=0, help="Untimed runs per engine and batch before timing."),
    source: Path = typer.Option(None, "--source", "-s", help="Video clip: also time the whole pipeline per stage on it, with and without drawing/encoding."),
    threads: int = typer.Option(0, "--threads", "-t", min=0, help="ONNX Runtime intra-op threads per engine (0: ONNX Runtime's default)."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu, cuda[:N] or tensorrt[:N] for ONNX Runtime; TensorRT engines always use the GPU."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for bench.json and bench.png (default runs/bench/<date-time>)."),
    compare: tuple[Path, Path] | None = typer.Option(None, "--compare", help="Show two saved bench.json side by side and exit."),
) -> None:
    """Time engines side by side: model-only latency (interleaved), and per-stage pipeline latency on a clip.

    Prints what was measured (machine, versions, precision, threads, input, batch), a table of min /
    median / mean / p90 / p99 / max and throughput with ratios against the first model, and saves
    bench.json and bench.png.

    Examples:
        roadsight bench -m model.onnx -m model.int8-cpu.onnx --batch 1,4 --runs 300
        roadsight bench -m model.engine -m model.onnx --device cuda --source clip.mp4 --out runs/bench/orin
        roadsight bench --compare runs/bench/cpu/bench.json runs/bench/orin/bench.json
    """
    import time

    from rich.console import Console

    from app import bench as bench_impl
    from app.benchreport import print_compare, print_report

    console = Console()
    if compare and all(compare):
        print_compare(compare[0], compare[1], console)
        return
    out = out or Path("runs/bench") / time.strftime("%Y%m%d-%H%M%S")
    report = bench_impl.run(
        model or [], bench_impl.parse_batches(batch), runs, warmup, device, threads, source, out.name, console
    )
    print_report(report, console)
    json_path, png_path, reason = bench_impl.save(report, out)
    console.print(f"saved {json_path}" + (f" and {png_path}" if png_path else ""), highlight=False)
    if reason:
        console.print(reason, highlight=False)


def video(
    inputs: list[str] = typer.Argument(..., help="Videos, folders (searched recursively), globs such as 'clips/*.mp4', or .txt lists of paths."),
    model: Path = typer.Option(..., "--model", "-m", help="Model to run (.onnx, .engine)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: NAME.mp4, NAME.jsonl per input and summary.csv."),
    workers: int = typer.Option(None, "--workers", "-w", min=1, help="Files processed at once (default: CPU cores // 2; on GPUs one per GPU)."),
    video_out: bool = typer.Option(True, "--video/--no-video", help="Write an annotated video per input."),
    jsonl: bool = typer.Option(True, "--jsonl/--no-jsonl", help="Write one JSON line per frame per input."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu, cuda[:N] or tensorrt[:N]; without an index every GPU gets one worker."),
    threads: int = typer.Option(None, "--threads", "-t", min=1, help="ONNX Runtime intra-op threads per worker (default: cores // workers)."),
    conf: float = typer.Option(0.25, "--conf", min=0.0, max=1.0, help="Detection confidence threshold."),
    iou: float = typer.Option(0.45, "--iou", min=0.0, max=1.0, help="NMS IoU threshold."),
) -> None:
    """Run a model over many video files: annotated videos, JSONL and a summary CSV, resumable.

    Finished files are skipped on a rerun; outputs are written under temporary names and renamed
    when complete, so a killed run redoes only unfinished files. A file that cannot be read is
    reported and skipped; the exit code is 1 when any file failed.

    Examples:
        roadsight video clips/ --model model.onnx --out runs/video
        roadsight video "drives/**/*.mp4" --model model.engine --device cuda --out runs/video --no-video
        roadsight video a.mp4 b.mp4 --model model.onnx --out runs/video --workers 2 --threads 1
    """
    from app import video as video_impl

    rows = video_impl.run(inputs, str(model), out, video_out, jsonl, workers, device, threads, conf, iou)
    failed = [row for row in rows if row.status == "error"]
    typer.echo(f"{len(rows) - len(failed)} of {len(rows)} files ok; summary in {out / 'summary.csv'}")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
    app.command("bench")(bench)
    app.command("video")(video)
