"""Vehicle tracks over time: Roboflow's `trackers` ByteTrack (numpy/scipy, no torch) behind a small wrapper.

ByteTrack associates high-confidence boxes first and low-confidence ones second, so a vehicle keeps its id
through a frame where its score dips. Frames are placed by their timestamps (seconds), so a live source that
drops frames predicts the motion over the real gap and keeps ids. Ids count up from 0; a detection not (yet)
confirmed as a track has id -1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrackOptions:
    """ByteTrack settings: `activation` = confidence that starts a track, `high` = first-pass confidence,
    `lost_s` = seconds a track survives unseen, `min_hits` = frames before an id is given."""

    activation: float = 0.35
    high: float = 0.45
    lost_s: float = 1.0
    min_hits: int = 2
    min_iou: float = 0.1
    fps: float = 30.0


class Tracker:
    """`update(boxes, scores, class_ids, timestamp) -> ids (N,) int64` aligned with the input order."""

    def __init__(self, options: TrackOptions = TrackOptions()):
        import supervision as sv
        from trackers import ByteTrackTracker

        self._sv = sv
        self._given = 0
        self.options = options
        self._tracker = ByteTrackTracker(
            lost_track_buffer=max(1, round(options.lost_s * 30.0)),  # the library counts this buffer at 30 fps
            frame_rate=options.fps,
            track_activation_threshold=options.activation,
            minimum_consecutive_frames=options.min_hits,
            minimum_iou_threshold=options.min_iou,
            high_conf_det_threshold=options.high,
        )

    def ids_given(self) -> int:
        """How many track ids were handed out so far."""
        return self._given

    def update(self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, timestamp: float) -> np.ndarray:
        """Track ids of this frame's detections (-1: not confirmed yet)."""
        n = len(boxes)
        detections = self._sv.Detections(
            xyxy=boxes.astype(np.float32).reshape(-1, 4), confidence=scores.astype(np.float32),
            class_id=class_ids.astype(int), data={"index": np.arange(n)},
        )
        with warnings.catch_warnings():  # an out-of-order timestamp skips the update; ids stay -1
            warnings.simplefilter("ignore", UserWarning)
            result = self._tracker.update(detections, timestamp=float(timestamp))
        ids = np.full(n, -1, np.int64)
        if len(result):
            ids[np.asarray(result.data["index"], np.int64)] = np.asarray(result.tracker_id, np.int64)
        self._given = max(self._given, int(ids.max(initial=0)))
        return ids
