"""A temporally coherent drive clip: the ego car follows its lane along a road whose curvature varies with the
arc length, traffic moves at per-lane speeds, roadside objects stay put in the world."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from engines.errors import RoadsightError
from model.synth_geometry import RoadPath
from model.synth_render import Frame, render
from model.synth_scene import sample_scene

D_AHEAD = np.linspace(0.0, 260.0, 521)


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

    def frame(self, i: int) -> Frame:
        """Advance the world to frame i and render it."""
        t = i / self.fps
        s = self.scene
        dt = 1.0 / self.fps if i else 0.0
        self.ego_s = self.speed * t
        for v in s.vehicles:
            v.d += (v.speed * v.facing - self.speed) * dt
            if v.d < -20 and v.kind != "train":
                ahead = [u.d + u.length for u in s.vehicles if abs(u.o - v.o) < 1.0]
                v.d = max(ahead + [150.0]) + self.rng.uniform(5, 30)
            elif v.d > 200 and v.kind != "train":
                v.d = -15.0
        yaw = 0.008 * np.sin(2 * np.pi * t / 5.0)
        wobble = 0.15 * np.sin(2 * np.pi * t / 7.0)
        theta = np.interp(self.ego_s + D_AHEAD, self.s_grid, self.theta) - np.interp(self.ego_s, self.s_grid, self.theta) - yaw
        path = RoadPath(D_AHEAD, theta, -(s.camera_o + wobble))
        props = [dataclasses.replace(p, d=p.d - self.ego_s) for p in s.props if -5 < p.d - self.ego_s < 240]
        patches = [(d - self.ego_s, *rest) for d, *rest in s.patches if -15 < d - self.ego_s < 200]
        now = dataclasses.replace(s, props=props, patches=patches, pitch=s.pitch + 0.002 * np.sin(2 * np.pi * t * 1.3))
        return render(now, path, dash_phase=s.dash[2] - self.ego_s, frame_seed=i)


def write_video(path: Path, frames: int, seed: int, width: int = 1280, height: int = 720, fps: float = 30.0,
                advance: Callable[[], None] | None = None) -> Path:
    """Write a `frames`-long mp4 (OpenCV 'mp4v') drive clip; `advance` is called once per frame (progress)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RoadsightError(f"--video: cannot write {path}. Expected a writable .mp4 path, got a path OpenCV's 'mp4v' writer refuses. Check the folder and extension.")
    drive = Drive(seed, frames, width, height, fps)
    try:
        for i in range(frames):
            writer.write(drive.frame(i).image)
            if advance:
                advance()
    finally:
        writer.release()
    return path
