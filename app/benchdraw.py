"""Draw + encode cost per frame in `roadsight bench --source`: `engines.draw.draw` and an mp4v write, timed alone.

The clip's first frames are run through the first engine once (untimed) for real masks and boxes; then
each frame is drawn (`draw`) and written to an mp4v file (`encode`, OpenCV's VideoWriter, as the video
sink), timed per frame. The ratio compares the median of draw + encode with the first engine's
model-only median at batch 1 measured earlier in the same run.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from app.stats import describe
from engines.base import Engine

MAX_FRAMES = 60


def _frames(source: Path, count: int) -> list:
    import cv2

    capture, frames = cv2.VideoCapture(str(source)), []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def draw_encode(opened: list[tuple[str, Engine]], source: Path, results: list[dict], frames: int = 0, console=None) -> dict:
    """Per-frame `draw`, `encode` and `draw_encode` summaries (ms) and `vs_model_only` of the first engine."""
    import cv2

    from engines import Predictor
    from engines.draw import draw

    model, engine = opened[0]
    images = _frames(source, min(frames or MAX_FRAMES, MAX_FRAMES))
    if console is not None:
        console.print(f"draw + encode: {len(images)} frames of {source.name}, results of {model}", highlight=False)
    predictor = Predictor(engine)
    perceptions = [predictor([image])[0] for image in images]
    timings = {"draw": [], "encode": [], "draw_encode": []}
    with tempfile.TemporaryDirectory(prefix="roadsight-draw-") as folder:
        height, width = images[0].shape[:2]
        writer = cv2.VideoWriter(str(Path(folder) / "draw.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
        for image, perception in zip(images, perceptions):
            start = time.perf_counter()
            annotated = draw(image, perception, fps=30.0, latency_ms=20.0)
            drawn = time.perf_counter()
            writer.write(annotated)
            done = time.perf_counter()
            timings["draw"].append((drawn - start) * 1e3)
            timings["encode"].append((done - drawn) * 1e3)
            timings["draw_encode"].append((done - start) * 1e3)
        writer.release()
    reference = next((r["latency_ms"]["median"] for r in sorted(results, key=lambda r: r["batch"]) if r["model"] == model), None)
    total = describe(timings["draw_encode"])["median"]
    return {
        "frames": len(images),
        "frame_size": f"{width}x{height}",
        "codec": "mp4v",
        "masks_from": model,
        **{stage: describe(values) for stage, values in timings.items()},
        "reference_model": model,
        "reference_model_only_median_ms": reference,
        "vs_model_only": round(total / reference, 4) if reference else None,
    }
