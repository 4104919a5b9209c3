"""`roadsight bench --soak MINUTES`: N live streams with recording for a fixed time, sampled as they run.

Every source is played as live (a file loops, paced at its fps), with an annotated recording and a JSONL
per source. Every few seconds the process's resident memory (RSS), each source's fps and capture-to-result
latency and its recording's lag are sampled; `OUT/soak.json` holds the samples and the verdicts (RSS growth
from minute 1 to the last minute and its trend, JSONL lines = results, recordings readable to their last
frame) and `OUT/soak.png` plots latency and memory over time (needs matplotlib, the train extra).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.errors import RoadsightError
from engines.media import frame_count

from app.pipeline import Pipeline, StreamSettings
from app.sinks import JsonlSink, SinkSet, VideoSink, check_output
from app.sources import Source, open_source, quiet_opencv
from app.stats import RunStats, summarize

DEFAULT_FPS = 30.0


@dataclass
class SoakOptions:
    """What `roadsight bench --soak` takes; `interval_s` 0: about 60 samples over the run (1-5 s apart)."""

    model: Path
    sources: list[str]
    minutes: float
    out: Path
    interval_s: float = 0.0
    stream: StreamSettings = field(default_factory=lambda: StreamSettings(live=True))


class Looped(Source):
    """A source that starts again at its end (a file replayed as a live feed for as long as needed)."""

    def __init__(self, source: Source):
        super().__init__(source.spec)
        self.source, self.kind, self.live, self.recording = source, source.kind, True, source.recording
        self.on_empty, self.loops = source.on_empty, 0

    def open(self) -> None:
        self.source.open()
        self.fps, self.frame_count = self.source.fps, None

    def read(self) -> np.ndarray | None:
        image = self.source.read()
        if image is None and self.source.recording:
            self.source.close()
            self.source.open()
            self.loops += 1
            image = self.source.read()
        return image

    def reopen(self, timeout_s: float) -> bool:
        return self.source.reopen(timeout_s)

    def close(self) -> None:
        self.source.close()


def run_for(pipeline: Pipeline, seconds: float, handle_signals: bool = True) -> RunStats:
    """Run `pipeline` for `seconds`, then stop it (queued frames are finished); its RunStats."""
    timer = threading.Timer(seconds, pipeline.stop)
    timer.start()
    try:
        return pipeline.run(handle_signals=handle_signals)
    finally:
        timer.cancel()


def rss_mb() -> float | None:
    """Resident memory of this process in MB (Linux /proc), None where unknown."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class Sampler:
    """Takes one sample every `interval_s` from the pipeline's tick: RSS, and per source fps, latency, lag."""

    def __init__(self, sinks: list[SinkSet], interval_s: float):
        self.sinks, self.interval_s = sinks, interval_s
        self.samples: list[dict] = []
        self.start = time.perf_counter()
        self.next = self.start + interval_s

    def __call__(self, stats: RunStats) -> None:
        now = time.perf_counter()
        if now < self.next:
            return
        self.next += self.interval_s
        sources = []
        for source, sink in zip(stats.sources, self.sinks):
            fps, p50, p99 = source.recent_fps_latency()
            lag50, lag99 = sink.recorder.recent_lag() if sink.recorder else (0.0, 0.0)
            sources.append({"results": source.processed, "fps": round(fps, 2), "latency_p50_ms": round(p50, 1),
                            "latency_p99_ms": round(p99, 1), "record_lag_p50_ms": round(lag50, 1),
                            "record_lag_p99_ms": round(lag99, 1), "dropped": source.dropped, "state": source.state})
        self.samples.append({"t_s": round(now - self.start, 2), "rss_mb": rss_mb(), "sources": sources})


def rss_growth(samples: list[dict]) -> dict:
    """RSS growth (%) from minute 1 to the end, and its trend after minute 1 (MB/min, least squares).

    Growth compares medians of windows, not two samples: RSS swings by tens of MB within seconds as frames
    come and go. The windows are the second minute (60-120 s) and the last minute; in a run under 5 minutes,
    the second and the last fifth of it."""
    rss = [(s["t_s"], s["rss_mb"]) for s in samples if s["rss_mb"] is not None]
    if len(rss) < 4:
        return {"rss_growth_percent": None, "rss_from_s": None, "rss_trend_mb_per_min": None}
    end = rss[-1][0]
    window = min(60.0, 0.2 * end)
    first = [mb for t, mb in rss if window <= t < 2 * window] or [rss[1][1]]
    last = [mb for t, mb in rss if t > end - window] or [rss[-1][1]]
    base = float(np.median(first))
    times, values = zip(*[(t, mb) for t, mb in rss if t >= window])
    trend = float(np.polyfit(np.array(times) / 60.0, values, 1)[0]) if len(times) >= 2 else 0.0
    return {"rss_growth_percent": round(100.0 * (float(np.median(last)) - base) / base, 2), "rss_from_s": window,
            "rss_trend_mb_per_min": round(trend, 2)}


def verdicts(samples: list[dict], stats: RunStats, sinks: list[SinkSet]) -> dict:
    """RSS growth (`rss_growth`), outputs complete, fps spread between sources."""
    outputs = []
    for source, sink in zip(stats.sources, sinks):
        lines = sink.jsonl.lines if sink.jsonl else 0
        video = sink.video
        readable = frame_count(video.path) if video and video.path.exists() else 0
        outputs.append({"source": source.name, "results": source.processed, "jsonl_lines": lines,
                        "jsonl_complete": lines == source.processed, "video_frames_written": video.frames if video else 0,
                        "video_frames_readable": readable, "video_complete": bool(video) and readable == video.frames,
                        "repeats": video.frames - video.results if video else 0,
                        "left_out_s": round(video.unfilled / video.fps, 2) if video and video.frames else 0.0,
                        "skipped": (sink.recorder.skipped if sink.recorder else 0) + (video.paced_out if video else 0),
                        "fps": round(source.fps(), 2), "latency_ms": summarize(source.total_ms),
                        "record_lag_ms": summarize(sink.recorder.lag_ms) if sink.recorder else None})
    fps = [o["fps"] for o in outputs if o["fps"] > 0]
    spread = round(100.0 * (max(fps) - min(fps)) / max(fps), 1) if fps else None
    return {**rss_growth(samples), "fps_spread_percent": spread, "outputs": outputs,
            "all_outputs_complete": all(o["jsonl_complete"] and o["video_complete"] for o in outputs)}


def run(options: SoakOptions, console=None) -> dict:
    """Run the soak; write OUT/soak.json (+ PNG) and per source OUT/soak_I.mp4 / .jsonl; returns the report."""
    import engines

    from app import sysinfo

    if options.minutes <= 0:
        raise RoadsightError(f"--soak {options.minutes:g}: not a duration. Expected minutes > 0, got {options.minutes:g}.")
    if not options.sources:
        raise RoadsightError("--soak: no source. Expected one or more --source (a clip loops as a live feed), got none.")
    check_output(options.out, "--out", folder=True)
    quiet_opencv()
    sources = [Looped(open_source(spec, live=True)) for spec in options.sources]
    sinks = [
        SinkSet(video=VideoSink(options.out / f"soak_{i}.mp4", lambda s=s: s.fps or DEFAULT_FPS, real_time=True),
                jsonl=JsonlSink(options.out / f"soak_{i}.jsonl"), live=True)
        for i, s in enumerate(sources)
    ]
    seconds = options.minutes * 60.0
    sampler = Sampler(sinks, options.interval_s or min(5.0, max(1.0, seconds / 60)))
    notes: list[str] = []
    pipeline = Pipeline(sources=sources, engine_factory=lambda: engines.load(options.model, options.stream.device),
                        sinks=sinks, settings=options.stream, log=notes.append, on_tick=sampler)
    if console is not None:
        console.print(f"soak: {len(sources)} live stream(s) with recording for {options.minutes:g} min "
                      f"(a sample every {sampler.interval_s:g} s) into {options.out}", highlight=False)
    stats = run_for(pipeline, seconds)
    report = {
        "format": "roadsight-soak",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": sysinfo.machine(),
        "settings": {"model": str(options.model), "sources": options.sources, "minutes": options.minutes,
                     "interval_s": sampler.interval_s, "device": options.stream.device},
        "loops": [s.loops for s in sources],
        "notes": notes,
        "samples": sampler.samples,
        "summary": stats.summary(),
        "verdicts": verdicts(sampler.samples, stats, sinks),
    }
    return report


def save(report: dict, out: Path) -> tuple[Path, Path | None]:
    """OUT/soak.json, and OUT/soak.png when matplotlib is installed."""
    import json

    path = out / "soak.json"
    path.write_text(json.dumps(report, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return path, None
    samples = report["samples"]
    t = [s["t_s"] for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for i, name in enumerate(report["settings"]["sources"]):
        top.plot(t, [s["sources"][i]["latency_p99_ms"] for s in samples], label=f"{i}: result p99")
        top.plot(t, [s["sources"][i]["record_lag_p99_ms"] for s in samples], "--", label=f"{i}: recording lag p99")
    top.set_ylabel("ms (last ~120 results)")
    top.legend(fontsize=7)
    bottom.plot(t, [s["rss_mb"] for s in samples])
    bottom.set_ylabel("RSS MB")
    bottom.set_xlabel("seconds")
    fig.suptitle(f"soak: {len(report['settings']['sources'])} live streams with recording")
    fig.tight_layout()
    png = out / "soak.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return path, png
