"""CLI commands of this package (registered by app/cli.py)."""

from pathlib import Path

import typer


def bench(
    model: list[Path] = typer.Option(None, "--model", "-m", help="Model to time (.onnx, .engine); repeat for several. The first is the reference for ratios."),
    batch: str = typer.Option("1", "--batch", "-b", help="Batch sizes, comma-separated, e.g. 1,4,8 (engines with a fixed batch run only theirs)."),
    runs: int = typer.Option(200, "--runs", "-n", min=1, help="Timed runs per engine and batch."),
    warmup: int = typer.Option(20, "--warmup", min=0, help="Untimed runs per engine and batch before timing."),
    source: Path = typer.Option(None, "--source", "-s", help="Video clip: also time the whole pipeline per stage on it, with and without drawing/encoding."),
    frames: int = typer.Option(300, "--frames", min=0, help="Pipeline mode: frames of the clip to run (0: all)."),
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
        model or [], bench_impl.parse_batches(batch), runs, warmup, device, threads, source, out.name, console, frames
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
    cluster: str = typer.Option(None, "--cluster", help="Run one task per file on Ray: 'ray' (the cluster at RAY_ADDRESS, else a local Ray) or ray://HOST:PORT. Paths must be the same on every node. Needs roadsight[cluster]."),
) -> None:
    """Run a model over many video files: annotated videos, JSONL and a summary CSV, resumable.

    Finished files are skipped on a rerun; outputs are written under temporary names and renamed
    when complete, so a killed run redoes only unfinished files. A file that cannot be read is
    reported and skipped; the exit code is 1 when any file failed.

    Examples:
        roadsight video clips/ --model model.onnx --out runs/video
        roadsight video "drives/**/*.mp4" --model model.engine --device cuda --out runs/video --no-video
        roadsight video a.mp4 b.mp4 --model model.onnx --out runs/video --workers 2 --threads 1
        roadsight video /shared/clips --model /shared/model.onnx --out /shared/out --cluster ray --workers 8
    """
    from app import video as video_impl

    try:
        rows = video_impl.run(inputs, str(model), out, video_out, jsonl, workers, device, threads, conf, iou, cluster=cluster)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    failed = [row for row in rows if row.status == "error"]
    typer.echo(f"{len(rows) - len(failed)} of {len(rows)} files ok; summary in {out / 'summary.csv'}")
    if failed:
        raise typer.Exit(1)


def run(
    model: Path = typer.Option(..., "--model", "-m", help="Model: .onnx (ONNX Runtime), .engine (TensorRT) or .pt."),
    source: list[str] = typer.Option(..., "--source", "-s", help="Camera index (0), /dev/videoN, csi://N, a GStreamer pipeline, rtsp/http/udp URL, video file, image folder or glob; repeat for several (one engine, outputs get _0, _1, ...)."),
    show: bool = typer.Option(False, "--show", help="Show the annotated frames in a window (q or Esc stops)."),
    save: Path = typer.Option(None, "--save", help="Annotated video (.mp4, .avi, .mkv, .mov): the source's fps for files, wall-clock timing for live sources."),
    jsonl: Path = typer.Option(None, "--jsonl", help="One Perception JSON line per processed frame, flushed per frame."),
    dump_dir: Path = typer.Option(None, "--dump-dir", help="Folder for annotated frames as <frame>.jpg."),
    conf: float = typer.Option(0.25, "--conf", min=0.0, max=1.0, help="Detection confidence threshold."),
    iou: float = typer.Option(0.45, "--iou", min=0.0, max=1.0, help="NMS IoU threshold."),
    live: bool = typer.Option(None, "--live/--no-live", help="Force the policy: live keeps only the newest frame (drops counted, bounded latency); no-live processes every frame in order. Default: by source (cameras and URLs live, files not)."),
    reconnect_timeout: float = typer.Option(30.0, "--reconnect-timeout", min=0.0, help="Seconds a network source may stay down before it is given up (0: a drop ends it)."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu, cuda[:N] or tensorrt[:N] for ONNX Runtime; TensorRT engines always use the GPU."),
) -> None:
    """Run the model on live or recorded sources: window, annotated video, JSONL, frame dumps.

    Capture, preprocessing, inference, postprocessing and the outputs overlap in threads. A live status line shows fps, capture-to-result latency (median/p99), drops and reconnects; a summary follows at the end. Ctrl-C or SIGTERM finish the queued frames and close every output. The exit code is 1 when a source failed (could not be opened, vanished, or was lost for good).

    Examples:
        roadsight run -m model.onnx -s clip.mp4 --save out.mp4 --jsonl out.jsonl
        roadsight run -m model.engine -s csi://0 --show --device cuda
        roadsight run -m model.onnx -s rtsp://cam1/stream -s rtsp://cam2/stream --jsonl runs/cams.jsonl --reconnect-timeout 60
        roadsight run -m model.onnx -s "frames/*.jpg" --dump-dir runs/frames
    """
    from rich.console import Console

    from app.run import RunOptions
    from app.run import run as run_pipeline

    console = Console(stderr=True)
    options = RunOptions(model, source, show, save, jsonl, dump_dir, conf, iou, live, reconnect_timeout, device)
    stats = run_pipeline(options, console)
    failed = [s for s in stats.sources if s.failed]
    if failed:
        console.print(f"[bold red]error:[/] {len(failed)} of {len(stats.sources)} sources failed: "
                      + "; ".join(s.error for s in failed), highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def demo(
    source: str = typer.Option(None, "--source", "-s", help="Camera index (0), video file or any `run` source. Default: a synthetic 1280x720 drive clip, rendered once and cached in --out."),
    model: Path = typer.Option(None, "--model", "-m", help="Model to run instead of the shipped roadsight-n INT8 CPU model (.onnx, .engine, .pt); an X.onnx beside X.int8-*.onnx is the benchmark's FP32 reference."),
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Output folder: demo.mp4, demo.jsonl, bench.json, demo.json and the cached clip."),
    show: bool = typer.Option(False, "--show", help="Show the annotated frames in a window (q or Esc stops); needs a display."),
    runs: int = typer.Option(30, "--runs", "-n", min=0, help="Model-only benchmark runs per model, interleaved (0 skips the benchmark)."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu, cuda[:N] or tensorrt[:N] for ONNX Runtime; TensorRT engines always use the GPU."),
) -> None:
    """Try roadsight in one command: the shipped model on a drive clip, with a video, JSONL and a benchmark.

    Without arguments it needs only the runtime (no torch): it renders a short synthetic drive clip (cached),
    streams it through the pipeline with the shipped INT8 CPU model, times the INT8 model against the shipped
    FP32 model, and prints fps, latency, what was detected and where the files are.

    Examples:
        roadsight demo
        roadsight demo --show
        roadsight demo --source 0 --show
        roadsight demo --source drive.mp4 --model runs/train/best.int8-cpu.onnx --out runs/demo-mine
    """
    from app import demo as demo_impl

    options = demo_impl.DemoOptions(source=source, model=model, out=out, show=show, runs=runs, device=device)
    try:
        demo_impl.run(options)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
    app.command("bench")(bench)
    app.command("video")(video)
    app.command("run")(run)
    app.command("demo")(demo)
