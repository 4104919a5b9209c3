"""The pipeline with real components: OpenCV sources and sinks, the tiny ONNX model through ONNX Runtime."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from clips import CLIP_FRAMES, count_frames, write_clip

import engines
from app.pipeline import Pipeline, StreamSettings
from app.run import RunOptions, build_sinks, run
from app.sinks import JsonlSink, SinkSet, VideoSink
from app.sources import OnEmpty, Source, open_source


class SlowEngine:
    """The real engine, made slower than the source (a deliberately slow model)."""

    def __init__(self, engine, delay_s: float):
        self.engine, self.delay_s = engine, delay_s

    def open(self):
        return self

    def infer(self, feed):
        time.sleep(self.delay_s)
        return self.engine.infer(feed)

    def close(self):
        self.engine.close()

    def __getattr__(self, name):
        return getattr(self.engine, name)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_file_source_loses_nothing_in_order(tmp_path, tiny_onnx, clip):
    out = tmp_path / "out"
    options = RunOptions(tiny_onnx, [str(clip)], save=out / "a.mp4", jsonl=out / "a.jsonl", dump_dir=out / "frames")
    stats = run(options)
    lines = read_jsonl(out / "a.jsonl")
    assert [line["frame"] for line in lines] == list(range(CLIP_FRAMES))
    assert count_frames(out / "a.mp4") == CLIP_FRAMES
    assert len(list((out / "frames").glob("*.jpg"))) == CLIP_FRAMES
    source = stats.sources[0]
    assert (source.state, source.captured, source.processed, source.dropped) == ("ended", CLIP_FRAMES, CLIP_FRAMES, 0)
    # Each line belongs to its frame: the same frames decoded here and predicted one by one agree.
    capture = cv2.VideoCapture(str(clip))
    with engines.load(tiny_onnx) as engine:
        predictor = engines.Predictor(engine)
        for line in lines:
            ok, frame = capture.read()
            assert ok
            expected = predictor([frame])[0]
            assert len(line["detections"]) == len(expected)
            assert line["drivable_fraction"] == pytest.approx(float(expected.drivable.mean()), abs=1e-4)
            assert set(line["latency_ms"]) == {"preprocessed", "inferred", "postprocessed", "written", "total"}
    assert lines[-1]["drivable_fraction"] > lines[0]["drivable_fraction"] + 0.2  # the band grows: order is real
    summary = stats.summary()
    assert summary["processed"] == CLIP_FRAMES and summary["model_fps"] > summary["fps"] > 0
    assert summary["pre_post_ms"] > 0


def test_live_policy_keeps_newest_frame_with_bounded_latency(tmp_path, tiny_onnx):
    clip = write_clip(tmp_path / "fast.avi", frames=CLIP_FRAMES, fps=60.0)  # replayed live at 60 fps
    delay = 0.05  # the model runs at <= 20 fps
    source = open_source(str(clip), live=True)
    jsonl = tmp_path / "live.jsonl"
    sinks = [SinkSet(jsonl=JsonlSink(jsonl), video=VideoSink(tmp_path / "live.mp4", 60.0, real_time=True))]
    pipeline = Pipeline([source], lambda: SlowEngine(engines.load(tiny_onnx), delay), sinks, log=lambda _: None)
    stats = pipeline.run(handle_signals=False).sources[0]
    lines = read_jsonl(jsonl)
    frames = [line["frame"] for line in lines]
    assert stats.captured == CLIP_FRAMES and stats.processed == len(lines)
    assert stats.processed + stats.dropped == CLIP_FRAMES  # every frame is either processed or counted as dropped
    assert stats.dropped >= CLIP_FRAMES // 3 and frames == sorted(set(frames)) and frames[-1] == CLIP_FRAMES - 1
    # Newest-frame semantics: a frame waits at most about one inference before it is taken (the file
    # policy on the same clip reaches ~650 ms here, as frames queue up behind the model).
    worst = max(stats.total_ms)
    assert worst < 1000 * (2 * delay) + 100, f"capture-to-result latency grew to {worst:.0f} ms"
    # A real-timed video: about one output frame per source frame interval (60 fps), repeats covering drops.
    assert abs(count_frames(tmp_path / "live.mp4") - (frames[-1] - frames[0] + 1)) <= 4


def test_one_failing_source_does_not_stop_the_others(tmp_path, tiny_onnx, clip):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    jsonl = tmp_path / "out.jsonl"
    stats = run(RunOptions(tiny_onnx, [str(clip), str(bad)], jsonl=jsonl))
    good, failed = stats.sources
    assert good.state == "ended" and good.processed == CLIP_FRAMES
    assert failed.state == "failed" and failed.failed and "cannot decode" in failed.error
    assert len(read_jsonl(tmp_path / "out_0.jsonl")) == CLIP_FRAMES
    assert read_jsonl(tmp_path / "out_1.jsonl") == []


def test_several_sources_share_one_batched_engine(tmp_path, data_dir, clip):
    from tiny_model import make_tiny_onnx

    model = make_tiny_onnx(tmp_path / "dynamic.onnx", imgsz=(64, 96), batch=None)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:02d}.png"), np.full((100, 150, 3), 40 * i, np.uint8))
    stats = run(RunOptions(model, [str(clip), str(folder)], jsonl=tmp_path / "o.jsonl"))
    assert [s.processed for s in stats.sources] == [CLIP_FRAMES, 5]
    assert stats.batches < CLIP_FRAMES + 5  # frames of both sources went through in shared batches
    images = read_jsonl(tmp_path / "o_1.jsonl")
    assert [line["frame"] for line in images] == list(range(5)) and all(line["size"] == [100, 150] for line in images)


def test_engine_error_is_one_line_and_closes_outputs(tmp_path, clip):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(engines.errors.RoadsightError) as info:
        run(RunOptions(broken, [str(clip)], jsonl=tmp_path / "o.jsonl"))
    assert "\n" not in str(info.value)


def test_truncated_file_and_unreadable_images_are_logged_skips(tmp_path, tiny_onnx):
    full = write_clip(tmp_path / "full.avi")
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # MJPG frames, index cut off
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((48, 64, 3), 60 * i, np.uint8))
    (folder / "3.jpg").write_bytes(b"\xff\xd8 broken")
    messages: list[str] = []
    options = RunOptions(tiny_onnx, [str(truncated), str(folder)], save=tmp_path / "o.avi", jsonl=tmp_path / "o.jsonl")
    sources = [open_source(spec) for spec in options.sources]
    sinks = build_sinks(sources, options)
    stats = Pipeline(sources, lambda: engines.load(tiny_onnx), sinks, log=messages.append).run(handle_signals=False)
    cut, images = stats.sources
    assert cut.state == "ended" and 0 < cut.processed < CLIP_FRAMES
    assert len(read_jsonl(tmp_path / "o_0.jsonl")) == cut.processed == count_frames(tmp_path / "o_0.avi")
    assert (images.processed, images.skipped, images.state) == (3, 1, "ended")
    assert len(read_jsonl(tmp_path / "o_1.jsonl")) == 3
    assert any("truncated" in m for m in messages)  # the header says 60 frames; about half decode


def test_show_without_display_is_a_clean_error(monkeypatch):
    from app.sinks import WindowSink

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(engines.errors.RoadsightError, match="no display"):
        WindowSink("roadsight")


class VanishingCamera(Source):
    """A live camera that delivers `frames` frames and then nothing (as when it is unplugged)."""

    kind, live, on_empty = "camera", True, OnEmpty.FAIL

    def __init__(self, frames: int):
        super().__init__("cam-test")
        self.left = frames

    def open(self) -> None:
        self.fps = 100.0

    def read(self) -> np.ndarray | None:
        if self.left == 0:
            return None
        self.left -= 1
        time.sleep(0.01)
        return np.full((48, 64, 3), 200, np.uint8)


def test_vanished_camera_fails_alone(tmp_path, tiny_onnx, clip):
    sources = [VanishingCamera(20), open_source(str(clip))]
    sinks = [SinkSet(jsonl=JsonlSink(tmp_path / f"{i}.jsonl")) for i in range(2)]
    stats = Pipeline(sources, lambda: engines.load(tiny_onnx), sinks, log=lambda _: None).run(handle_signals=False)
    camera, video = stats.sources
    assert camera.state == "failed" and "stopped delivering frames after frame 20" in camera.error
    assert camera.processed + camera.dropped == 20 == camera.captured
    assert len(read_jsonl(tmp_path / "0.jsonl")) == camera.processed
    assert video.state == "ended" and video.processed == CLIP_FRAMES


class BrokenEngine(SlowEngine):
    """The real engine whose infer fails: with a user error, or with a bug."""

    def __init__(self, engine, error: Exception):
        super().__init__(engine, 0.0)
        self.error = error

    def infer(self, feed):
        raise self.error


@pytest.mark.parametrize("error", [ZeroDivisionError("a bug"), engines.errors.RoadsightError("model: bad. Expected good.")])
def test_stage_errors_keep_their_type_and_traceback(tmp_path, tiny_onnx, clip, error):
    """A bug in a stage thread is raised as itself (traceback through the stage); a user error stays one line."""
    sinks = [SinkSet(jsonl=JsonlSink(tmp_path / "o.jsonl"))]
    pipeline = Pipeline([open_source(str(clip))], lambda: BrokenEngine(engines.load(tiny_onnx), error), sinks, log=lambda _: None)
    with pytest.raises(type(error)) as info:
        pipeline.run(handle_signals=False)
    assert info.value is error and sinks[0].closed
    assert any(entry.name == "_infer" for entry in info.traceback)  # raised where it happened, in _infer


def test_timestamps_and_index_come_from_the_batch(tmp_path, tiny_onnx, clip):
    """Every JSONL line: its frame's index and source, latencies for each stage in pipeline order."""
    settings = StreamSettings(conf=0.5)
    sinks = [SinkSet(jsonl=JsonlSink(tmp_path / "o.jsonl"))]
    Pipeline([open_source(str(clip))], lambda: engines.load(tiny_onnx), sinks, settings, log=lambda _: None).run(handle_signals=False)
    lines = read_jsonl(tmp_path / "o.jsonl")
    assert [line["frame"] for line in lines] == list(range(CLIP_FRAMES)) and {line["source"] for line in lines} == {open_source(str(clip)).name}
    for line in lines:
        latency = line["latency_ms"]
        assert list(latency) == ["preprocessed", "inferred", "postprocessed", "written", "total"]
        assert all(v >= 0 for v in latency.values())
        assert latency["total"] == pytest.approx(sum(v for k, v in latency.items() if k != "total"), abs=0.01)
        assert all(d["confidence"] > 0.5 for d in line["detections"])
