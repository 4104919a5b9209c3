"""val-stream: tracking metrics, departure events and lead error on hand-made records; one-line errors;
and the camera estimate's vanishing point on the synthetic drive's exact lane masks."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest
import torch_free
from typer.testing import CliRunner

from engines.camera_estimate import vanishing_point
from engines.errors import RoadsightError
from model.stream_eval import KEYS, departures, evaluate_stream
from model.synth_video import Drive


def box(x: float, y: float = 300.0, w: float = 60.0, h: float = 40.0) -> dict:
    return {"x1": x, "y1": y, "x2": x + w, "y2": y + h}


def write(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def make_clip(tmp_path, switch_at: int | None = None):
    """Two vehicles over 10 frames; the prediction follows both, swapping one id at `switch_at`; a 2 m lead."""
    gt, pred = [], []
    for i in range(10):
        cars = [{"id": 1, "category": "car", "box": box(100 + i), "visible": 1.0},
                {"id": 2, "category": "car", "box": box(500 - i), "visible": 1.0},
                {"id": 3, "category": "car", "box": box(900, h=10), "visible": 1.0}]  # 10 px tall: don't care
        side = "left" if 3 <= i <= 5 else "none"
        gt.append({"frame": i, "vehicles": cars, "lanes": [], "lead": {"id": 1, "distance_m": 20.0},
                   "ego": {"lateral_offset_m": 0.1, "lane_width_m": 3.5, "heading_deg": 0.0, "departure": side}})
        second = 7 if switch_at is not None and i >= switch_at else 2
        dets = [{"box": box(100 + i), "track_id": 1}, {"box": box(500 - i), "track_id": second}, {"box": box(901, h=10), "track_id": 9}]
        pred.append({"frame": i, "detections": dets, "lanes": [], "lead": {"track_id": 1, "distance_m": 22.0},
                     "ego": {"lateral_offset_m": 0.3, "lane_width_m": 3.4, "heading_deg": 0.0, "departure": "left" if 4 <= i <= 6 else "none"}})
    write(tmp_path / "gt.jsonl", gt)
    write(tmp_path / "pred.jsonl", pred)
    return tmp_path / "pred.jsonl", tmp_path / "gt.jsonl"


def test_perfect_tracks_and_errors(tmp_path):
    results = evaluate_stream(*make_clip(tmp_path))
    assert list(results)[: len(KEYS)] == list(KEYS)
    assert results["mota"] == pytest.approx(1.0) and results["idf1"] == pytest.approx(1.0) and results["id_switches"] == 0
    assert results["lateral_offset_mae_m"] == pytest.approx(0.2) and results["lane_width_mae_m"] == pytest.approx(0.1)
    assert results["departure_f1"] == 1.0  # overlapping events of the same side match
    assert results["lead_distance_rel_error"] == pytest.approx(0.1) and results["lead_same_vehicle"] == 1.0
    assert results["gt_boxes_all_boxes"] == 30 and results["gt_boxes"] == 20  # the 10 px car is don't-care


def test_an_id_switch_costs_mota_and_idf1(tmp_path):
    results = evaluate_stream(*make_clip(tmp_path, switch_at=5))
    assert results["id_switches"] == 1
    assert results["mota"] == pytest.approx(1 - 1 / 20)
    assert results["idf1"] == pytest.approx(15 / 20)  # 5 of car 2's 10 frames carry the wrong id


def test_departure_events():
    gt = ["none", "left", "left", "none", "none", "right", "right", "none"]
    assert departures(gt, gt)["departure_f1"] == 1.0
    wrong_side = ["none", "right", "right", "none", "none", "right", "right", "none"]
    assert departures(wrong_side, gt)["departure_f1"] == pytest.approx(0.5)
    flicker = ["none", "left", "none", "left", "none", "right", "right", "none"]  # one event seen twice
    scores = departures(flicker, gt)
    assert scores["departure_recall"] == 1.0 and scores["departure_precision"] == pytest.approx(2 / 3)


def test_bad_inputs_are_one_line(tmp_path):
    pred, gt = make_clip(tmp_path)
    with pytest.raises(RoadsightError, match="no such file"):
        evaluate_stream(tmp_path / "none.jsonl", gt)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(RoadsightError, match="line 1 is not a JSON record"):
        evaluate_stream(tmp_path / "bad.jsonl", gt)
    write(tmp_path / "plain.jsonl", [{"frame": 0, "detections": []}])
    with pytest.raises(RoadsightError, match="Rerun `roadsight run` with --track"):
        evaluate_stream(tmp_path / "plain.jsonl", gt)


def test_val_stream_cli(tmp_path):
    from app.cli import _register_all, app

    _register_all()
    pred, gt = make_clip(tmp_path, switch_at=5)
    result = CliRunner().invoke(app, ["val-stream", "--pred", str(pred), "--gt", str(gt), "--json", str(tmp_path / "v.json")],
                                env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "v.json").read_text())
    assert saved["id_switches"] == 1 and set(KEYS) <= saved.keys()


def test_vanishing_point_gives_the_true_pitch():
    drive = Drive(3, 1, 1280, 720)
    frame = drive.frame(0)
    camera = drive.camera_model()
    u, v = vanishing_point(frame.lane)
    pitch = math.degrees(math.atan((camera.cy - v) / camera.fy))
    assert abs(pitch - camera.pitch_deg) < 0.3  # degrees (the road curves a little and the horizon is rolled)
    assert vanishing_point(np.zeros((720, 1280), np.uint8)) is None


def test_val_stream_needs_no_torch(tmp_path):
    pred, gt = make_clip(tmp_path)
    result = subprocess.run(torch_free.cli("val-stream", "--pred", str(pred), "--gt", str(gt)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert torch_free.NONE_LOADED in result.stdout


def test_drive_clip_writes_ground_truth_and_camera(tmp_path):
    from engines.camera import load_camera
    from model.synth_video import write_video

    clip = write_video(tmp_path / "drive.mp4", 6, seed=3, width=320, height=180, truth=True)
    records = [json.loads(line) for line in clip.with_suffix(".gt.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(6))
    camera = load_camera(clip.with_suffix(".camera.yaml"))
    assert (camera.width, camera.height) == (320, 180) and camera.mount_height_m > 1
    ids = [{v["id"] for v in r["vehicles"]} for r in records]
    assert ids[0] and ids[0] & ids[-1]  # the same vehicles keep their ids
    assert {line["side"] for line in records[0]["lanes"]} >= {"ego_left", "ego_right"}
    ego = records[0]["ego"]
    assert 2.5 < ego["lane_width_m"] < 4 and abs(ego["lateral_offset_m"]) < ego["lane_width_m"] / 2
