"""Time `data convert --from bdd100k` (1 thread vs N, interleaved in one process) and opening the converted split.

Builds a release-shaped tree of N 1280x720 frames (JPEG images, 0/1/2 drivable and 255-background lane masks,
det_20 list) in a temporary folder, prints the figures and saves them as JSON with the load average.

    python scripts/bench_convert.py --n 60 --workers 4 --out runs/bench_convert.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from model.bdd import BDDDataset
from model.convert import convert

H, W = 720, 1280


def release(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for sub in ("images/100k/train", "labels/drivable/masks/train", "labels/lane/masks/train", "labels/det_20"):
        (root / sub).mkdir(parents=True)
    frames = []
    for i in range(n):
        image = cv2.resize(rng.integers(0, 255, (45, 80, 3), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(root / f"images/100k/train/{i:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        drivable = np.full((H, W), 2, np.uint8)
        drivable[450:, 300:900], drivable[450:, 900:1200] = 0, 1
        lane = np.full((H, W), 255, np.uint8)
        cv2.line(lane, (200, 719), (600, 400), 3, 8)
        cv2.line(lane, (1100, 719), (700, 400), 130, 8)
        cv2.imwrite(str(root / f"labels/drivable/masks/train/{i:05d}.png"), drivable)
        cv2.imwrite(str(root / f"labels/lane/masks/train/{i:05d}.png"), lane)
        box = {"x1": 10.0, "y1": 10.0, "x2": 100.0, "y2": 80.0}
        frames.append({"name": f"{i:05d}.jpg", "labels": [{"category": "car", "box2d": box}] * 12})
    (root / "labels/det_20/det_train.json").write_text(json.dumps(frames))


def stats(seconds: list[float], per: int = 1) -> dict:
    ms = np.asarray(seconds) * 1000 / per
    return {"median_ms": round(float(np.median(ms)), 1), "p90_ms": round(float(np.percentile(ms, 90)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "runs": len(ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="frames in the release-shaped tree")
    parser.add_argument("--workers", type=int, default=4, help="threads compared against 1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_convert.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        release(src, args.n)
        runs: dict[int, list[float]] = {1: [], args.workers: []}
        for _ in range(args.repeats):
            for workers in runs:  # interleaved: both see the same machine load
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                convert("bdd100k", src, out, workers=workers)
                runs[workers].append(time.perf_counter() - t0)
        opens = []
        for _ in range(5):
            t0 = time.perf_counter()
            BDDDataset(out, "train")
            opens.append(time.perf_counter() - t0)
    result = {
        "frames": args.n, "size": f"{W}x{H}", "cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()],
        "convert_ms_per_image": {str(w): stats(t, args.n) for w, t in runs.items()},
        "speedup": round(float(np.median(runs[1]) / np.median(runs[args.workers])), 2),
        "open_split_ms": stats(opens),
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
