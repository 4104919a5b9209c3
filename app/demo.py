"""`roadsight demo`: the shipped model on a synthetic drive clip (or a camera/file), end to end, in one command.

1. The backend: `--device auto` is OpenVINO when installed, else ONNX Runtime (`engines.fastest_cpu_device`).
   The model: the shipped roadsight-n INT8 ONNX for that backend (`app.zoo`, `SHIPPED_INT8`) unless `--model`
   is given; the benchmark's reference is the FP32 ONNX beside it (the shipped `roadsight-n.onnx`, or `X.onnx`
   for `X.int8-*.onnx`).
2. The source: `--source`, or a synthetic 1280x720 drive clip rendered once by `model.synth_video` (numpy +
   OpenCV, no torch) and cached in the output folder, so the next demo starts at once.
3. The streaming pipeline (`app.pipeline`) writes `demo.mp4` (annotated) and `demo.jsonl`; `--show` adds a window.
4. A short interleaved model-only benchmark (`app.bench`) of the reference and the model: `bench.json`.
5. `demo.json` gathers the numbers; the short report says what was seen and where the files are.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from engines.driving import DrivingOptions
from engines.errors import RoadsightError

from app import zoo
from app.pipeline import Pipeline, StreamSettings
from app.sinks import JsonlSink, SinkSet, VideoSink, WindowSink, check_output
from app.sources import open_source, quiet_opencv
from app.stats import RunStats

CLIP_FRAMES, CLIP_SEED, CLIP_FPS, CLIP_SIZE = 150, 0, 30.0, (1280, 720)  # (width, height)
BENCH_WARMUP = 5
BACKEND_NAMES = {"openvino": "OpenVINO", "cpu": "ONNX Runtime (CPU)", "cuda": "ONNX Runtime (CUDA)", "tensorrt": "TensorRT"}
FP32_SIBLING = re.compile(r"^(?P<stem>.+)\.int8[^.]*\.onnx$")


@dataclass
class DemoOptions:
    """What `roadsight demo` takes (see its --help); `None` source/model: the synthetic clip / shipped model."""

    source: str | None = None
    model: Path | None = None
    out: Path = Path("runs/demo")
    show: bool = False
    runs: int = 30
    # the driving stage (engines/driving.py) by default: tracking on for videos and cameras
    stream: StreamSettings = field(default_factory=lambda: StreamSettings(device="auto", driving=DrivingOptions()))


@dataclass
class DemoFiles:
    """Where the demo wrote its outputs (`clip`: the synthetic clip, if used; `bench`: empty when skipped)."""

    video: Path
    jsonl: Path
    summary: Path
    clip: Path | None = None
    bench: list[Path] = field(default_factory=list)


# The shipped INT8 model each CPU backend runs fastest (docs/CPU_SPEED.md): OpenVINO runs the symmetric
# Q/DQ model's convolutions in u8/i8; ONNX Runtime is fast only with its own uint8 model.
SHIPPED_INT8 = {"openvino": "int8-trt", "cpu": "int8-cpu"}


def resolve_device(device: str, model: Path | None) -> str:
    """'auto' -> the fastest installed CPU backend for an .onnx (`engines.fastest_cpu_device`); else `device`."""
    import engines

    if device == "auto" and (model is None or model.suffix.lower() == ".onnx"):
        return engines.fastest_cpu_device()
    return device


def resolve_models(model: Path | None, device: str = "cpu") -> tuple[Path, Path | None]:
    """(model to run, FP32 reference for the benchmark or None): the shipped pair, or `model` and its FP32 sibling."""
    if model is None:
        variant = SHIPPED_INT8["openvino" if device.lower().startswith("openvino") else "cpu"]
        return zoo.shipped_model(variant), zoo.shipped_variants().get("fp32")
    if not model.is_file():
        raise RoadsightError(f"--model {model}: no such file. Expected an .onnx, .engine or .pt model, got none. Check the path.")
    match = FP32_SIBLING.match(model.name)
    sibling = model.with_name(f"{match['stem']}.onnx") if match else None
    return model, sibling if sibling is not None and sibling.is_file() else None


def check_display() -> None:
    """Fail at once, before rendering anything, when --show has no display to open a window on."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RoadsightError(
            "--show: no display. Expected $DISPLAY or $WAYLAND_DISPLAY, got neither. Drop --show (the demo writes "
            "the annotated video anyway) or connect a display (ssh -X, export DISPLAY=:0)."
        )


def demo_clip(folder: Path, frames: int = CLIP_FRAMES, seed: int = CLIP_SEED, size: tuple[int, int] = CLIP_SIZE,
              console: Console | None = None) -> tuple[Path, bool]:
    """The synthetic drive clip in `folder`, rendered once (to a .part file, renamed when complete) and then
    reused; returns (path, rendered now). `size` is (width, height)."""
    width, height = size
    path = folder / f"synthetic-drive-{width}x{height}-{frames}f-seed{seed}.mp4"
    if path.is_file() and path.stat().st_size > 0:
        return path, False
    try:
        from model.synth_video import write_video
    except ModuleNotFoundError as error:
        raise RoadsightError(
            f"demo: cannot render the synthetic clip ({error}). Expected model/synth_video.py in this install, got "
            "none. Pass a clip or camera with --source."
        ) from None
    part = path.with_name(path.stem + ".part.mp4")
    console = console or Console(stderr=True)
    columns = (TextColumn("rendering a synthetic drive clip"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("frames", total=frames)
        write_video(part, frames, seed, width, height, CLIP_FPS, advance=lambda: bar.advance(task))
    part.replace(path)
    return path, True


def stream(model: Path, spec: str, files: DemoFiles, window: WindowSink | None, options: DemoOptions,
           console: Console) -> RunStats:
    """Run the source through the streaming pipeline into the video, the JSONL and the window; returns the stats."""
    import engines

    quiet_opencv()
    source = open_source(spec, options.stream.live)
    sinks = SinkSet(
        video=VideoSink(files.video, lambda: source.fps or CLIP_FPS, real_time=source.live),
        jsonl=JsonlSink(files.jsonl),
        window=window,
        live=source.live,
    )
    columns = (TextColumn(f"{model.name} on {source.name}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:5.1f} fps"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("frames", total=None, fps=0.0)

        def tick(stats: RunStats) -> None:
            one = stats.sources[0]
            bar.update(task, completed=one.processed, total=source.frame_count, fps=one.recent_fps_latency()[0])

        pipeline = Pipeline(sources=[source], engine_factory=lambda: engines.load(model, options.stream.device),
                            sinks=[sinks], settings=options.stream, log=console.print, on_tick=tick)
        stats = pipeline.run()
    result = stats.sources[0]
    if result.failed:
        raise RoadsightError(result.error)
    return stats


def tally(jsonl: Path) -> dict:
    """What the model saw, from the JSONL: detections per frame, drivable fraction and lane pixels (means)."""
    counts, drivable, lane, names = [], [], [], Counter()
    with open(jsonl, encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            counts.append(len(record["detections"]))
            names.update(d["name"] for d in record["detections"])
            if record.get("drivable_fraction") is not None:
                drivable.append(record["drivable_fraction"])
            if record.get("lane_pixels") is not None:
                lane.append(record["lane_pixels"])
    return {
        "frames": len(counts),
        "detections": sum(counts),
        "detections_per_frame": round(statistics.fmean(counts), 3) if counts else 0.0,
        "max_detections": max(counts, default=0),
        "frames_with_detections": sum(1 for c in counts if c),
        "classes": dict(names.most_common()),
        "mean_drivable_fraction": round(statistics.fmean(drivable), 4) if drivable else None,
        "mean_lane_pixels": round(statistics.fmean(lane), 1) if lane else None,
    }


def benchmark(model: Path, reference: Path | None, options: DemoOptions, console: Console) -> tuple[dict | None, list[Path]]:
    """Interleaved model-only latency (batch 1) of the reference (first, so ratios are vs FP32) and the model."""
    if options.runs < 1:
        return None, []
    from app import bench

    models = [reference, model] if reference is not None else [model]
    # on OpenVINO the FP32 reference is timed on ONNX Runtime too: the speed-up is against the plain CPU runtime
    device = options.stream.device
    devices = f"cpu,{device}" if device.lower().startswith("openvino") and reference else device
    report = bench.run(models, batches=[1], runs=options.runs, warmup=BENCH_WARMUP, device=devices, name="demo",
                       console=console)
    json_path, png_path, _ = bench.save(report, options.out)
    return report, [json_path] + ([png_path] if png_path else [])


def bench_summary(report: dict | None) -> list[dict]:
    """Per model: name, precision, median and p99 latency (ms) and speed-up vs the first model."""
    if not report:
        return []
    precision = {m["name"]: m["precision"] + (f", runs {m['runtime_precision']}" if m.get("runtime_precision") else "")
                 for m in report["models"]}
    return [
        {
            "model": r["model"],
            "precision": precision.get(r["model"]),
            "median_ms": r["latency_ms"]["median"],
            "p99_ms": r["latency_ms"]["p99"],
            "speedup_vs_first": (r.get("vs_first") or {}).get("speedup"),
        }
        for r in report["model_only"]
    ]


def run(options: DemoOptions, console: Console | None = None, out_console: Console | None = None) -> dict:
    """The whole demo; progress on `console` (stderr), the report on `out_console` (stdout). Returns demo.json's dict."""
    console = console or Console(stderr=True)
    out_console = out_console or Console()
    device = resolve_device(options.stream.device, options.model)
    options = replace(options, stream=replace(options.stream, device=device))
    model, reference = resolve_models(options.model, device)
    check_output(options.out, "--out", folder=True)
    console.print(f"backend: {BACKEND_NAMES.get(device.split(':')[0].lower(), device)} "
                  f"(--device {device}) runs {model.name}", highlight=False)
    files = DemoFiles(options.out / "demo.mp4", options.out / "demo.jsonl", options.out / "demo.json")
    if options.show:
        check_display()
    window = WindowSink("roadsight demo") if options.show else None  # a headless OpenCV fails here, before rendering
    try:
        if options.source is None:
            files.clip, rendered = demo_clip(options.out, console=console)
            if rendered:
                console.print(f"rendered {files.clip} (cached: the next demo reuses it)", highlight=False)
        stats = stream(model, options.source or str(files.clip), files, window, options, console)
    finally:
        if window is not None:
            window.close()
    bench, files.bench = benchmark(model, reference, options, console)
    source = stats.sources[0].to_dict()
    summary = {
        "format": "roadsight-demo",
        "model": str(model),
        "device": options.stream.device,
        "shipped": options.model is None,
        "reference": str(reference) if reference else None,
        "source": options.source or str(files.clip),
        "synthetic_clip": options.source is None,
        "pipeline": {"fps": source["fps"], "latency_ms": source["latency_ms"], "frames": source["processed"],
                     "dropped": source["dropped"], "live": source["live"], "summary": stats.summary()},
        "detected": tally(files.jsonl),
        "model_only": bench_summary(bench),
        "bench_settings": bench["settings"] if bench else None,
        "files": {"video": str(files.video), "jsonl": str(files.jsonl), "summary": str(files.summary),
                  "clip": str(files.clip) if files.clip else None, "bench": [str(p) for p in files.bench]},
    }
    files.summary.write_text(json.dumps(summary, indent=1))
    print_report(summary, out_console)
    return summary


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def print_report(summary: dict, console: Console) -> None:
    """The short report: pipeline speed, what was detected, model-only latency, where the files are."""
    pipeline, seen, files = summary["pipeline"], summary["detected"], summary["files"]
    latency = pipeline["latency_ms"]
    what = "synthetic clip" if summary["synthetic_clip"] else "source"
    backend = BACKEND_NAMES.get(summary["device"].split(":")[0].lower(), summary["device"])
    lines = [f"roadsight demo: {Path(summary['model']).name} with {backend} on the {what} {summary['source']}"]
    work = pipeline["summary"]["work_ms_per_frame"]
    line = (f"  pipeline   {pipeline['fps']:.1f} fps over {pipeline['frames']} frames; work per frame: preprocess "
            f"{_ms(work['preprocess'])} + infer {_ms(work['infer'])} + postprocess {_ms(work['postprocess'])} + "
            f"draw/write {_ms(work['sinks'])} ms")
    if pipeline["live"] and latency.get("count"):  # a file is read ahead: its latency is mostly queueing
        line += f"; latency capture to result median {_ms(latency['median'])} ms, p99 {_ms(latency['p99'])} ms"
    lines.append(line)
    classes = ", ".join(f"{n} {c}" for n, c in seen["classes"].items()) or "none"
    detected = (f"  detected   {seen['detections_per_frame']:.2f} vehicles/frame (max {seen['max_detections']}, "
                f"in {seen['frames_with_detections']} of {seen['frames']} frames; {classes})")
    if seen["mean_drivable_fraction"] is not None:
        detected += f"; drivable {100 * seen['mean_drivable_fraction']:.1f}% of the frame"
    if seen["mean_lane_pixels"] is not None:
        detected += f"; {seen['mean_lane_pixels']:.0f} lane pixels/frame"
    lines.append(detected)
    if summary["model_only"]:
        settings = summary["bench_settings"]
        timings = "; ".join(f"{r['model']} ({r['precision']}) median {_ms(r['median_ms'])} ms, p99 {_ms(r['p99_ms'])} ms"
                            for r in summary["model_only"])
        lines.append(f"  model-only {timings}")
        if len(summary["model_only"]) > 1:
            speedup = summary["model_only"][-1]["speedup_vs_first"]
            lines.append(f"             {summary['model_only'][-1]['model']} is {speedup:.2f}x the speed of "
                         f"{summary['model_only'][0]['model']} ({settings['runs']} interleaved runs, batch 1, {settings['device']})")
        else:
            lines.append("             (one model timed: the FP32 reference is the X.onnx beside an X.int8-*.onnx model)")
    lines.append("files")
    lines += [f"  video      {files['video']}", f"  jsonl      {files['jsonl']}"]
    if files["bench"]:
        lines.append(f"  bench      {', '.join(files['bench'])}")
    lines.append(f"  summary    {files['summary']}")
    if files["clip"]:
        lines.append(f"  clip       {files['clip']} (cached, reused next time)")
    card = zoo.model_card()
    if summary["shipped"] and card is not None:
        lines.append(f"model card: {card} (trained on synthetic scenes: see its limits)")
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
