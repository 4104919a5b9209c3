"""Model-only latency of several engines, interleaved in one run, like trtexec's performance summary.

Every configuration (engine x batch size) runs once per round, round-robin, with the starting
configuration rotated each round, so machine noise (clock changes, other processes) hits all alike.
The timer wraps `Engine.infer` (host wall time: copies and synchronisation included); engines that
measure device stages themselves (TensorRT with CUDA events) add `h2d`, `compute` and `d2h`.
Pre- and post-processing are excluded here; the pipeline mode (`app.benchpipe`) measures them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.stats import describe
from engines.base import Engine
from engines.errors import RoadsightError
from engines.meta import format_imgsz

DEVICE_STAGES = ("h2d", "compute", "d2h")


def parse_batches(text: str) -> list[int]:
    """'1,4,8' -> [1, 4, 8] (positive, unique, in the given order)."""
    try:
        batches = [int(part) for part in str(text).replace(" ", "").split(",") if part]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        raise RoadsightError(f"--batch: cannot read {text!r}. Expected positive integers separated by commas, such as 1,4,8.")
    return list(dict.fromkeys(batches))


def display_names(paths: list[Path]) -> list[str]:
    """Short unique labels: file names, or parent/name where two files share a name."""
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def describe_model(engine: Engine, name: str, device: str, threads: int) -> dict:
    """What the JSON states about one engine: backend, precision (stored and actually run), input, batch range."""
    meta, spec = engine.meta, engine.inputs[0]
    return {
        "name": name,
        "path": str(engine.path),
        "backend": engine.backend,
        "device": device,
        "threads": threads if engine.backend in ("onnxruntime", "openvino") else None,
        "precision": meta.precision,
        "runtime_precision": getattr(engine, "runtime_precision", None),
        "precision_hint": getattr(engine, "precision", None) if engine.backend == "openvino" else None,
        "imgsz": format_imgsz(meta.imgsz),
        "input": spec.describe(),
        "batch": "dynamic" if spec.shape[0] is None else spec.shape[0],
        "max_batch": engine.max_batch,
        "seg_output": meta.seg_output,
        "attention": meta.attention,
        "size": meta.size,
    }


def supports_batch(engine: Engine, batch: int) -> bool:
    """True when the engine's input takes `batch` images at once."""
    fixed = engine.inputs[0].shape[0]
    if fixed is not None:
        return fixed == batch
    return engine.max_batch is None or batch <= engine.max_batch


def make_feed(engine: Engine, batch: int, frame: np.ndarray | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch for the engine's image input: the letterboxed `frame` repeated, or seeded noise in [0, 1)."""
    spec = engine.inputs[0]
    h, w = engine.meta.imgsz
    if frame is not None:
        from engines.preprocess import letterbox

        one, _ = letterbox([frame], (h, w), spec.dtype)
        images = np.repeat(one, batch, axis=0)
    else:
        images = np.random.default_rng(seed).random((batch, 3, h, w), dtype=np.float32).astype(spec.dtype)
    return {spec.name: np.ascontiguousarray(images)}


@dataclass
class Config:
    """One engine at one batch size, and the samples collected for it."""

    model: str
    engine: Engine
    batch: int
    feed: dict[str, np.ndarray]
    samples: list[float] = field(default_factory=list)
    device: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in DEVICE_STAGES})

    def run(self) -> None:
        start = time.perf_counter()
        self.engine.infer(self.feed)
        self.samples.append((time.perf_counter() - start) * 1e3)
        for stage in DEVICE_STAGES:
            if stage in self.engine.last_timing:
                self.device[stage].append(float(self.engine.last_timing[stage]))

    def result(self) -> dict:
        """Latency summary, per-image latency, throughput (images/s), device stages and raw samples."""
        latency = describe(self.samples)
        device = {k: describe(v) for k, v in self.device.items() if v}
        return {
            "model": self.model,
            "batch": self.batch,
            "latency_ms": latency,
            "per_image_ms": round(latency["median"] / self.batch, 4),
            "throughput_ips": round(self.batch * 1e3 / latency["mean"], 2) if latency["mean"] > 0 else None,
            "device_ms": device,
            "samples_ms": [round(s, 4) for s in self.samples],
        }


def make_configs(
    engines: list[tuple[str, Engine]], batches: list[int], frame: np.ndarray | None = None
) -> tuple[list[Config], list[str]]:
    """Every supported (engine, batch) pair, and a note for each skipped one."""
    configs, skipped = [], []
    for name, engine in engines:
        for batch in batches:
            if supports_batch(engine, batch):
                configs.append(Config(name, engine, batch, make_feed(engine, batch, frame)))
            else:
                fixed = engine.inputs[0].shape[0]
                limit = f"fixed batch {fixed}" if fixed is not None else f"max batch {engine.max_batch}"
                skipped.append(f"{name}: batch {batch} skipped ({limit})")
    if not configs:
        raise RoadsightError(
            f"bench: no engine takes any of the batch sizes {batches}. Expected at least one match, got "
            f"{'; '.join(skipped)}. Pass --batch with the engines' batch size."
        )
    return configs, skipped


def interleave(configs: list[Config], runs: int, warmup: int, progress=None) -> None:
    """Warm up, then time `runs` rounds; each round runs every config once, starting one later each time.

    progress: optional callable(done_rounds) called after each timed round.
    """
    for _ in range(warmup):
        for config in configs:
            config.engine.infer(config.feed)
    for config in configs:
        config.samples.clear()
        for values in config.device.values():
            values.clear()
    count = len(configs)
    for round_index in range(runs):
        offset = round_index % count
        for config in configs[offset:] + configs[:offset]:
            config.run()
        if progress is not None:
            progress(round_index + 1)


def warnings(results: list[dict], cv_limit: float = 10.0) -> list[str]:
    """trtexec-style warnings: unstable timings, transfer-bound or host-bound device runs."""
    notes = []
    for r in results:
        label, lat, device = f"{r['model']} batch {r['batch']}", r["latency_ms"], r["device_ms"]
        if lat["cv_percent"] > cv_limit:
            notes.append(f"{label}: latency varies (CV {lat['cv_percent']:.0f}% > {cv_limit:.0f}%); quiet the machine, lock clocks or raise --runs.")
        compute = device.get("compute", {}).get("median")
        if compute:
            if max(device.get("h2d", {}).get("median", 0), device.get("d2h", {}).get("median", 0)) >= compute:
                notes.append(f"{label}: transfer-bound (a host/device copy takes at least the compute time).")
            if compute < 0.5 * lat["median"]:
                notes.append(f"{label}: host-bound (GPU compute {compute:.3f} ms is under half the {lat['median']:.3f} ms call).")
    return notes


def add_ratios(results: list[dict], first_model: str) -> None:
    """Give each result `vs_first`: median latency and throughput relative to the first model, same batch."""
    reference = {r["batch"]: r for r in results if r["model"] == first_model}
    for result in results:
        base = reference.get(result["batch"])
        if base is None:
            result["vs_first"] = None
            continue
        result["vs_first"] = {
            "speedup": round(base["latency_ms"]["median"] / result["latency_ms"]["median"], 3),
            "throughput": round(result["throughput_ips"] / base["throughput_ips"], 3),
        }


INCLUDES = {
    "model_only": "Engine.infer only: host wall time including host/device copies and synchronisation; "
    "letterbox, NMS and mask post-processing excluded",
    "pipeline": "decode, letterbox, infer, NMS and mask resizing to frame size, sinks (JSONL; drawing and mp4v "
    "encoding in the second run); stages overlap in threads; the clip is read as a file (every frame, "
    "back-pressure), so latency includes waits in the bounded queues; vs model = fps / model-only img/s at batch 1",
}


def parse_devices(text: str) -> list[str]:
    """'cpu,openvino' -> ['cpu', 'openvino'] (unique, in order); empty -> ['auto']."""
    return list(dict.fromkeys(d.strip() for d in str(text).split(",") if d.strip())) or ["auto"]


def open_engines(paths: list[Path], device: str, threads: int, precision: str = "auto") -> list[tuple[str, Engine]]:
    """Load every model on every device of `device` ('cpu,openvino'); labels get '@device' when there are several.

    'auto' is the fastest installed CPU backend for an .onnx (`engines.fastest_cpu_device`); ONNX Runtime and
    OpenVINO get `threads`, OpenVINO the `precision` hint, TensorRT engines CUDA-event timing (opened once).
    """
    import engines

    devices = parse_devices(device)
    opened: list[tuple[str, Engine]] = []
    try:
        for index, device in enumerate(devices):
            for name, path in zip(display_names(paths), paths):
                backend = engines.SUFFIXES.get(path.suffix.lower())
                if backend != "onnxruntime" and index:
                    continue  # only an .onnx changes backend with the device
                resolved = engines.fastest_cpu_device() if device == "auto" and backend == "onnxruntime" else device
                options = {"intra_op_threads": threads} if backend == "onnxruntime" else {}
                if backend == "onnxruntime" and resolved.lower().startswith("openvino"):
                    options = {"threads": threads, "precision": precision}
                if backend == "tensorrt":
                    options["timing"] = True
                label = f"{name}@{resolved}" if len(devices) > 1 and backend == "onnxruntime" else name
                opened.append((label, engines.load(path, device=resolved, **options)))
    except BaseException:
        for _, engine in opened:
            engine.close()
        raise
    return opened


def first_frame(source: str | Path) -> np.ndarray:
    """The first frame of a video or image file (what model-only runs feed when --source is given)."""
    import cv2

    capture = cv2.VideoCapture(str(source))
    ok, frame = capture.read() if capture.isOpened() else (False, None)
    capture.release()
    if not ok:
        raise RoadsightError(
            f"{source}: cannot read a frame. Expected a video or image file OpenCV can decode, got none. Check the path."
        )
    return frame


def model_only(
    engines: list[tuple[str, Engine]], batches: list[int], runs: int, warmup: int,
    frame: np.ndarray | None = None, progress=None,
) -> tuple[list[dict], list[str]]:
    """Interleaved model-only timing of every (engine, batch); returns (results with ratios, notes)."""
    if runs < 1 or warmup < 0:
        raise RoadsightError(f"bench: bad run counts. Expected --runs >= 1 and --warmup >= 0, got {runs} and {warmup}.")
    configs, skipped = make_configs(engines, batches, frame)
    interleave(configs, runs, warmup, progress)
    results = [config.result() for config in configs]
    add_ratios(results, engines[0][0])
    return results, skipped + warnings(results)


def run(
    models: list[Path], batches: list[int], runs: int, warmup: int, device: str = "cpu", threads: int = 0,
    source: Path | None = None, name: str = "bench", console=None, frames: int = 0, precision: str = "auto",
) -> dict:
    """The whole benchmark: model-only (interleaved), then pipeline runs on `source`; returns the report.

    `device` may list several, comma-separated ('cpu,openvino'): every model runs on each; 'auto' is the
    fastest installed CPU backend. `precision` is OpenVINO's inference precision hint ('f32' forces FP32).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from app import sysinfo

    if not models:
        raise RoadsightError("bench: no model given. Expected one or more --model paths, got none. Example: --model a.onnx --model b.onnx.")
    report = {
        "format": "roadsight-bench",
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": sysinfo.machine(),
        "versions": sysinfo.versions(),
        "settings": {"runs": runs, "warmup": warmup, "batches": batches, "device": device, "threads": threads,
                     "precision_hint": precision,
                     "source": str(source) if source else None,
                     "pipeline_frames": frames or "all", "order": "interleaved round-robin, rotated start"},
        "includes": dict(INCLUDES),
    }
    frame = first_frame(source) if source else None
    opened = open_engines([Path(m) for m in models], device, threads, precision)
    try:
        report["models"] = [describe_model(engine, label, getattr(engine, "device", device), threads) for label, engine in opened]
        with Progress(TextColumn("model-only"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("rounds", total=runs)
            results, skipped = model_only(opened, batches, runs, warmup, frame,
                                          progress=lambda done: bar.update(task, completed=done))
        report["model_only"], report["notes"] = results, skipped
        if source is not None:
            from app.benchdraw import draw_encode
            from app.benchpipe import pipeline_runs

            report["draw_encode"] = draw_encode(opened, Path(source), results, frames, console=console)
            report["pipeline"] = pipeline_runs(opened, Path(source), results, frames, console=console)
    finally:
        for _, engine in opened:
            engine.close()
    return report


def save(report: dict, out: Path) -> tuple[Path, Path | None, str | None]:
    """Write OUT/bench.json and OUT/bench.png; returns (json path, png path or None, reason PNG skipped)."""
    import json

    from app.benchplot import save_plot

    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "bench.json"
    json_path.write_text(json.dumps(report, indent=1))
    png_path = out / "bench.png"
    reason = save_plot(report, png_path)
    return json_path, (None if reason else png_path), reason
