"""A temporally coherent drive clip: the ego car follows its lane along a road whose curvature varies with the
arc length, traffic moves at per-lane speeds, roadside objects stay put in the world."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from engines.camera import CameraModel
from engines.ego import VEHICLE_WIDTH_M, departure_side
from engines.errors import RoadsightError
from model.bdd import DEFAULT_CLASS_MAP
from model.synth_geometry import Camera, RoadPath
from model.synth_render import Frame, render
from model.synth_scene import Scene, sample_scene

D_AHEAD = np.linspace(0.0, 260.0, 521)
WOBBLE_M = 0.15  # the car's slow weave in its lane
LANE_D = np.linspace(4.0, 60.0, 29)  # ground-truth lane curves are fitted over this range (metres)
VEHICLES = tuple(DEFAULT_CLASS_MAP)  # the categories of the model's `vehicle` class


class Drive:
    """World state of a clip; `frame(i)` renders frame i (frames must be requested in order)."""

    def __init__(self, seed: int, frames: int, width: int = 1280, height: int = 720, fps: float = 30.0):
        rng = np.random.default_rng([seed, 7_000_001])
        self.fps, self.rng = fps, rng
        self.speed = rng.uniform(12.0, 22.0)
        span = frames / fps * self.speed
        self.scene = sample_scene(rng, width, height, d_range=(5.0, 150.0), prop_range=(2.0, span + 240.0))
        if self.scene.timeofday == "night" and rng.random() < 0.5:  # clips are mostly for demos and benchmarks
            self.scene = sample_scene(rng, width, height, d_range=(5.0, 150.0), prop_range=(2.0, span + 240.0))
        sc = self.scene
        sc.patches = [(rng.uniform(3, span + 200), rng.uniform(-sc.n_opp * sc.lane_w, sc.n_ego * sc.lane_w), rng.uniform(1, 12),
                       rng.uniform(0.3, 3), rng.uniform(0.75, 1.2)) for _ in range(int(rng.poisson(2 + span / 60)))]
        s_grid = np.arange(0.0, span + 600.0, 0.5)
        k = np.zeros_like(s_grid)
        for _ in range(3):
            k += rng.normal(0, 1 / 900) * np.sin(2 * np.pi * s_grid / rng.uniform(150, 600) + rng.uniform(0, 2 * np.pi))
        self.s_grid = s_grid
        self.theta = np.concatenate([[0.0], np.cumsum(0.5 * (k[1:] + k[:-1]) * 0.5)])
        lane_speed = {self.scene.ego_lane: self.speed}  # traffic ahead in the ego lane keeps its distance
        for v in self.scene.vehicles:  # one speed per lane: no one drives through anyone
            key = int(np.floor(v.o / self.scene.lane_w)) if v.kind != "train" else "train"
            if v.speed == 0:  # parked
                continue
            lane_speed.setdefault(key, v.speed)
            v.speed = lane_speed[key]
        self.ego_s = 0.0
        self.uid = list(range(1, len(sc.vehicles) + 1))  # persistent vehicle ids; a recycled vehicle gets a new one
        self.ego_lines = _ego_lines(sc)
        self.rest = _rest_shift(sc, self.ego_lines)
        self.drifts = _drifts(np.random.default_rng([seed, 7_000_002]), frames / fps, sc, self.ego_lines, self.rest)
        self.lateral = sc.camera_o + self.rest
        self.path: RoadPath | None = None
        self.camera: Camera | None = None

    def frame(self, i: int) -> Frame:
        """Advance the world to frame i and render it."""
        t = i / self.fps
        s = self.scene
        dt = 1.0 / self.fps if i else 0.0
        self.ego_s = self.speed * t
        for k, v in enumerate(s.vehicles):
            v.d += (v.speed * v.facing - self.speed) * dt
            recycled = True
            if v.d < -20 and v.kind != "train":
                ahead = [u.d + u.length for u in s.vehicles if abs(u.o - v.o) < 1.0]
                v.d = max(ahead + [150.0]) + self.rng.uniform(5, 30)
            elif v.d > 200 and v.kind != "train":
                v.d = -15.0
            else:
                recycled = False
            if recycled:
                self.uid[k] = max(self.uid) + 1
        self.yaw = 0.008 * np.sin(2 * np.pi * t / 5.0)
        wobble = WOBBLE_M * np.sin(2 * np.pi * t / 7.0)
        drift = sum(a * 0.5 * (1 - np.cos(2 * np.pi * (t - t0) / span)) for t0, span, a in self.drifts if t0 <= t <= t0 + span)
        self.lateral = s.camera_o + self.rest + wobble + drift
        theta = np.interp(self.ego_s + D_AHEAD, self.s_grid, self.theta) - np.interp(self.ego_s, self.s_grid, self.theta) - self.yaw
        path = RoadPath(D_AHEAD, theta, -self.lateral)
        props = [dataclasses.replace(p, d=p.d - self.ego_s) for p in s.props if -5 < p.d - self.ego_s < 240]
        patches = [(d - self.ego_s, *rest) for d, *rest in s.patches if -15 < d - self.ego_s < 200]
        now = dataclasses.replace(s, props=props, patches=patches, pitch=s.pitch + 0.002 * np.sin(2 * np.pi * t * 1.3))
        self.path = path
        self.camera = Camera(s.width, s.height, s.f, s.width / 2, s.height / 2, s.cam_h, now.pitch, s.roll)
        return render(now, path, dash_phase=s.dash[2] - self.ego_s, frame_seed=i)

    def truth(self, i: int, frame: Frame) -> dict:
        """Ground truth of the frame just rendered (one `CLIP.gt.jsonl` record; layout in `write_video`)."""
        s, path, cam = self.scene, self.path, self.camera
        vehicles = [{"id": self.uid[lb.key], "category": lb.category, "box": dict(zip(("x1", "y1", "x2", "y2"), lb.box)),
                     "visible": round(lb.visible, 3)} for lb in frame.labels if lb.key is not None and lb.category in VEHICLES]
        left, right = self.ego_lines
        lanes = []
        for o in sorted({line.o for line in s.lines}):
            ground = path.points(LANE_D, o)
            coeffs = np.polyfit(ground[:, 2], ground[:, 0], 2)[::-1]
            side = "ego_left" if o == left else "ego_right" if o == right else "other"
            lanes.append({"side": side, "coeffs": [round(float(c), 6) for c in coeffs],
                          "points": np.round(cam.project(ground[::4])[0], 1).tolist()})
        ego = None
        if left is not None and right is not None:
            offset, width = self.lateral - (left + right) / 2, right - left
            ego = {"lateral_offset_m": round(offset, 4), "lane_width_m": round(width, 4), "heading_deg": round(float(np.degrees(self.yaw)), 4),
                   "departure": departure_side(offset, width)}
        visible = {lb.key for lb in frame.labels if lb.key is not None}
        centre = (s.ego_lane + 0.5) * s.lane_w
        ahead = [(k, v) for k, v in enumerate(s.vehicles) if k in visible and v.facing > 0 and v.d > 0 and abs(v.o - centre) < s.lane_w / 2]
        lead = None
        if ahead:
            k, v = min(ahead, key=lambda kv: kv[1].d)
            lead = {"id": self.uid[k], "distance_m": round(float(path.points(np.array([v.d]), v.o)[0, 2]), 3)}
        return {"frame": i, "size": [s.height, s.width], "vehicles": vehicles, "lanes": lanes, "ego": ego, "lead": lead}

    def camera_model(self) -> CameraModel:
        """The clip's camera (without the small pitch oscillation) as an `engines.camera` model."""
        s = self.scene
        return CameraModel(s.width, s.height, s.f, s.f, s.width / 2, s.height / 2, s.cam_h, float(np.degrees(s.pitch)), float(np.degrees(s.roll)))


def _ego_lines(s: Scene) -> tuple[float | None, float | None]:
    """Offsets of the painted lines left and right of the ego lane's centre (None: unmarked)."""
    centre = (s.ego_lane + 0.5) * s.lane_w
    left = [line.o for line in s.lines if centre - s.lane_w < line.o < centre]
    right = [line.o for line in s.lines if centre < line.o < centre + s.lane_w]
    return (max(left) if left else None), (min(right) if right else None)


def _rest_shift(s: Scene, lines: tuple) -> float:
    """Shift of the car's resting position so that, between departures, its sides stay 0.25 m inside the lines
    (wobble included): departures then happen only as the drift episodes."""
    left, right = lines
    if left is None or right is None:
        return 0.0
    centre, room = (left + right) / 2, max(0.0, (right - left) / 2 - VEHICLE_WIDTH_M / 2 - 0.25 - WOBBLE_M)
    return float(np.clip(s.camera_o - centre, -room, room) + centre - s.camera_o)


def _drifts(rng: np.random.Generator, duration: float, s: Scene, lines: tuple, rest: float) -> list[tuple[float, float, float]]:
    """Lane-departure episodes (start s, length s, lateral amplitude m): the car drifts over a line and back."""
    left, right = lines
    if left is None or right is None:
        return []
    centre, half = (left + right) / 2, (right - left) / 2
    out, t = [], rng.uniform(1.5, 4.0)
    while t < duration - 3.0:
        span, side = rng.uniform(3.0, 4.5), rng.choice((-1.0, 1.0))
        target = centre + side * (half - VEHICLE_WIDTH_M / 2 + rng.uniform(0.2, 0.45))
        out.append((t, span, float(target - s.camera_o - rest)))
        t += span + rng.uniform(1.5, 4.0)
    return out


def write_video(path: Path, frames: int, seed: int, width: int = 1280, height: int = 720, fps: float = 30.0,
                advance: Callable[[], None] | None = None, truth: bool = False) -> Path:
    """Write a `frames`-long mp4 (OpenCV 'mp4v') drive clip; `advance` is called once per frame (progress).

    With `truth`, also CLIP.gt.jsonl and CLIP.camera.yaml (the camera, for `--camera`). One ground-truth line
    per frame, metres in the ground frame of `engines.camera` (X right, Z forward):
        {"frame": i, "size": [H, W],
         "vehicles": [{"id": persistent id, "category": "car", "box": {"x1", "y1", "x2", "y2"}, "visible": share of
                       its in-frame silhouette not hidden}],  (car/bus/truck/train)
         "lanes": [{"side": "ego_left" | "ego_right" | "other", "coeffs": [c0, c1, c2], "points": [[u, v], ...]}],
         "ego": {"lateral_offset_m", "lane_width_m", "heading_deg", "departure"} or null (an ego line unmarked),
         "lead": {"id", "distance_m"} or null}
    Lane lines are the painted line centres (a double line is one line); the ego lane runs between the
    painted lines left and right of its centre; departure follows `engines.ego.departure_side`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RoadsightError(f"--video: cannot write {path}. Expected a writable .mp4 path, got a path OpenCV's 'mp4v' writer refuses. Check the folder and extension.")
    drive = Drive(seed, frames, width, height, fps)
    gt = path.with_suffix(".gt.jsonl").open("w") if truth else None
    try:
        for i in range(frames):
            frame = drive.frame(i)
            writer.write(frame.image)
            if gt is not None:
                gt.write(json.dumps(drive.truth(i, frame), separators=(",", ":")) + "\n")
            if advance:
                advance()
    finally:
        writer.release()
        if gt is not None:
            gt.close()
    if truth:
        path.with_suffix(".camera.yaml").write_text(drive.camera_model().to_yaml())
    return path
