"""The driving stage after `Perception`: track ids, lane curves, ego facts, lead vehicle and warnings per frame.

`DrivingStage(options).update(perception, timestamp) -> DrivingFacts`, one stage per source (it keeps state:
tracks, lane ids, the lead's history). `timestamp` is the frame's time in seconds: capture time for live
sources (dropped frames leave real gaps), frame index / fps for files. Per-stage cost is in `timing_ms`.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from engines.camera import CameraModel, default_camera, load_camera
from engines.ego import EgoEstimator, EgoFacts, LeadFacts, LeadFinder
from engines.lanes import LaneLine, LaneTracker
from engines.perception import Perception
from engines.track import Tracker, TrackOptions

TTC_WARNING_S = 2.5  # forward collision warning below this time to collision
TRAIL = 15  # points kept per track for the overlay


@dataclass
class DrivingOptions:
    """track: run the tracker (None: on for videos and streams, off for image folders); camera: the camera
    model (None: the default dashcam); track_options: ByteTrack settings."""

    track: bool | None = None
    camera: CameraModel | None = None
    track_options: TrackOptions = field(default_factory=TrackOptions)


@dataclass
class DrivingFacts:
    """What the car can act on in one frame. track_ids align with the Perception's detections (-1: none)."""

    track_ids: np.ndarray | None
    lanes: list[LaneLine]
    ego: EgoFacts | None
    lead: LeadFacts | None
    warnings: list[str]  # events starting in this frame: departure_left | departure_right | collision
    trails: dict[int, np.ndarray] = field(default_factory=dict)  # track id -> (K, 2) recent box bottoms, px
    timing_ms: dict[str, float] = field(default_factory=dict)

    def select(self, keep) -> DrivingFacts:
        """The same facts for a subset of detections (see `Perception.__getitem__`)."""
        return replace(self, track_ids=None if self.track_ids is None else np.atleast_1d(self.track_ids[keep]))

    def to_dict(self) -> dict:
        """JSONL fields: lanes, ego, lead, warnings (track ids go into each detection)."""
        out: dict = {"lanes": [ln.to_dict() for ln in self.lanes]}
        out["ego"] = None if self.ego is None else self.ego.to_dict()
        out["lead"] = None if self.lead is None else self.lead.to_dict()
        out["warnings"] = list(self.warnings)
        return out


def driving_options(track: bool | None, camera: str | Path | None) -> DrivingOptions | None:
    """The CLI's `--track/--no-track` and `--camera FILE`: None (no driving stage) only for --no-track without a camera."""
    if track is False and camera is None:
        return None
    return DrivingOptions(track=track, camera=load_camera(camera) if camera is not None else None)


def driving_stages(options: DrivingOptions | None, sources) -> list[DrivingStage | None]:
    """One stage per source (objects with `kind`); with `track` None, tracking is on for all but image folders."""
    if options is None:
        return [None] * len(sources)
    auto = options.track is None
    return [DrivingStage(replace(options, track=source.kind != "images") if auto else options) for source in sources]


def warnings_summary(stages: list[DrivingStage | None]) -> str | None:
    """One line over all sources: warning counts, tracks and the stage's mean cost per frame; None without stages."""
    running = [stage for stage in stages if stage is not None]
    if not running:
        return None
    counts = sum((stage.counts for stage in running), Counter())
    work = sum((stage.work_ms for stage in running), Counter())
    frames = max(1, sum(stage.frames for stage in running))
    tracks = sum(stage.tracker.ids_given() for stage in running if stage.tracker is not None)
    shown = ", ".join(f"{k} {counts[k]}" for k in ("departure_left", "departure_right", "collision"))
    cost = " + ".join(f"{k} {work[k] / frames:.2f}" for k in ("track", "lanes", "ego"))
    return f"driving warnings: {shown}; vehicle tracks: {tracks}; cost per frame: {cost} ms"


class DrivingStage:
    """Stateful per-source stage; `counts` totals the warnings raised so far (for the run summary)."""

    def __init__(self, options: DrivingOptions | None = None):
        self.options = options or DrivingOptions()
        self.camera = self.options.camera or default_camera()
        self.tracker = Tracker(self.options.track_options) if self.options.track is not False else None
        self.lanes = LaneTracker(self.camera)
        self.ego = EgoEstimator()
        self.leads = LeadFinder()
        self.counts: Counter = Counter()
        self.work_ms: Counter = Counter()  # per stage, summed over frames
        self.frames = 0
        self._trails: dict[int, deque] = {}
        self._collision = False

    def update(self, perception: Perception, timestamp: float) -> DrivingFacts:
        timing = {}
        start = time.perf_counter()
        ids = None
        if self.tracker is not None:
            ids = self.tracker.update(perception.boxes, perception.scores, perception.class_ids, timestamp)
        tracked = time.perf_counter()
        timing["track"] = (tracked - start) * 1e3
        lanes: list[LaneLine] = []
        ego = None
        camera = self.camera
        if perception.frame_shape is not None:
            camera = self.camera.scaled(perception.frame_shape[1], perception.frame_shape[0])
        if perception.lane is not None:
            lanes = self.lanes.update(perception.lane)
        fitted = time.perf_counter()
        timing["lanes"] = (fitted - tracked) * 1e3
        before = self.ego.departure
        if perception.lane is not None:
            ego = self.ego.update(lanes, timestamp)
        lead = self.leads.update(perception.boxes, ids, lanes, self.ego.width, camera, timestamp)
        warnings = []
        if ego is not None and ego.departure != "none" and ego.departure != before:
            warnings.append(f"departure_{ego.departure}")
        collision = lead is not None and lead.time_to_collision_s is not None and lead.time_to_collision_s < TTC_WARNING_S
        if collision and not self._collision:
            warnings.append("collision")
        self._collision = collision
        self.counts.update(warnings)
        trails = self._update_trails(perception.boxes, ids)
        timing["ego"] = (time.perf_counter() - fitted) * 1e3
        self.work_ms.update(timing)
        self.frames += 1
        return DrivingFacts(ids, lanes, ego, lead, warnings, trails, timing)

    def _update_trails(self, boxes: np.ndarray, ids: np.ndarray | None) -> dict[int, np.ndarray]:
        if ids is None:
            return {}
        seen = set()
        for box, track_id in zip(boxes, ids):
            if track_id >= 0:
                seen.add(int(track_id))
                self._trails.setdefault(int(track_id), deque(maxlen=TRAIL)).append(((box[0] + box[2]) / 2, box[3]))
        for key in [k for k in self._trails if k not in seen]:
            del self._trails[key]
        return {k: np.array(v, np.float32) for k, v in self._trails.items()}
