"""Ego facts from lane curves and tracks: lateral offset, lane width, heading, lane departure, and the lead
vehicle (nearest tracked vehicle in the ego lane) with its distance, closing speed and time to collision.

Conventions: metres and seconds; lateral offset is the camera's distance from the ego lane's centre at the
camera (Z = 0), positive to the right; heading is the car's direction relative to the lane, positive to the
right; distances are forward ground distances (flat ground) from the camera to a box's bottom edge.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from engines.camera import CameraModel
from engines.lanes import LaneLine

VEHICLE_WIDTH_M = 1.8  # departure: a wheel (half this from the camera) is on the line
TYPICAL_LANE_M = 3.5  # lane width assumed until one is measured


def departure_side(offset_m: float | None, width_m: float | None, vehicle_width_m: float = VEHICLE_WIDTH_M, slack_m: float = 0.0) -> str:
    """'left' | 'right' when the car's side is beyond its lane line by more than `slack_m`, else 'none'."""
    if offset_m is None or width_m is None:
        return "none"
    margin = width_m / 2 - vehicle_width_m / 2 - abs(offset_m)
    if margin >= -slack_m:
        return "none"
    return "left" if offset_m < 0 else "right"


@dataclass
class EgoFacts:
    """The car in its lane (None where the lines do not tell)."""

    lateral_offset_m: float | None
    lane_width_m: float | None
    heading_deg: float | None
    departure: str  # none | left | right

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class LeadFacts:
    """The nearest tracked vehicle ahead in the ego lane; closing speed > 0 when the gap shrinks."""

    track_id: int | None
    distance_m: float
    closing_speed_mps: float | None
    time_to_collision_s: float | None
    box: tuple[float, float, float, float]

    def to_dict(self) -> dict:
        out = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items() if k != "box"}
        return out


class EgoEstimator:
    """Lateral offset, lane width and heading from the ego lines. A departure ends only once the car is
    `hysteresis_m` back inside for `hold_s` seconds, so a wheel riding the line is one event, not a flicker."""

    def __init__(self, vehicle_width_m: float = VEHICLE_WIDTH_M, hysteresis_m: float = 0.1, hold_s: float = 0.3):
        self.vehicle_width_m, self.hysteresis_m, self.hold_s = vehicle_width_m, hysteresis_m, hold_s
        self.width = TYPICAL_LANE_M
        self.departure = "none"
        self._inside_since: float | None = None

    def update(self, lanes: list[LaneLine], timestamp: float) -> EgoFacts:
        left = next((ln for ln in lanes if ln.side == "ego_left"), None)
        right = next((ln for ln in lanes if ln.side == "ego_right"), None)
        if left is None and right is None:
            self.departure = "none"
            return EgoFacts(None, None, None, "none")
        width = None
        if left is not None and right is not None:
            width = right.coeffs[0] - left.coeffs[0]
            self.width = 0.8 * self.width + 0.2 * width
            centre = (left.coeffs[0] + right.coeffs[0]) / 2
        elif left is not None:
            centre = left.coeffs[0] + self.width / 2
        else:
            centre = right.coeffs[0] - self.width / 2
        offset = -centre
        slopes = [ln.coeffs[1] for ln in (left, right) if ln is not None]
        heading = -math.degrees(math.atan(float(np.mean(slopes))))
        slack = -self.hysteresis_m if self.departure != "none" else 0.0
        side = departure_side(offset, width if width is not None else self.width, self.vehicle_width_m, slack)
        if side != "none" or self.departure == "none":
            self._inside_since = None
        else:  # back inside: keep the departure for hold_s
            self._inside_since = timestamp if self._inside_since is None else self._inside_since
            if timestamp - self._inside_since < self.hold_s:
                side = self.departure
        self.departure = side
        return EgoFacts(offset, width, heading, self.departure)


def in_ego_lane(x: float, z: float, lanes: list[LaneLine], width: float) -> bool:
    """Whether ground point (x, z) lies between the ego lines (one line plus the lane width when one is missing)."""
    left = next((ln for ln in lanes if ln.side == "ego_left"), None)
    right = next((ln for ln in lanes if ln.side == "ego_right"), None)
    if left is not None and right is not None:
        return float(left.x_at(z)) < x < float(right.x_at(z))
    if left is not None:
        return 0 < x - float(left.x_at(z)) < width
    if right is not None:
        return 0 < float(right.x_at(z)) - x < width
    return abs(x) < width / 2


class LeadFinder:
    """Nearest vehicle ahead in the ego lane; closing speed from a line fit over its last `window_s` seconds."""

    def __init__(self, window_s: float = 0.7, forget_s: float = 2.0):
        self.window_s, self.forget_s = window_s, forget_s
        self.history: dict[int, deque] = {}

    def update(self, boxes: np.ndarray, ids: np.ndarray | None, lanes: list[LaneLine], lane_width: float,
               camera: CameraModel, timestamp: float) -> LeadFacts | None:
        if len(boxes) == 0:
            self._forget(timestamp)
            return None
        bottoms = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], 1)
        ground = camera.image_to_ground(bottoms)
        best = None
        for i, (x, z) in enumerate(ground):
            if not np.isfinite(z) or z <= 0:
                continue
            track_id = int(ids[i]) if ids is not None and ids[i] >= 0 else None
            if track_id is not None:
                self.history.setdefault(track_id, deque()).append((timestamp, float(z)))
            if in_ego_lane(float(x), float(z), lanes, lane_width) and (best is None or z < best[1]):
                best = (i, float(z), track_id)
        self._forget(timestamp)
        if best is None:
            return None
        i, z, track_id = best
        closing = self._closing(track_id)
        ttc = z / closing if closing is not None and closing > 0.3 else None
        return LeadFacts(track_id, z, closing, ttc, tuple(float(v) for v in boxes[i]))

    def _closing(self, track_id: int | None) -> float | None:
        samples = self.history.get(track_id) if track_id is not None else None
        if not samples or len(samples) < 4 or samples[-1][0] - samples[0][0] < 0.2:
            return None
        t, z = np.array(samples).T
        return float(-np.polyfit(t - t[-1], z, 1)[0])

    def _forget(self, now: float) -> None:
        for key in list(self.history):
            samples = self.history[key]
            while samples and now - samples[0][0] > self.window_s:
                samples.popleft()
            if not samples or now - samples[-1][0] > self.forget_s:
                del self.history[key]
