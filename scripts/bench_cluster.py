"""Throughput of `roadsight video --cluster ray` against the single-process path, on one machine, interleaved.

Usage: .venv/bin/python scripts/bench_cluster.py [--clips 4] [--frames 60] [--rounds 5] [--out runs/bench-cluster]

Each round runs the same synthetic drive clips once per mode, alternating: `local` (one process, the
`roadsight video --workers 1` path), `ray` (`--cluster ray --workers 2` on a local Ray started once; each
run pays for creating its workers and opening the model) and `local-pool` (`--workers 2 --threads 1`,
two local processes). Overheads come from 2-frame clips, one worker each: the time a run spends outside
the clips' pipelines, at 4 and at 12 clips; its growth per added clip is the per-clip cost, Ray's minus the
single process's. Prints median/p90/p99 and the ratios; writes OUT/cluster_bench.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from app import sysinfo, video, zoo
from model.synth_video import write_video

QUIET = Console(file=io.StringIO())


def stats(values: list[float]) -> dict:
    return {f"p{q}": float(np.percentile(values, q)) for q in (50, 90, 99)} | {"runs": values}


def timed(clips: Path, model: Path, work: Path, **options) -> tuple[float, float]:
    """Wall seconds of one `video.run` into a fresh folder (JSONL only: no encoder in the measure), and the
    part of them not spent inside the clips' pipelines (start-up, scheduling, opening and committing clips)."""
    out = Path(tempfile.mkdtemp(dir=work))
    start = time.perf_counter()
    rows = video.run([str(clips)], str(model), out, video=False, console=QUIET, **options)
    seconds = time.perf_counter() - start
    assert all(row.status == "ok" for row in rows), rows
    shutil.rmtree(out)
    return seconds, seconds - sum(row.seconds for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-cluster"))
    args = parser.parse_args()
    import ray

    model = zoo.shipped_model("int8-cpu")
    work = Path(tempfile.mkdtemp(prefix="roadsight-cluster-bench-"))
    drives, smalls = work / "drives", {n: work / f"small{n}" for n in (4, 12)}
    for i in range(args.clips):
        write_video(drives / f"drive{i}.mp4", args.frames, seed=i)
    for count, folder in smalls.items():
        for i in range(count):
            write_video(folder / f"t{i}.mp4", 2, seed=100 + i, width=640, height=360)
    load_before = os.getloadavg()
    start = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    ray_start = time.perf_counter() - start
    modes = {"local": dict(workers=1), "ray": dict(cluster="ray", workers=2), "local-pool": dict(workers=2, threads=1)}
    seconds = {mode: [] for mode in modes}
    small = {(mode, n): [] for mode in ("local", "ray") for n in smalls}
    try:
        for _ in range(args.rounds):
            for mode, options in modes.items():
                seconds[mode].append(timed(drives, model, work, **options)[0])
            for n, folder in smalls.items():
                small["local", n].append(timed(folder, model, work, workers=1)[1])
                small["ray", n].append(timed(folder, model, work, cluster="ray", workers=1)[1])
    finally:
        ray.shutdown()
        shutil.rmtree(work)
    frames = args.clips * args.frames
    per_clip = {mode: (np.median(small[mode, 12]) - np.median(small[mode, 4])) / 8 for mode in ("local", "ray")}
    fixed = {mode: np.median(small[mode, 4]) - 4 * per_clip[mode] for mode in ("local", "ray")}
    report = {
        "clips": args.clips, "frames_per_clip": args.frames, "rounds": args.rounds, "model": model.name,
        "seconds": {mode: stats(values) for mode, values in seconds.items()},
        "fps_median": {mode: frames / float(np.median(values)) for mode, values in seconds.items()},
        "speedup_ray_vs_local": float(np.median(seconds["local"]) / np.median(seconds["ray"])),
        "speedup_local_pool_vs_local": float(np.median(seconds["local"]) / np.median(seconds["local-pool"])),
        "ray_init_s": ray_start,
        "per_clip_s": {mode: float(value) for mode, value in per_clip.items()},
        "ray_overhead_per_clip_s": float(per_clip["ray"] - per_clip["local"]),
        "ray_fixed_overhead_s": float(fixed["ray"] - fixed["local"]),
        "small_clip_overhead_s": {f"{mode}_{n}": stats(values) for (mode, n), values in small.items()},
        "load_before": load_before, "load_after": os.getloadavg(),
        "machine": sysinfo.machine(), "versions": sysinfo.versions() | {"ray": ray.__version__},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster_bench.json").write_text(json.dumps(report, indent=2))
    for mode, values in seconds.items():
        s = report["seconds"][mode]
        print(f"{mode:10s} {frames} frames: median {s['p50']:.2f} s (p90 {s['p90']:.2f}, p99 {s['p99']:.2f}), {report['fps_median'][mode]:.1f} fps")
    print(f"throughput vs local: ray (2 workers) {report['speedup_ray_vs_local']:.2f}x, "
          f"local pool (2 processes) {report['speedup_local_pool_vs_local']:.2f}x")
    print(f"Ray start {ray_start:.1f} s; Ray's overhead over the single process: per run "
          f"{report['ray_fixed_overhead_s']:.2f} s (workers, model), per clip {report['ray_overhead_per_clip_s'] * 1000:.0f} ms")
    print(f"load average before {load_before[0]:.1f}, after {report['load_after'][0]:.1f}; saved {args.out / 'cluster_bench.json'}")


if __name__ == "__main__":
    main()
