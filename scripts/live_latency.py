"""Live capture-to-result latency with and without recording, and with four streams, in one process.

    .venv/bin/python scripts/live_latency.py --model app/models/roadsight-n.int8-trt.onnx \\
        --clip drive.mp4 --out runs/latency [--rounds 2] [--seconds 30] [--device auto|cpu|openvino]

First the model alone (batch 1, `app.bench.model_only` on the clip's first frame), then `--rounds` rounds of
four live setups of `--seconds` each (the clip replayed as a live feed at its fps, as `roadsight run --live`,
and looped as the soak does): 1 stream with JSONL; 1 stream with JSONL and a recording (`--save`); 4 streams
with JSONL and recordings; and, for comparison, 1 stream whose recording is drawn and encoded on the result
path (the policy before). Prints and saves
OUT/live_latency.json: capture-to-result p50/p99 (the JSONL's `latency_ms.total`), fps, recording lag, the
load average, and the targets as ratios (results p99 vs model-only p99 + one frame interval; fps vs the
JSONL-only run; 4 streams' p99 vs the single JSONL-only p99 and their fps spread).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

import engines
from app.bench import first_frame, model_only
from app.pipeline import Pipeline, StreamSettings
from app.run import RunOptions, build_sinks
from app.sinks import JsonlSink, SinkSet, VideoSink
from app.soak import Looped, run_for
from app.sources import open_source, quiet_opencv

SETUPS = (("1 stream, JSONL", 1, False), ("1 stream, JSONL + recording", 1, True), ("4 streams, JSONL + recording", 4, True),
          ("1 stream, recording in the result path", 1, "inline"))  # the policy before the Recorder, for comparison


def live_run(model: Path, device: str, clip: Path, streams: int, save: bool | str, out: Path, seconds: float) -> dict:
    """One live run of `streams` copies of the clip for `seconds`; per source results, fps, latencies and recording lags."""
    options = RunOptions(model=model, sources=[str(clip)] * streams, jsonl=out / "live.jsonl",
                         save=out / "live.mp4" if save else None, stream=StreamSettings(device=device, live=True))
    sources = [Looped(open_source(spec, live=True)) for spec in options.sources]
    if save == "inline":  # the same outputs, written on the result path (SinkSet's file policy)
        video = VideoSink(out / "live.mp4", lambda: sources[0].fps or 30.0, real_time=True)
        sinks = [SinkSet(video=video, jsonl=JsonlSink(out / "live.jsonl"), live=False)]
    else:
        sinks = build_sinks(sources, options)
    pipeline = Pipeline(sources=sources, engine_factory=lambda: engines.load(model, device), sinks=sinks,
                        settings=options.stream, log=lambda _: None)
    stats = run_for(pipeline, seconds, handle_signals=False)
    return {
        "fps": [s.fps() for s in stats.sources],
        "latency_ms": [list(s.total_ms) for s in stats.sources],
        "record_lag_ms": [list(k.recorder.lag_ms) if k.recorder else [] for k in sinks],
        "dropped": [s.dropped for s in stats.sources],
    }


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/latency"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each live run (the clip loops)")
    parser.add_argument("--device", default="auto", help="auto: the fastest installed CPU backend (OpenVINO on x86-64)")
    parser.add_argument("--runs", type=int, default=200, help="model-only timed runs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    quiet_opencv()
    load = [os.getloadavg()[0]]
    device = engines.fastest_cpu_device() if args.device == "auto" else args.device
    with engines.load(args.model, device) as engine:
        [alone], _ = model_only([(args.model.name, engine)], [1], args.runs, 20, first_frame(args.clip))
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in SETUPS}
    for _ in range(args.rounds):  # the setups alternate, so machine noise hits all of them
        for name, streams, save in SETUPS:
            runs[name].append(live_run(args.model, device, args.clip, streams, save, args.out, args.seconds))
            load.append(os.getloadavg()[0])
    clip = open_source(str(args.clip))
    clip.open()
    interval_ms = 1000.0 / (clip.fps or 30.0)  # one frame interval of the live feed
    clip.close()
    rows = {}
    for name, streams, _ in SETUPS:
        latency = [v for run in runs[name] for per_source in run["latency_ms"] for v in per_source]
        lag = [v for run in runs[name] for per_source in run["record_lag_ms"] for v in per_source]
        per_source_fps = [float(np.mean([run["fps"][i] for run in runs[name]])) for i in range(streams)]
        per_source_p99 = [pct([v for run in runs[name] for v in run["latency_ms"][i]], 99) for i in range(streams)]
        rows[name] = {"pipeline_fps": round(sum(per_source_fps), 2), "per_source_fps": [round(f, 2) for f in per_source_fps],
                      "p50_ms": pct(latency, 50), "p99_ms": pct(latency, 99), "per_source_p99_ms": per_source_p99,
                      "record_lag_p50_ms": pct(lag, 50), "record_lag_p99_ms": pct(lag, 99),
                      "dropped": sum(d for run in runs[name] for d in run["dropped"])}
    one, rec, four, _ = (rows[name] for name, _, _ in SETUPS)
    model_p99 = alone["latency_ms"]["p99"]
    targets = {
        "1 stream + recording: result p99 <= model-only p99 + 33 ms": [rec["p99_ms"], round(model_p99 + interval_ms, 1)],
        "1 stream + recording: fps >= 0.9 x JSONL-only fps": [round(rec["pipeline_fps"] / one["pipeline_fps"], 3), 0.9],
        "4 streams + recording: worst source p99 <= 2 x single JSONL-only p99": [max(four["per_source_p99_ms"]), round(2 * one["p99_ms"], 1)],
        "4 streams + recording: per-source fps spread <= 20%": [
            round(100 * (max(four["per_source_fps"]) - min(four["per_source_fps"])) / max(four["per_source_fps"]), 1), 20.0],
    }
    report = {"model": str(args.model), "device": device, "clip": str(args.clip), "rounds": args.rounds,
              "seconds": args.seconds, "load_average_1min": load,
              "model_only_ms": {k: alone["latency_ms"][k] for k in ("median", "p90", "p99")}, "setups": rows, "targets": targets}
    (args.out / "live_latency.json").write_text(json.dumps(report, indent=2))
    print(f"{args.model.name} on {device}; model alone: median {alone['latency_ms']['median']:.1f} ms, p99 {model_p99:.1f} ms; load average {load}")
    for name, row in rows.items():
        print(f"{name:30s} fps {row['pipeline_fps']:6.1f} (per source {row['per_source_fps']})  result p50 {row['p50_ms']} "
              f"p99 {row['p99_ms']} ms  recording lag p50 {row['record_lag_p50_ms']} p99 {row['record_lag_p99_ms']} ms")
    for target, (value, limit) in targets.items():
        met = value <= limit if "fps >=" not in target else value >= limit
        print(f"{'met' if met else 'NOT met'}: {target}: {value} vs {limit}")
    print(f"saved {args.out / 'live_latency.json'}")


if __name__ == "__main__":
    main()
