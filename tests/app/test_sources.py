"""Source URIs, output naming and latency summaries (no model needed)."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import cv2
import numpy as np
import pytest

from app.sinks import check_output, per_source
from app.sources import CaptureSource, ImageSource, OnEmpty, display_name, has_gstreamer, open_source
from app.stats import Reservoir, SourceStats, summarize
from engines.errors import RoadsightError

NEEDS_GSTREAMER = pytest.raises(RoadsightError, match="GStreamer") if not has_gstreamer() else does_not_raise()


@pytest.mark.parametrize(
    ("spec", "kind", "live", "on_empty", "expectation"),
    [
        ("0", "camera", True, OnEmpty.FAIL, does_not_raise()),
        ("rtsp://user:secret@10.0.0.2:554/stream", "stream", True, OnEmpty.RECONNECT, does_not_raise()),
        ("http://127.0.0.1:8080/s.ts", "stream", True, OnEmpty.RECONNECT, does_not_raise()),
        ("udp://@:1234", "stream", True, OnEmpty.RECONNECT, does_not_raise()),
        ("csi://0", "camera", True, OnEmpty.FAIL, NEEDS_GSTREAMER),
        ("videotestsrc ! videoconvert ! appsink", "gstreamer", True, OnEmpty.END, NEEDS_GSTREAMER),
        ("ftp://host/clip.mp4", None, None, None, pytest.raises(RoadsightError, match="unknown scheme")),
        ("/no/such/clip.mp4", None, None, None, pytest.raises(RoadsightError, match="no such file")),
        ("/dev/video99", None, None, None, pytest.raises(RoadsightError, match="no such device")),
    ],
)
def test_open_source_kinds(spec, kind, live, on_empty, expectation):
    with expectation:
        source = open_source(spec)
        assert (source.kind, source.live, source.on_empty, source.recording) == (kind, live, on_empty, False)


def test_gstreamer_error_names_the_fix():
    if has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(RoadsightError) as info:
        open_source("csi://0")
    message = str(info.value)
    assert "\n" not in message and "WITH_GSTREAMER" in message and "opencv-python" in message


def test_files_folders_globs_and_live_override(tmp_path, clip):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8, 3), i * 50, np.uint8))
    (tmp_path / "3.jpg").write_bytes(b"not a jpeg")  # unreadable: skipped
    folder = open_source(str(tmp_path))
    assert isinstance(folder, ImageSource) and not folder.live
    folder.open()
    values = []
    while (image := folder.read()) is not None:
        values.append(int(image[0, 0, 0]))
    assert values == [0, 50, 100] and [p.name for p in folder.skipped] == ["3.jpg"]
    assert len(open_source(str(tmp_path / "*.png")).paths) == 3
    with pytest.raises(RoadsightError, match="no images"):
        open_source(str(tmp_path / "*.bmp"))
    video = open_source(f"file://{clip}", live=True)
    assert isinstance(video, CaptureSource) and video.kind == "video" and video.live and video.recording
    assert video.on_empty is OnEmpty.END and folder.on_empty is OnEmpty.END and folder.recording


def test_corrupt_video_fails_on_open(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(range(256)) * 40)
    source = open_source(str(bad))
    with pytest.raises(RoadsightError, match="cannot decode"):
        source.open()


def test_display_name_masks_passwords():
    assert display_name("rtsp://admin:hunter2@cam/live") == "rtsp://admin:***@cam/live"
    assert "hunter2" not in open_source("rtsp://admin:hunter2@cam/live").name


def test_per_source_names_and_output_checks(tmp_path):
    out = tmp_path / "runs" / "out.mp4"
    assert per_source(out, 0, 1) == out
    assert per_source(out, 1, 3) == tmp_path / "runs" / "out_1.mp4"
    check_output(out, "--save")
    assert out.parent.is_dir() and not out.exists()  # the probe leaves nothing behind
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RoadsightError, match="cannot be written"):
        check_output(blocker / "out.jsonl", "--jsonl")
    with pytest.raises(RoadsightError, match="is a folder"):
        check_output(tmp_path, "--jsonl")


def test_summaries_from_timestamps():
    values = np.arange(1, 101, dtype=float)
    summary = summarize(values)
    assert summary["median"] == pytest.approx(50.5) and summary["p90"] == pytest.approx(90.1)
    assert summary["p99"] == pytest.approx(99.01) and summary["max"] == 100 and summary["count"] == 100
    assert summarize([]) == {"count": 0}
    stats = SourceStats("s", live=False)
    stamps = {"captured": 1.0, "preprocessed": 1.002, "inferred": 1.012, "postprocessed": 1.015, "written": 1.020}
    stats.add_result(stamps)
    assert list(stats.stage_ms["inferred"]) == [pytest.approx(10.0)] and list(stats.total_ms) == [pytest.approx(20.0)]


def test_fallback_backend_is_used_and_kept(clip):
    # As when the Jetson hardware-decode pipeline cannot take a stream: FFmpeg takes over, also on reconnects.
    fallback = (str(clip), cv2.CAP_FFMPEG)
    source = CaptureSource("cam", "no-such-element ! appsink", cv2.CAP_GSTREAMER, "stream", True, True, fallback=fallback)
    source.open()
    assert source.read().shape == (192, 320, 3) and (source.api, source.fallback) == (cv2.CAP_FFMPEG, None)
    assert source.reopen(1.0) and source.read() is not None
    source.close()


def test_a_reservoir_keeps_every_value_then_a_uniform_sample():
    small = Reservoir(size=10)
    for value in range(10):
        small.append(value)
    assert list(small) == list(range(10))  # exact while it fits
    big = Reservoir(size=1000)
    for value in range(100_000):
        big.append(value)
    assert len(big) == 1000 and big.seen == 100_000  # bounded memory
    assert 45_000 < np.median(list(big)) < 55_000 and max(big) > 90_000  # a sample of the whole run, not its start
