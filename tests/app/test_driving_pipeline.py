"""The driving stage inside `roadsight run`'s pipeline: track ids on a video, none for an image folder."""

from __future__ import annotations

import json

import cv2
from clips import CLIP_FRAMES, clip_frame

from app.pipeline import StreamSettings
from app.run import RunOptions, run
from engines.driving import DrivingOptions


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_video_gets_track_ids_and_driving_fields(tmp_path, tiny_onnx, clip):
    options = RunOptions(tiny_onnx, [str(clip)], jsonl=tmp_path / "a.jsonl", stream=StreamSettings(driving=DrivingOptions()))
    stats = run(options)
    lines = read_jsonl(tmp_path / "a.jsonl")
    assert len(lines) == CLIP_FRAMES and all({"lanes", "ego", "lead", "warnings"} <= line.keys() for line in lines)
    ids = [d["track_id"] for line in lines for d in line["detections"]]
    assert ids and all("track_id" in d for line in lines for d in line["detections"])
    confirmed = [i for i in ids if i is not None]
    assert confirmed and len(set(confirmed)) * 4 < len(confirmed)  # ids persist over frames (the square hops cells)
    assert {"track", "lanes", "ego"} <= stats.summary()["work_ms_per_frame"].keys()


def test_image_folder_is_not_tracked(tmp_path, tiny_onnx):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), clip_frame(10 * i))
    options = RunOptions(tiny_onnx, [str(folder)], jsonl=tmp_path / "b.jsonl", stream=StreamSettings(driving=DrivingOptions()))
    run(options)
    lines = read_jsonl(tmp_path / "b.jsonl")
    assert len(lines) == 4 and all("lanes" in line for line in lines)
    assert not any("track_id" in d for line in lines for d in line["detections"])
