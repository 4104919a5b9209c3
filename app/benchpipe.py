"""Pipeline mode of `roadsight bench`: the threaded pipeline (app.pipeline) on a real clip, per stage.

For every engine the clip runs twice through the same pipeline as `roadsight run`: JSONL only, then
with drawing and video encoding as well (outputs go to a temporary folder). Reported per run:
- `work_ms`: mean compute time per frame of each stage (decode, preprocess, infer, postprocess, the driving
  stage's track, lanes and ego, sinks), without queue waits — where the time goes;
- `stage_latency_ms`: what a frame lives through from one timestamp to the next (waits included) and
  `capture_to_result_ms` (frame decoded -> outputs written), as distributions;
- `fps` end to end, and `fps_vs_model_only`: fps / the same engine's model-only throughput at batch 1
  measured earlier in this run (target >= 0.85 at 1280x720), and `pre_post_ms` per frame.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from app.pipeline import LentEngine
from app.stats import describe
from engines.base import Engine

OUTPUT_MODES = (("jsonl", False), ("draw+video+jsonl", True))


class TimedSource:
    """A Source whose read() durations (decode) are recorded and that ends after `limit` frames (0: none)."""

    def __init__(self, source, limit: int = 0):
        self._source, self.limit = source, limit
        self.decode_ms: list[float] = []

    def __getattr__(self, name):
        return getattr(self._source, name)

    @property
    def frame_count(self) -> int | None:
        count = self._source.frame_count
        return min(count, self.limit) if count and self.limit else count

    def early_end(self, captured: int) -> str | None:
        return None if self.limit and captured >= self.limit else self._source.early_end(captured)

    def read(self):
        if self.limit and len(self.decode_ms) >= self.limit:
            return None
        start = time.perf_counter()
        image = self._source.read()
        if image is not None:
            self.decode_ms.append((time.perf_counter() - start) * 1e3)
        return image


def model_only_ips(results: list[dict], model: str) -> tuple[float | None, int | None]:
    """(images/s, batch) of this engine's model-only run at batch 1, else at its smallest batch."""
    runs = sorted((r for r in results if r["model"] == model), key=lambda r: r["batch"])
    return (runs[0]["throughput_ips"], runs[0]["batch"]) if runs else (None, None)


def run_once(engine: Engine, model: str, source: Path, draw: bool, folder: Path, log, frames: int = 0) -> dict:
    """One pipeline run over the whole clip; returns the measured numbers for the report."""
    from app.pipeline import Pipeline, StreamSettings
    from engines.driving import DrivingOptions
    from app.sinks import JsonlSink, SinkSet, VideoSink
    from app.sources import open_source

    timed = TimedSource(open_source(str(source), live=False), frames)
    stem = f"{Path(model).stem}-{'video' if draw else 'jsonl'}"
    sinks = SinkSet(
        video=VideoSink(folder / f"{stem}.mp4", lambda: timed.fps or 30.0) if draw else None,
        jsonl=JsonlSink(folder / f"{stem}.jsonl"),
    )
    settings = StreamSettings(driving=DrivingOptions())  # as `run` on a video: tracks, lanes, ego facts
    stats = Pipeline(sources=[timed], engine_factory=lambda: LentEngine(engine), sinks=[sinks], settings=settings,
                     log=log).run(handle_signals=False)
    summary, source_stats = stats.summary(), stats.sources[0]
    work = {"decode": describe(timed.decode_ms).get("mean", 0.0)}
    work.update({stage: ms for stage, ms in summary["work_ms_per_frame"].items()})
    return {
        "model": model,
        "outputs": "draw+video+jsonl" if draw else "jsonl",
        "frames": source_stats.processed,
        "wall_s": summary["wall_s"],
        "fps": summary["fps"],
        "work_ms": {stage: round(ms, 4) for stage, ms in work.items()},
        "decode_ms": describe(timed.decode_ms),
        "stage_latency_ms": {stage: describe(v) for stage, v in source_stats.stage_ms.items()},
        "capture_to_result_ms": describe(source_stats.total_ms),
        "pre_post_ms": summary["pre_post_ms"],
        "model_fps_in_pipeline": summary["model_fps"],
        "state": source_stats.state,
        "error": source_stats.error,
    }


def pipeline_runs(
    opened: list[tuple[str, Engine]], source: Path, results: list[dict], frames: int = 0, console=None
) -> list[dict]:
    """Both output modes for every engine on the first `frames` frames (0: all); adds the share of model-only."""
    import cv2

    def log(message: str) -> None:
        if console is not None:
            console.print(message, highlight=False)

    capture = cv2.VideoCapture(str(source))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)))
    capture.release()
    runs = []
    with tempfile.TemporaryDirectory(prefix="roadsight-bench-") as folder:
        for model, engine in opened:
            reference, batch = model_only_ips(results, model)
            for _, draw in OUTPUT_MODES:
                if console is not None:
                    console.print(f"pipeline: {model} on {source.name} ({'draw + encode + JSONL' if draw else 'JSONL'})", highlight=False)
                run = run_once(engine, model, source, draw=draw, folder=Path(folder), log=log, frames=frames)
                run["frame_size"] = f"{size[1]}x{size[0]}"
                run["model_only_ips"], run["model_only_batch"] = reference, batch
                run["fps_vs_model_only"] = round(run["fps"] / reference, 4) if reference else None
                runs.append(run)
    return runs
