"""Sink policies: live results never wait for the recording; files keep every frame in order; the soak."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from clips import count_frames, write_clip

import engines
from app.pipeline import Pipeline
from app.sinks import JsonlSink, SinkSet, VideoSink
from app.sources import open_source

ENCODE_S = 0.12  # a recording far slower than the model and the 30 fps source


class SlowVideo(VideoSink):
    """A video sink whose encoding takes ENCODE_S per result (a slow codec, a slow disk)."""

    def write(self, frame, captured, fill=True):
        time.sleep(ENCODE_S)
        super().write(frame, captured, fill)


def run_clip(tmp_path: Path, model: Path, clip: Path, live: bool) -> tuple[SinkSet, list[dict], object]:
    source = open_source(str(clip), live=live)
    sinks = SinkSet(video=SlowVideo(tmp_path / "o.mp4", lambda: source.fps or 30.0, real_time=live),
                    jsonl=JsonlSink(tmp_path / "o.jsonl"), live=live)
    stats = Pipeline([source], lambda: engines.load(model), [sinks], log=lambda _: None).run(handle_signals=False)
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    return sinks, lines, stats.sources[0]


def written_ms(lines: list[dict]) -> float:
    """Median time from postprocessed to written (the result path's own wait), ms."""
    values = sorted(line["latency_ms"]["written"] for line in lines)
    return values[len(values) // 2]


def test_live_results_do_not_wait_for_the_recording(tmp_path, tiny_onnx):
    clip = write_clip(tmp_path / "clip.avi", frames=24)  # 0.8 s at 30 fps, replayed live
    sinks, lines, source = run_clip(tmp_path, tiny_onnx, clip, live=True)
    recorder, video = sinks.recorder, sinks.video
    assert len(lines) == source.processed == recorder.offered and source.processed >= 12
    assert written_ms(lines) < ENCODE_S * 1e3 / 4  # the JSONL never queued behind the encoder
    assert recorder.skipped > 0 and video.results + recorder.skipped + video.paced_out == recorder.offered
    assert min(recorder.lag_ms) >= ENCODE_S * 1e3 * 0.9  # the recording's own lag is measured apart
    assert video.frames >= video.results and count_frames(tmp_path / "o.mp4") == video.frames  # finalised


def test_real_time_video_fills_gaps_unless_behind(tmp_path):
    """Gaps in capture time are filled with repeats; a recorder that is behind moves the timeline on instead."""
    video = VideoSink(tmp_path / "v.avi", 10.0, real_time=True)
    frame = np.zeros((24, 32, 3), np.uint8)
    for captured, fill in ((0.0, True), (0.1, True), (0.5, True), (0.52, True), (1.5, False), (1.6, True)):
        video.write(frame, captured, fill)
    video.close()
    # 0.0 -> 1, 0.1 -> 1, 0.5 -> 4 (fills 0.2..0.5), 0.52 -> 0 (sooner than the next slot), 1.5 -> 1 (9 slots
    # left out), 1.6 -> 1 (the timeline moved on: no catching up)
    assert (video.frames, video.results, video.paced_out, video.unfilled) == (8, 5, 1, 9)
    assert count_frames(tmp_path / "v.avi") == 8


def test_file_recording_keeps_every_frame_in_order(tmp_path, tiny_onnx):
    clip = write_clip(tmp_path / "clip.avi", frames=12)
    sinks, lines, source = run_clip(tmp_path, tiny_onnx, clip, live=False)
    assert sinks.recorder is None and [line["frame"] for line in lines] == list(range(12))
    assert count_frames(tmp_path / "o.mp4") == sinks.video.frames == sinks.video.results == 12
    assert written_ms(lines) >= ENCODE_S * 1e3 * 0.9  # lossless: the result waits for its frame's encoding


def test_soak_samples_memory_and_latency_and_checks_outputs(tmp_path, tiny_onnx):
    from app import soak
    from app.pipeline import StreamSettings

    clip = write_clip(tmp_path / "clip.avi", frames=10)  # loops about every 0.33 s
    options = soak.SoakOptions(model=tiny_onnx, sources=[str(clip), str(clip)], minutes=2.5 / 60, out=tmp_path / "soak",
                               interval_s=0.5, stream=StreamSettings(live=True))
    report = soak.run(options)
    json_path, png_path = soak.save(report, options.out)
    assert json.loads(json_path.read_text())["format"] == "roadsight-soak"
    assert min(report["loops"]) >= 2 and len(report["samples"]) >= 3
    assert all(sample["rss_mb"] > 0 and len(sample["sources"]) == 2 for sample in report["samples"])
    verdicts = report["verdicts"]
    assert verdicts["all_outputs_complete"] and verdicts["rss_growth_percent"] is not None
    for row in verdicts["outputs"]:
        assert row["results"] > 20 and row["jsonl_lines"] == row["results"] and row["video_frames_readable"] > 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert png_path is None
    else:
        assert png_path.is_file()


def test_soak_refuses_a_non_positive_duration(tmp_path, tiny_onnx):
    from app import soak

    with pytest.raises(engines.errors.RoadsightError, match="Expected minutes > 0"):
        soak.run(soak.SoakOptions(model=tiny_onnx, sources=["x.mp4"], minutes=0, out=tmp_path))


def test_bench_soak_command(tmp_path, tiny_onnx):
    import typer
    from typer.testing import CliRunner

    from app import commands

    app = typer.Typer()
    commands.register(app)
    clip = write_clip(tmp_path / "clip.avi", frames=10)
    runner = CliRunner()
    args = ["bench", "-m", str(tiny_onnx), "-s", str(clip), "-s", str(clip), "--out", str(tmp_path / "soak")]
    result = runner.invoke(app, [*args, "--soak", "0.02"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = " ".join(result.output.split())
    assert text.count("recording lag p50/p99") == 2 and "outputs complete: True" in text
    assert (tmp_path / "soak" / "soak.json").is_file() and (tmp_path / "soak" / "soak_1.mp4").is_file()
    refused = runner.invoke(app, args)
    assert isinstance(refused.exception, engines.errors.RoadsightError) and "several only with --soak" in str(refused.exception)


def test_rss_growth_compares_minutes_not_single_samples():
    from app.soak import rss_growth

    def samples(trend_mb_per_min: float, phase: float) -> list[dict]:  # a 10 s sawtooth of 20 MB, as looped clips give
        return [{"t_s": t, "rss_mb": 400 + trend_mb_per_min * t / 60 + 20 * (((t + phase) % 10) / 10)}
                for t in range(5, 601, 5)]

    for phase in (0, 5):  # two samples alone would read -4.5 % or +4.5 % here
        flat = rss_growth(samples(0.0, phase))
        assert abs(flat["rss_growth_percent"]) < 1 and abs(flat["rss_trend_mb_per_min"]) < 0.2
    rising = rss_growth(samples(2.0, 0))
    assert rising["rss_trend_mb_per_min"] == pytest.approx(2.0, abs=0.2) and 3 < rising["rss_growth_percent"] < 5
    assert rss_growth([{"t_s": 1, "rss_mb": None}])["rss_growth_percent"] is None
