"""Time the driving stage (track, lanes, ego) per frame on a clip, apart from the model.

The model runs once over the first FRAMES frames (untimed) to get the Perceptions; then the driving stage
replays them REPEATS times, each frame timed per stage. Prints median / p90 / p99 per stage and saves them
with the machine's load average to OUT (JSON). In the pipeline the stage shares the CPU with inference, so
`roadsight bench --source` and `run` show higher figures on a busy machine.

    python scripts/bench_driving.py CLIP [--camera CAM.yaml] [--frames 300] [--repeats 3] [--out runs/bench-driving.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2

import engines
from app.stats import summarize
from app.zoo import shipped_model
from engines.camera import load_camera
from engines.driving import DrivingOptions, DrivingStage
from engines.predictor import Predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("--camera")
    parser.add_argument("--model", default=None)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="runs/bench-driving.json")
    args = parser.parse_args()
    model = args.model or shipped_model("int8-cpu")
    camera = load_camera(args.camera) if args.camera else None
    perceptions = []
    with engines.load(model, "cpu") as engine:
        predict, cap = Predictor(engine), cv2.VideoCapture(args.clip)
        while len(perceptions) < args.frames:
            ok, image = cap.read()
            if not ok:
                break
            perceptions.append(predict([image])[0])
        cap.release()
    samples: dict[str, list[float]] = {"track": [], "lanes": [], "ego": [], "total": []}
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        stage = DrivingStage(DrivingOptions(track=True, camera=camera))
        for i, perception in enumerate(perceptions):
            start = time.perf_counter()
            facts = stage.update(perception, i / 30.0)
            samples["total"].append((time.perf_counter() - start) * 1e3)
            for key in ("track", "lanes", "ego"):
                samples[key].append(facts.timing_ms[key])
    report = {"clip": str(args.clip), "model": Path(model).name, "frames": len(perceptions), "repeats": args.repeats,
              "cpu_count": os.cpu_count(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "stage_ms": {k: summarize(v) for k, v in samples.items()}}
    for key, stats in report["stage_ms"].items():
        print(f"{key:6s} median {stats['median']:.2f} ms  p90 {stats['p90']:.2f}  p99 {stats['p99']:.2f}  (n={stats['count']})")
    print(f"load average {load_before[0]:.1f} before, {report['load_average_after'][0]:.1f} after, {os.cpu_count()} cores")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
