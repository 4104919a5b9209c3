"""Estimate a camera's pitch (horizon) from the vanishing point of the lane lines in a clip.

Per sampled frame: the model's lane mask below the middle of the image is split into connected pieces, each
long piece gets a straight line (`cv2.fitLine`), and every pair of lines leaning opposite ways meets at a
vanishing-point candidate; the frame's candidate is their median. Over the clip the median vanishing point
gives the horizon row, and pitch = atan((cy - v) / fy). Focal length, principal point, roll and mount height
cannot be recovered from one vanishing point: they come from the base camera (the default dashcam unless given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from engines.camera import CameraModel, default_camera
from engines.errors import RoadsightError

MIN_PIECE_PX = 150  # lane pieces smaller than this are ignored


@dataclass
class CameraEstimate:
    """The estimated camera, the vanishing point (px), frames that gave one, and its spread (MAD, px)."""

    camera: CameraModel
    vanishing_point: tuple[float, float]
    frames_used: int
    frames_read: int
    spread_px: float


def vanishing_point(lane: np.ndarray) -> tuple[float, float] | None:
    """Median intersection of opposite-leaning lane pieces in the lower half of a 0/1 lane mask, or None."""
    h = lane.shape[0]
    top = h // 2
    count, labels, stats, _ = cv2.connectedComponentsWithStats(lane[top:], connectivity=8)
    lines = []
    for k in range(1, count):
        if stats[k, cv2.CC_STAT_AREA] < MIN_PIECE_PX or stats[k, cv2.CC_STAT_HEIGHT] < 20:
            continue
        ys, xs = np.nonzero(labels == k)
        vx, vy, x0, y0 = cv2.fitLine(np.stack([xs, ys + top], 1).astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        if abs(vy) < 0.2:  # nearly horizontal: not a line along the road
            continue
        lines.append((vx / vy, x0 - vx / vy * y0))  # x = a y + b
    points = []
    for i, (a1, b1) in enumerate(lines):
        for a2, b2 in lines[i + 1:]:
            if a1 * a2 < 0 and abs(a1 - a2) > 0.2:
                y = (b2 - b1) / (a1 - a2)
                if -h < y < top:
                    points.append((a1 * y + b1, y))
    if not points:
        return None
    return tuple(float(v) for v in np.median(np.array(points), axis=0))


def estimate_camera(source: Path, predict, frames: int = 120, base: CameraModel | None = None) -> CameraEstimate:
    """Sample `frames` frames evenly from a video, run `predict` (frames -> Perceptions), estimate the pitch."""
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise RoadsightError(f"--source {source}: cannot open it as a video. Expected a readable video file, got nothing from OpenCV. Check the path.")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or frames
    wanted = set(np.linspace(0, max(total - 1, 0), min(frames, max(total, 1))).round().astype(int).tolist())
    points, read, index, shape = [], 0, 0, None
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            if index in wanted:
                read += 1
                shape = image.shape[:2]
                perception = predict([image])[0]
                if perception.lane is not None and (vp := vanishing_point(perception.lane)) is not None:
                    points.append(vp)
            index += 1
    finally:
        cap.release()
    if len(points) < 3:
        raise RoadsightError(f"--source {source}: lane lines met in only {len(points)} of {read} sampled frames. Expected at least 3 "
                             "frames with two lane lines. Use a clip of a marked road (or more --frames).")
    pts = np.array(points)
    u, v = np.median(pts, axis=0)
    cam = (base or default_camera()).scaled(shape[1], shape[0])
    pitch = math.degrees(math.atan((cam.cy - v) / cam.fy))
    spread = float(np.median(np.abs(pts[:, 1] - v)))
    return CameraEstimate(replace(cam, pitch_deg=round(pitch, 3)), (float(u), float(v)), len(points), read, spread)
