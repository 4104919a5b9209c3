"""Run statistics: per-source counters, latency distributions from per-frame timestamps, summaries.

Stage latencies come from each Perception's timestamps (captured -> preprocessed -> inferred ->
postprocessed -> written, `time.perf_counter()`), so they include queue waits: they are what a frame
lives through. Work times (`busy`) are the seconds each stage spent computing, per frame, without
waits: `fps` vs `model_fps` and `pre_post_ms` compare the whole pipeline with the model alone.
"""

from __future__ import annotations

import random
import threading
import time
from array import array
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from engines.perception import STAGES


def summarize(values_ms: list[float] | np.ndarray) -> dict[str, float]:
    """count, mean, median, p90, p99 and max of a list of milliseconds (empty: count 0 only)."""
    values = np.asarray(values_ms, dtype=np.float64)
    if not values.size:
        return {"count": 0}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "median": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(values.max()),
    }


def describe(samples_ms) -> dict[str, float]:
    """`summarize` plus min, p95, std and CV (%), rounded: the benchmark's fuller summary."""
    values = np.asarray(samples_ms, dtype=np.float64)
    out = summarize(values)
    if not values.size:
        return out
    out.update(min=values.min(), p95=np.percentile(values, 95), std=values.std())
    out["cv_percent"] = 100.0 * out["std"] / out["mean"] if out["mean"] > 0 else 0.0
    order = ("count", "min", "median", "mean", "p90", "p95", "p99", "max", "std", "cv_percent")
    return {k: (out[k] if k == "count" else round(float(out[k]), 4)) for k in order}


class Reservoir:
    """A run's values (ms) in bounded memory: every value up to `size`, then a uniform random sample of `size`
    of them (reservoir sampling), so a live run of hours neither grows without end nor biases its percentiles."""

    def __init__(self, size: int = 100_000):
        self.values, self.size, self.seen = array("d"), size, 0
        self._random = random.Random(0)

    def append(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
        elif (slot := self._random.randrange(self.seen)) < self.size:
            self.values[slot] = value

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self):
        return iter(self.values)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.array(self.values, dtype=dtype or np.float64)


@dataclass
class SourceStats:
    """What happened to one source. `state`: starting, running, reconnecting, ended, lost, failed, stopped."""

    name: str
    live: bool
    state: str = "starting"
    captured: int = 0
    processed: int = 0
    dropped: int = 0
    skipped: int = 0
    reconnects: int = 0
    gap_s: float = 0.0
    error: str = ""
    first_result: float | None = None
    last_result: float | None = None
    stage_ms: dict[str, Reservoir] = field(
        default_factory=lambda: {s: Reservoir() for s in STAGES if s not in ("captured", "started")})
    total_ms: Reservoir = field(default_factory=Reservoir)
    recent: deque = field(default_factory=lambda: deque(maxlen=120))  # (time, capture-to-result ms)

    @property
    def failed(self) -> bool:
        return self.state in ("failed", "lost")

    def add_result(self, timestamps: dict[str, float]) -> None:
        """Record one written frame from its timestamps (see STAGES)."""
        present = [s for s in STAGES if s in timestamps]
        for previous, stage in zip(present, present[1:]):
            self.stage_ms[stage].append((timestamps[stage] - timestamps[previous]) * 1e3)
        now = timestamps.get("written", time.perf_counter())
        total = (now - timestamps[present[0]]) * 1e3 if present else 0.0
        self.total_ms.append(total)
        self.recent.append((now, total))
        self.processed += 1
        self.first_result = self.first_result if self.first_result is not None else now
        self.last_result = now

    def fps(self) -> float:
        """Results per second over the whole run."""
        if self.processed < 2 or self.first_result is None or self.last_result == self.first_result:
            return 0.0
        return (self.processed - 1) / (self.last_result - self.first_result)

    def recent_fps_latency(self) -> tuple[float, float, float]:
        """(fps, median ms, p99 ms) over the last ~120 results, for the live status line."""
        if len(self.recent) < 2:
            return 0.0, *(2 * [self.recent[0][1] if self.recent else 0.0])
        times = [t for t, _ in self.recent]
        latencies = [ms for _, ms in self.recent]
        span = times[-1] - times[0]
        fps = (len(times) - 1) / span if span > 0 else 0.0
        p50, p99 = np.percentile(latencies, [50, 99])
        return fps, float(p50), float(p99)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "live": self.live,
            "state": self.state,
            "error": self.error,
            "captured": self.captured,
            "processed": self.processed,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "reconnects": self.reconnects,
            "gap_s": round(self.gap_s, 3),
            "fps": round(self.fps(), 2),
            "latency_ms": summarize(self.total_ms),
            "stage_ms": {stage: summarize(values) for stage, values in self.stage_ms.items()},
        }


class RunStats:
    """Counters of a whole run, shared by the pipeline's threads (one lock for all updates)."""

    def __init__(self, sources: list[SourceStats]):
        self.sources = sources
        self.lock = threading.Lock()
        self.busy_s = {"preprocess": 0.0, "infer": 0.0, "postprocess": 0.0, "sinks": 0.0}
        self.frames_by_stage = dict.fromkeys(self.busy_s, 0)
        self.batches = 0
        self.started = time.perf_counter()
        self.ended: float | None = None

    def add_busy(self, stage: str, seconds: float, frames: int) -> None:
        """Add `seconds` of work by `stage` on `frames` frames."""
        with self.lock:
            self.busy_s[stage] = self.busy_s.get(stage, 0.0) + seconds  # optional stages (driving) appear when used
            self.frames_by_stage[stage] = self.frames_by_stage.get(stage, 0) + frames
            self.batches += stage == "infer"

    def per_frame_ms(self, stage: str) -> float:
        frames = self.frames_by_stage[stage]
        return self.busy_s[stage] / frames * 1e3 if frames else 0.0

    def summary(self) -> dict:
        """JSON-ready summary: per source, plus end-to-end fps vs model-only throughput."""
        wall = (self.ended or time.perf_counter()) - self.started
        processed = sum(s.processed for s in self.sources)
        infer_s = self.busy_s["infer"]
        return {
            "wall_s": round(wall, 3),
            "processed": processed,
            "fps": round(processed / wall, 2) if wall > 0 else 0.0,
            "model_fps": round(self.frames_by_stage["infer"] / infer_s, 2) if infer_s > 0 else 0.0,
            "batches": self.batches,
            "work_ms_per_frame": {stage: round(self.per_frame_ms(stage), 3) for stage in self.busy_s},
            "pre_post_ms": round(self.per_frame_ms("preprocess") + self.per_frame_ms("postprocess"), 3),
            "sources": [s.to_dict() for s in self.sources],
        }
