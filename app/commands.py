"""CLI commands of this package (registered by app/cli.py)."""

from pathlib import Path

import typer

from engines.errors import RoadsightError

TRACK_HELP = ("Vehicle track ids (ByteTrack), lane curves, ego offset/departure and the lead vehicle in every record and the "
              "overlay. Default: tracking on for videos and streams, off for image folders; --no-track without --camera skips the stage.")
CAMERA_HELP = "Camera file (YAML: fx, fy, cx, cy, mount_height_m, pitch_deg, roll_deg) for lane geometry and distances; default: a typical 1280x720 dashcam. `roadsight camera estimate` writes one."


def bench(
    model: list[Path] = typer.Option(None, "--model", "-m", help="Model to time (.onnx, .engine); repeat for several. The first is the reference for ratios."),
    batch: str = typer.Option("1", "--batch", "-b", help="Batch sizes, comma-separated, e.g. 1,4,8 (engines with a fixed batch run only theirs)."),
    runs: int = typer.Option(200, "--runs", "-n", min=1, help="Timed runs per engine and batch."),
    warmup: int = typer.Option(20, "--warmup", min=0, help="Untimed runs per engine and batch before timing."),
    source: list[str] = typer.Option(None, "--source", "-s", help="Video clip: also time the whole pipeline per stage on it, with and without drawing/encoding. With --soak: the live feeds (repeat for several; a clip loops)."),
    frames: int = typer.Option(300, "--frames", min=0, help="Pipeline mode: frames of the clip to run (0: all)."),
    threads: int = typer.Option(0, "--threads", "-t", min=0, help="ONNX Runtime intra-op threads per engine (0: ONNX Runtime's default)."),
    device: str = typer.Option("auto", "--device", "-d", help="auto (the fastest installed CPU backend), cpu, cuda[:N], tensorrt[:N] (ONNX Runtime), openvino, openvino:GPU; comma-separated runs every model on each. TensorRT engines always use the GPU."),
    precision: str = typer.Option("auto", "--precision", help="OpenVINO inference precision: auto (its default, bf16 on CPUs that have it), f32, bf16 or f16."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for bench.json and bench.png (default runs/bench/<date-time>)."),
    compare: tuple[Path, Path] | None = typer.Option(None, "--compare", help="Show two saved bench.json side by side and exit."),
    soak: float = typer.Option(None, "--soak", min=0.0, help="Soak test: run every --source as a live stream with recording for this many minutes; sample RSS, fps and latency into soak.json and soak.png."),
) -> None:
    """Time engines side by side: model-only latency (interleaved), and per-stage pipeline latency on a clip.

    Prints what was measured (machine, versions, precision, threads, input, batch), a table of min /
    median / mean / p90 / p99 / max and throughput with ratios against the first model, and saves
    bench.json and bench.png. With --soak MINUTES it instead runs every --source as a live stream with
    recording for that long and saves soak.json and soak.png (memory, fps, latency and recording lag over
    time; verdicts on memory growth and complete outputs).

    Examples:
        roadsight bench -m model.onnx -m model.int8-cpu.onnx --batch 1,4 --runs 300
        roadsight bench -m model.onnx -m model.int8-trt.onnx --device cpu,openvino --source clip.mp4
        roadsight bench -m model.onnx --device openvino --precision f32
        roadsight bench -m model.engine -m model.onnx --device cuda --source clip.mp4 --out runs/bench/orin
        roadsight bench --compare runs/bench/cpu/bench.json runs/bench/orin/bench.json
        roadsight bench -m model.int8-cpu.onnx --soak 10 -s drive.mp4 -s drive.mp4 -s rtsp://cam1/stream -s 0
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
    if soak is not None:
        return _soak(model or [], source or [], soak, device, out, console)
    if source and len(source) > 1:
        raise RoadsightError(f"--source: {len(source)} given. Expected one clip for the pipeline timing (several only with --soak).")
    source = Path(source[0]) if source else None
    report = bench_impl.run(
        model or [], batches=bench_impl.parse_batches(batch), runs=runs, warmup=warmup, device=device, threads=threads,
        source=source, name=out.name, console=console, frames=frames, precision=precision,
    )
    print_report(report, console)
    json_path, png_path, reason = bench_impl.save(report, out)
    console.print(f"saved {json_path}" + (f" and {png_path}" if png_path else ""), highlight=False)
    if reason:
        console.print(reason, highlight=False)


def _soak(models: list[Path], sources: list[str], minutes: float, device: str, out: Path, console) -> None:
    """`bench --soak`: the first model on every source as live streams with recording; prints the verdicts."""
    from app import soak as soak_impl
    from app.pipeline import StreamSettings

    if len(models) != 1:
        raise RoadsightError(f"--soak: {len(models)} models given. Expected exactly one --model to soak, got {len(models)}.")
    options = soak_impl.SoakOptions(model=models[0], sources=sources, minutes=minutes, out=out,
                                    stream=StreamSettings(device=device, live=True))
    report = soak_impl.run(options, console)
    json_path, png_path = soak_impl.save(report, out)
    verdicts = report["verdicts"]
    for row in verdicts["outputs"]:
        lag = row["record_lag_ms"] or {}
        console.print(
            f"{row['source']}: {row['results']} results at {row['fps']:.1f} fps, result p50/p99 "
            f"{row['latency_ms'].get('median', 0):.0f}/{row['latency_ms'].get('p99', 0):.0f} ms, recording lag p50/p99 "
            f"{lag.get('median', 0):.0f}/{lag.get('p99', 0):.0f} ms; JSONL {row['jsonl_lines']} lines, video "
            f"{row['video_frames_readable']}/{row['video_frames_written']} frames readable", highlight=False)
    growth = verdicts["rss_growth_percent"]
    trend = verdicts["rss_trend_mb_per_min"]
    console.print(f"RSS growth from minute 1 to the last (medians): {'unknown' if growth is None else f'{growth:+.1f}%'}"
                  f"{'' if trend is None else f', trend {trend:+.2f} MB/min'}; fps spread between sources: "
                  f"{verdicts['fps_spread_percent']}%; outputs complete: {verdicts['all_outputs_complete']}", highlight=False)
    console.print(f"saved {json_path}" + (f" and {png_path}" if png_path else " (no PNG: matplotlib is not installed)"), highlight=False)


def video(
    inputs: list[str] = typer.Argument(..., help="Videos, folders (searched recursively), globs such as 'clips/*.mp4', or .txt lists of paths."),
    model: Path = typer.Option(..., "--model", "-m", help="Model to run (.onnx, .engine)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: NAME.mp4, NAME.jsonl per input and summary.csv."),
    workers: int = typer.Option(None, "--workers", "-w", min=1, help="Files processed at once (default: CPU cores // 2; on GPUs one per GPU)."),
    video_out: bool = typer.Option(True, "--video/--no-video", help="Write an annotated video per input."),
    jsonl: bool = typer.Option(True, "--jsonl/--no-jsonl", help="Write one JSON line per frame per input."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu, cuda[:N] or tensorrt[:N]; without an index every GPU gets one worker; openvino or openvino:GPU for OpenVINO."),
    threads: int = typer.Option(None, "--threads", "-t", min=1, help="ONNX Runtime intra-op threads per worker (default: cores // workers)."),
    conf: float = typer.Option(0.25, "--conf", min=0.0, max=1.0, help="Detection confidence threshold."),
    iou: float = typer.Option(0.45, "--iou", min=0.0, max=1.0, help="NMS IoU threshold."),
    track: bool = typer.Option(None, "--track/--no-track", help=TRACK_HELP),
    camera: Path = typer.Option(None, "--camera", help=CAMERA_HELP),
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
        rows = video_impl.run(inputs, str(model), out, video=video_out, jsonl=jsonl, workers=workers, device=device,
                              threads=threads, conf=conf, iou=iou, track=track, camera=camera, cluster=cluster)
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
    track: bool = typer.Option(None, "--track/--no-track", help=TRACK_HELP),
    camera: Path = typer.Option(None, "--camera", help=CAMERA_HELP),
    conf: float = typer.Option(0.25, "--conf", min=0.0, max=1.0, help="Detection confidence threshold."),
    iou: float = typer.Option(0.45, "--iou", min=0.0, max=1.0, help="NMS IoU threshold."),
    live: bool = typer.Option(None, "--live/--no-live", help="Force the policy: live keeps only the newest frame (drops counted, bounded latency); no-live processes every frame in order. Default: by source (cameras and URLs live, files not)."),
    reconnect_timeout: float = typer.Option(30.0, "--reconnect-timeout", min=0.0, help="Seconds a network source may stay down before it is given up (0: a drop ends it)."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu, cuda[:N] or tensorrt[:N] for ONNX Runtime; openvino or openvino:GPU for OpenVINO; TensorRT engines always use the GPU."),
) -> None:
    """Run the model on live or recorded sources: window, annotated video, JSONL, frame dumps.

    Capture, preprocessing, inference, postprocessing and the outputs overlap in threads. A live status line shows fps, capture-to-result latency (median/p99), drops and reconnects; a summary follows at the end. Ctrl-C or SIGTERM finish the queued frames and close every output. The exit code is 1 when a source failed (could not be opened, vanished, or was lost for good).

    Examples:
        roadsight run -m model.onnx -s clip.mp4 --save out.mp4 --jsonl out.jsonl
        roadsight run -m model.engine -s csi://0 --show --device cuda
        roadsight run -m model.onnx -s rtsp://cam1/stream -s rtsp://cam2/stream --jsonl runs/cams.jsonl --reconnect-timeout 60
        roadsight run -m model.onnx -s "frames/*.jpg" --dump-dir runs/frames
        roadsight run -m model.onnx -s drive.mp4 --camera drive.camera.yaml --jsonl drive.jsonl  (tracks, lanes, ego facts)
    """
    from rich.console import Console

    from app.run import RunOptions
    from app.run import run as run_pipeline
    from engines.driving import driving_options

    console = Console(stderr=True)
    from app.pipeline import StreamSettings

    settings = StreamSettings(device=device, conf=conf, iou=iou, live=live, reconnect_timeout=reconnect_timeout,
                              driving=driving_options(track, camera))
    options = RunOptions(model=model, sources=source, show=show, save=save, jsonl=jsonl, dump_dir=dump_dir, stream=settings)
    stats = run_pipeline(options, console)
    failed = [s for s in stats.sources if s.failed]
    if failed:
        console.print(f"[bold red]error:[/] {len(failed)} of {len(stats.sources)} sources failed: "
                      + "; ".join(s.error for s in failed), highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def demo(
    source: str = typer.Option(None, "--source", "-s", help="Camera index (0), video file or any `run` source. Default: a synthetic 1280x720 drive clip, rendered once and cached in --out."),
    model: Path = typer.Option(None, "--model", "-m", help="Model to run instead of the shipped roadsight-n INT8 model (int8-trt on OpenVINO, int8-cpu on ONNX Runtime) (.onnx, .engine, .pt); an X.onnx beside X.int8-*.onnx is the benchmark's FP32 reference."),
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Output folder: demo.mp4, demo.jsonl, bench.json, demo.json and the cached clip."),
    show: bool = typer.Option(False, "--show", help="Show the annotated frames in a window (q or Esc stops); needs a display."),
    track: bool = typer.Option(None, "--track/--no-track", help=TRACK_HELP),
    camera: Path = typer.Option(None, "--camera", help=CAMERA_HELP),
    runs: int = typer.Option(30, "--runs", "-n", min=0, help="Model-only benchmark runs per model, interleaved (0 skips the benchmark)."),
    device: str = typer.Option("auto", "--device", "-d", help="auto (the fastest installed CPU backend: OpenVINO, else ONNX Runtime), cpu, cuda[:N], tensorrt[:N], openvino or openvino:GPU."),
) -> None:
    """Try roadsight in one command: the shipped model on a drive clip, with a video, JSONL and a benchmark.

    Without arguments it needs only the runtime (no torch): it renders a short synthetic drive clip (cached),
    streams it through the pipeline with the shipped INT8 model on the fastest installed CPU backend (OpenVINO,
    else ONNX Runtime; the report says which), times the INT8 model against the shipped FP32 model, and prints
    fps, latency, what was detected and where the files are.

    Examples:
        roadsight demo
        roadsight demo --show
        roadsight demo --device cpu
        roadsight demo --source 0 --show
        roadsight demo --source drive.mp4 --model runs/train/best.int8-cpu.onnx --out runs/demo-mine
    """
    from app import demo as demo_impl
    from app.pipeline import StreamSettings
    from engines.driving import driving_options

    options = demo_impl.DemoOptions(source=source, model=model, out=out, show=show, runs=runs,
                                    stream=StreamSettings(device=device, driving=driving_options(track, camera)))
    try:
        demo_impl.run(options)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


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
    from app.predict import run_predict

    run_predict(model, source, save_dir, conf=conf, iou=iou, device=device, masks=masks)


camera_app = typer.Typer(help="Camera models for lane geometry and distances (YAML files for --camera).", no_args_is_help=True)


@camera_app.command("estimate")
def camera_estimate(
    source: Path = typer.Option(..., "--source", "-s", help="A video file from the camera, on a road with marked lanes."),
    model: Path = typer.Option(None, "--model", "-m", help="Model that segments the lanes (default: the shipped roadsight-n INT8 CPU model)."),
    frames: int = typer.Option(120, "--frames", min=3, help="Frames sampled evenly over the clip."),
    base: Path = typer.Option(None, "--base", help="Camera file with the known intrinsics, mount height and roll (default: the typical dashcam)."),
    out: Path = typer.Option(Path("camera.yaml"), "--out", "-o", help="Camera file to write."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu, cuda[:N] or tensorrt[:N] for ONNX Runtime."),
) -> None:
    """Estimate the camera's pitch (horizon) from the lane lines' vanishing point and write a camera file.

    Only the pitch is estimated; focal length, principal point, roll and mount height come from --base (or the
    typical 1280x720 dashcam, scaled to the clip's size).

    Examples:
        roadsight camera estimate --source drive.mp4
        roadsight camera estimate --source drive.mp4 --base mycam.yaml --frames 300 --out drive.camera.yaml
    """
    import engines
    from app.zoo import shipped_model
    from engines.camera import load_camera
    from engines.camera_estimate import estimate_camera
    from engines.predictor import Predictor

    with engines.load(model or shipped_model("int8-cpu"), device) as engine:
        result = estimate_camera(source, Predictor(engine), frames, load_camera(base) if base else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(result.camera.to_yaml())
    u, v = result.vanishing_point
    typer.echo(f"vanishing point ({u:.1f}, {v:.1f}) px from {result.frames_used} of {result.frames_read} frames "
               f"(spread {result.spread_px:.1f} px): pitch {result.camera.pitch_deg:.2f} deg; wrote {out}")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
    app.command("predict")(predict)
    app.command("bench")(bench)
    app.command("video")(video)
    app.command("run")(run)
    app.command("demo")(demo)
    app.add_typer(camera_app, name="camera")
