"""The driving stage against the synthetic drive's ground truth: camera geometry, lane curves, ego offset,
departure, tracker ids (with dropped frames), the JSONL fields, the overlay, and bad camera files."""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache

import numpy as np
import pytest
import torch_free

from engines.camera import CameraModel, default_camera, load_camera
from engines.driving import DrivingOptions, DrivingStage
from engines.ego import EgoEstimator, departure_side
from engines.errors import RoadsightError
from engines.lanes import LaneLine, LaneTracker
from engines.perception import Perception
from engines.track import Tracker
from model.synth_video import Drive

W, H = 640, 360  # half size keeps rendering fast; the camera scales with it


@lru_cache(maxsize=2)
def drive_frames(seed: int, frames: int) -> tuple[CameraModel, list]:
    """(camera, [(lane mask, truth record)]) of a short synthetic drive."""
    drive = Drive(seed, frames, W, H)
    out = []
    for i in range(frames):
        frame = drive.frame(i)
        out.append((frame.lane, drive.truth(i, frame)))
    return drive.camera_model(), out


def test_camera_ground_round_trip_and_horizon():
    cam = CameraModel(1280, 720, 1000, 1000, 640, 360, 1.4, 2.0, 0.5)
    ground = np.array([[-3.5, 6.0], [0.0, 20.0], [2.0, 55.0]])
    back = cam.image_to_ground(cam.ground_to_image(ground))
    np.testing.assert_allclose(back, ground, atol=1e-6)
    h = cam.homography_ground_to_image() @ np.array([2.0, 55.0, 1.0])
    np.testing.assert_allclose(h[:2] / h[2], cam.ground_to_image(ground[2:])[0], atol=1e-6)
    assert np.isnan(cam.image_to_ground(np.array([[640.0, cam.horizon_v() - 5]]))).all()  # above the horizon
    small = default_camera().scaled(640, 360)
    assert (small.fx, small.cx, small.cy) == (500.0, 320.0, 180.0)


def test_camera_file_round_trip(tmp_path):
    cam = CameraModel(1280, 720, 950.5, 951.0, 641.0, 355.0, 1.31, 1.6, -0.3)
    path = tmp_path / "cam.yaml"
    path.write_text(cam.to_yaml())
    assert load_camera(path) == cam
    path.write_text("width: 640\nheight: 360\npitch_deg: 3\n")  # unspecified intrinsics follow the frame size
    assert load_camera(path) == CameraModel(pitch_deg=3.0).scaled(640, 360)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("fx: [1, 2]\n", "fx must be a number"),
        ("focal: 1000\n", "unknown keys ['focal']"),
        ("- 1\n- 2\n", "must hold a mapping"),
        ("fx: 1000\n  bad: : indent\n", "not readable YAML"),
        ("mount_height_m: -1\n", "mount_height_m = -1.0 is out of range"),
        ("width: 640\n", "only one of width/height"),
    ],
)
def test_bad_camera_file_is_one_line(tmp_path, text, words):
    path = tmp_path / "cam.yaml"
    path.write_text(text)
    with pytest.raises(RoadsightError) as error:
        load_camera(path)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_missing_camera_file(tmp_path):
    with pytest.raises(RoadsightError, match="does not exist.*camera estimate"):
        load_camera(tmp_path / "nope.yaml")


def test_lane_curves_and_ego_offset_match_ground_truth():
    """Perfect lane masks of the drive -> ego lines within 0.2 m over 6-30 m; offset and width errors within the
    issue's targets on average (0.15 m, 0.25 m) and never far off."""
    camera, frames = drive_frames(3, 24)
    lanes = LaneTracker(camera)
    stage = DrivingStage(DrivingOptions(track=False, camera=camera))
    ids, errors = set(), []
    for lane, truth in frames:
        lines = lanes.update(lane)
        by_side = {ln.side: ln for ln in lines}
        assert {"ego_left", "ego_right"} <= by_side.keys()
        for line in truth["lanes"]:
            if line["side"] != "other":
                fit = by_side[line["side"]]
                z = np.linspace(6.0, 30.0, 5)
                want = np.polyval(line["coeffs"][::-1], z)
                assert np.abs(fit.x_at(z) - want).max() < 0.2, line["side"]
        ids.add((by_side["ego_left"].id, by_side["ego_right"].id))
        perception = Perception(lane=lane, drivable=np.zeros_like(lane))
        ego = stage.update(perception, truth["frame"] / 30).ego
        errors.append((abs(ego.lateral_offset_m - truth["ego"]["lateral_offset_m"]), abs(ego.lane_width_m - truth["ego"]["lane_width_m"])))
    offset, width = np.array(errors).T
    assert offset.max() < 0.2 and width.max() < 0.35
    assert offset.mean() < 0.15 and width.mean() < 0.25  # the targets (MAE)
    assert len(ids) == 1  # the lines keep their ids from frame to frame


def test_departure_rule_and_hysteresis():
    assert departure_side(0.0, 3.5) == "none"
    assert departure_side(-0.9, 3.5) == "left" and departure_side(0.9, 3.5) == "right"
    assert departure_side(0.84, 3.5) == "none"  # the wheel (0.9 m from the camera) is still inside the line at 1.75 m
    assert departure_side(0.8, 3.5, slack_m=-0.1) == "right"  # leaving needs 0.1 m more inside
    assert departure_side(None, 3.5) == "none"


def test_departure_is_one_event_while_the_wheel_rides_the_line():
    """Offsets hovering at the departure threshold give one departure, ended only after hold_s back inside."""
    ego = EgoEstimator(hold_s=0.3)
    offsets = [0.0, 0.9, 0.84, 0.9, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.0]  # 1.75 m lines; the wheel crosses at 0.85
    sides = []
    for t, offset in enumerate(offsets):
        lines = [LaneLine(1, "ego_left", (-1.75 - offset, 0.0, 0.0), (4.0, 40.0), np.zeros((0, 2)), 1.0),
                 LaneLine(2, "ego_right", (1.75 - offset, 0.0, 0.0), (4.0, 40.0), np.zeros((0, 2)), 1.0)]
        sides.append(ego.update(lines, t / 30).departure)
    first_out = sides.index("none", 1)
    assert sides[0] == "none" and set(sides[1:first_out]) == {"right"} and set(sides[first_out:]) == {"none"}
    assert 12 <= first_out <= 13  # 0.3 s (9 frames at 30 fps) after frame 4, where the car is 0.15 m back inside


def _moving_boxes(n: int) -> list[np.ndarray]:
    return [np.array([[100 + 4 * t, 200, 180 + 4 * t, 260], [600 - 3 * t, 220, 700 - 3 * t, 300]], np.float32) for t in range(n)]


def test_tracker_keeps_ids_over_dropped_frames():
    tracker = Tracker()
    boxes = _moving_boxes(40)
    scores, classes = np.array([0.9, 0.8], np.float32), np.zeros(2, np.int64)
    seen = []
    for t in list(range(15)) + list(range(24, 40)):  # frames 15..23 dropped: a 0.3 s gap in the timestamps
        seen.append(tracker.update(boxes[t], scores, classes, t / 30.0))
    ids = np.array(seen[2:])
    assert (ids >= 0).all() and len(set(ids[:, 0])) == 1 and len(set(ids[:, 1])) == 1 and ids[0, 0] != ids[0, 1]
    new = tracker.update(np.concatenate([boxes[39], [[900, 100, 960, 150]]]).astype(np.float32),
                         np.array([0.9, 0.8, 0.9], np.float32), np.zeros(3, np.int64), 40 / 30.0)
    assert list(new[:2]) == list(ids[-1]) and new[2] == -1  # a newcomer waits one more frame for its id


def test_driving_record_and_overlay():
    camera, frames = drive_frames(3, 24)
    stage = DrivingStage(DrivingOptions(track=True, camera=camera))
    boxes = _moving_boxes(3)
    for t, (lane, truth) in enumerate(frames[:3]):
        p = Perception(boxes[t], np.array([0.9, 0.8], np.float32), np.zeros(2, np.int64), ("vehicle",), lane=lane, frame_index=t)
        p.driving = stage.update(p, t / 30)
    record = json.loads(p.to_json())
    assert [d["track_id"] for d in record["detections"]] == [0, 1]
    assert {ln["side"] for ln in record["lanes"]} >= {"ego_left", "ego_right"}
    assert set(record["ego"]) == {"lateral_offset_m", "lane_width_m", "heading_deg", "departure"}
    assert p[np.array([1])].driving.track_ids.tolist() == [1]
    from engines.draw import draw

    image = np.zeros((H, W, 3), np.uint8)
    drawn = draw(image, p)
    assert (drawn != image).any() and not image.any()


def test_driving_stage_is_torch_free():
    code = """
    import numpy as np
    from engines.driving import DrivingStage
    from engines.perception import Perception
    stage = DrivingStage()
    lane = np.zeros((72, 128), np.uint8)
    p = Perception(np.array([[10, 10, 40, 40]], np.float32), np.array([0.9], np.float32), np.zeros(1, np.int64), ("vehicle",), lane=lane)
    for t in range(3):
        stage.update(p, t / 30)
    print("TRAINING STACK LOADED:", training_stack_loaded())
    """
    result = subprocess.run(torch_free.script(code), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "TRAINING STACK LOADED: []" in result.stdout


def test_run_with_a_bad_camera_file_fails_in_one_line(tmp_path):
    camera = tmp_path / "cam.yaml"
    camera.write_text("pitch_deg: steep\n")
    result = subprocess.run(torch_free.cli("run", "-m", str(tmp_path / "m.onnx"), "-s", str(tmp_path), "--camera", str(camera)),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pitch_deg must be a number" in lines[0], result.stderr


def test_lead_distance_closing_speed_and_collision_warning():
    """A car ahead in the ego lane closing at 8 m/s from 30 m: flat-ground distance, closing speed, TTC, one warning."""
    camera = default_camera()
    lanes = [LaneLine(1, "ego_left", (-1.75, 0.0, 0.0), (4.0, 60.0), np.zeros((0, 2)), 1.0),
             LaneLine(2, "ego_right", (1.75, 0.0, 0.0), (4.0, 60.0), np.zeros((0, 2)), 1.0)]
    stage = DrivingStage(DrivingOptions(track=True, camera=camera))
    stage.lanes.update = lambda mask: lanes  # the lines are given; this test is about the lead
    warnings, leads = [], []
    for t in range(75):
        z = 30.0 - 8.0 * t / 30
        (u1, v), (u2, _) = camera.ground_to_image(np.array([[-0.9, z], [0.9, z]]))
        car = np.array([[u1, v - (u2 - u1), u2, v], [u1 + 400, v - 40, u2 + 400, v]], np.float32)  # and one in the next lane
        p = Perception(car, np.array([0.9, 0.9], np.float32), np.zeros(2, np.int64), ("vehicle",), lane=np.zeros((720, 1280), np.uint8))
        facts = stage.update(p, t / 30)
        warnings += facts.warnings
        leads.append((z, facts.lead))
    z, lead = leads[30]
    assert lead.track_id == int(facts.track_ids[0]) and abs(lead.distance_m - z) < 0.01
    assert abs(lead.closing_speed_mps - 8.0) < 0.1 and abs(lead.time_to_collision_s - z / 8.0) < 0.05
    assert warnings.count("collision") == 1 and stage.counts["collision"] == 1
    first = next(k for k, (_, lead) in enumerate(leads) if lead.time_to_collision_s is not None and lead.time_to_collision_s < 2.5)
    assert abs(leads[first][0] / 8.0 - 2.5) < 0.2  # warned when 2.5 s away
