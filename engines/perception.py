"""`Perception`: what the network saw in one frame, in frame pixels (the currency between stages).

JSON layout (`to_dict()` / `to_json()`), compact, ultralytics-like detections:
    {"frame": 3, "source": "cam0", "size": [720, 1280],
     "detections": [{"name": "vehicle", "class": 0, "confidence": 0.912,
                     "box": {"x1": 10.5, "y1": 20.0, "x2": 110.0, "y2": 80.25}}],
     "drivable_fraction": 0.2731, "lane_pixels": 5120,
     "latency_ms": {"inferred": 3.1, ..., "total": 5.2}}
With the driving stage (`engines/driving.py`, `--track` / `--camera`) each detection also has "track_id"
(int, or null before a track is confirmed) and the record gains, metres in the ground frame of
`engines/camera.py` (X right, Z forward, on the road below the camera):
     "lanes": [{"id": 3, "side": "ego_left", "points": [[u, v], ...] (frame px),
                "coeffs": [c0, c1, c2] (X = c0 + c1 Z + c2 Z^2), "z_range_m": [4.0, 58.5], "confidence": 0.9}],
     "ego": {"lateral_offset_m": -0.12 (right +), "lane_width_m": 3.51, "heading_deg": 0.4 (right +),
             "departure": "none" | "left" | "right"} or null (no ego line seen),
     "lead": {"track_id": 7, "distance_m": 23.4, "closing_speed_mps": 1.2, "time_to_collision_s": 19.5} or null,
     "warnings": ["departure_left", "collision"] (events that start in this frame)
Values that cannot be measured (lane width with one line, speed of a new track) are null.
`latency_ms[k]` is the time from the previous timestamp to `k` (in the order they were recorded) and
`total` the first to the last. With masks=True, "drivable" and "lane" are run-length encoded:
    {"size": [H, W], "counts": [zeros, ones, zeros, ...]}
over the row-major (C-order) flattened 0/1 mask, starting with a run of zeros (possibly 0);
`rle_decode` inverts it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engines.errors import RoadsightError

# The timestamps a frame collects, in order (time.perf_counter()): `captured` by a pipeline's capture,
# `started` when `Predictor` is called directly, then one per stage; `written` once the outputs have it.
STAGES = ("captured", "started", "preprocessed", "inferred", "postprocessed", "written")


def _check_array(name: str, value: np.ndarray, ndim: int, dtype: type, last: int | None = None) -> None:
    ok = isinstance(value, np.ndarray) and value.ndim == ndim and value.dtype == dtype
    ok = ok and (last is None or value.shape[-1] == last)
    if not ok:
        want = "(N, 4)" if last else ("(N,)" if ndim == 1 else "(H, W)")
        got = f"{value.shape} {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
        raise RoadsightError(f"Perception: {name} must be {want} {np.dtype(dtype).name}, but got {got}.")


def rle_encode(mask: np.ndarray) -> dict:
    """(H, W) 0/1 mask -> {"size": [H, W], "counts": [...]} (row-major runs, zeros first)."""
    flat = (mask.ravel() > 0).astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def rle_decode(rle: dict) -> np.ndarray:
    """Inverse of `rle_encode`: (H, W) uint8 0/1."""
    counts = np.asarray(rle["counts"], dtype=np.int64)
    values = np.arange(len(counts)) % 2
    return np.repeat(values.astype(np.uint8), counts).reshape(rle["size"])


@dataclass
class Perception:
    """Detections and masks for one frame.

    boxes: (N, 4) float32 xyxy frame px; scores: (N,) float32; class_ids: (N,) int64; names: class
    names indexed by class id; drivable/lane: (H, W) uint8 0/1 at frame size or None; frame_index;
    timestamps: stage -> time.perf_counter() (insertion order = pipeline order); source: where the frame
    came from; driving: the driving stage's facts (`engines.driving.DrivingFacts`) or None. `len()` is the
    number of detections; `perception[keep]` selects detections (and their track ids).
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    names: tuple[str, ...] = ()
    drivable: np.ndarray | None = None
    lane: np.ndarray | None = None
    frame_index: int = 0
    timestamps: dict[str, float] = field(default_factory=dict)
    source: str = ""
    driving: Any = None

    def __post_init__(self) -> None:
        _check_array("boxes", self.boxes, 2, np.float32, last=4)
        _check_array("scores", self.scores, 1, np.float32)
        _check_array("class_ids", self.class_ids, 1, np.int64)
        n = len(self.boxes)
        if len(self.scores) != n or len(self.class_ids) != n:
            raise RoadsightError(
                f"Perception: boxes, scores and class_ids must have the same length, but got "
                f"{n}, {len(self.scores)} and {len(self.class_ids)}."
            )
        if n and (self.class_ids.min() < 0 or self.class_ids.max() >= len(self.names)):
            raise RoadsightError(
                f"Perception: class_ids must index names (0..{len(self.names) - 1}), but got "
                f"{self.class_ids.min()}..{self.class_ids.max()}."
            )
        shapes = set()
        for name in ("drivable", "lane"):
            mask = getattr(self, name)
            if mask is not None:
                _check_array(name, mask, 2, np.uint8)
                shapes.add(mask.shape)
        if len(shapes) > 1:
            raise RoadsightError(f"Perception: drivable and lane must have the same shape, but got {sorted(shapes)}.")
        self.names = tuple(self.names)

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, keep) -> "Perception":
        """Select detections by index array, slice or boolean mask (masks and timestamps are kept)."""
        return replace(
            self,
            boxes=self.boxes[keep].reshape(-1, 4),
            scores=np.atleast_1d(self.scores[keep]),
            class_ids=np.atleast_1d(self.class_ids[keep]),
            timestamps=dict(self.timestamps),
            driving=None if self.driving is None else self.driving.select(keep),
        )

    @property
    def frame_shape(self) -> tuple[int, int] | None:
        """(H, W) of the frame when a mask is present."""
        mask = self.drivable if self.drivable is not None else self.lane
        return None if mask is None else mask.shape

    def latencies_ms(self) -> dict[str, float]:
        """Time from the previous timestamp to each stage, and `total`, in ms."""
        items = list(self.timestamps.items())
        out = {name: (t - prev) * 1e3 for (_, prev), (name, t) in zip(items, items[1:])}
        if len(items) > 1:
            out["total"] = (items[-1][1] - items[0][1]) * 1e3
        return out

    def stamp(self, stage: str, at: float | None = None) -> None:
        """Record that this frame finished `stage` (one of STAGES) at `at` (default: now)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
        self.timestamps[stage] = time.perf_counter() if at is None else at

    def to_dict(self, masks: bool = False) -> dict:
        """JSON-ready dict (layout in the module docstring); masks as RLE only when `masks`."""
        out: dict = {"frame": int(self.frame_index), "source": self.source}
        if self.frame_shape is not None:
            out["size"] = list(self.frame_shape)
        out["detections"] = [
            {
                "name": self.names[c],
                "class": int(c),
                "confidence": round(float(s), 4),
                "box": {k: round(float(v), 2) for k, v in zip(("x1", "y1", "x2", "y2"), b)},
            }
            for b, s, c in zip(self.boxes, self.scores, self.class_ids)
        ]
        ids = None if self.driving is None else self.driving.track_ids
        if ids is not None:
            for detection, track_id in zip(out["detections"], ids):
                detection["track_id"] = int(track_id) if track_id >= 0 else None
        if self.drivable is not None:
            out["drivable_fraction"] = round(float(self.drivable.mean()), 4)
        if self.lane is not None:
            out["lane_pixels"] = int(np.count_nonzero(self.lane))
        if self.driving is not None:
            out.update(self.driving.to_dict())
        latencies = self.latencies_ms()
        if latencies:
            out["latency_ms"] = {k: round(v, 3) for k, v in latencies.items()}
        if masks:
            for name in ("drivable", "lane"):
                if getattr(self, name) is not None:
                    out[name] = rle_encode(getattr(self, name))
        return out

    def to_json(self, masks: bool = False) -> str:
        """Compact one-line JSON of `to_dict(masks)` (one JSONL record)."""
        return json.dumps(self.to_dict(masks), separators=(",", ":"))
