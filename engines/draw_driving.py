"""Overlay of the driving stage: track ids and trails, lane curves by side, ego facts, lead and warnings."""

from __future__ import annotations

import cv2
import numpy as np

from engines.driving import TTC_WARNING_S

FONT = cv2.FONT_HERSHEY_SIMPLEX
SIDE_BGR = {"ego_left": (255, 255, 0), "ego_right": (255, 0, 255), "other": (200, 200, 200)}
TRAIL_BGR = (0, 255, 255)
LEAD_BGR = (0, 200, 255)
WARN_BGR = (0, 0, 230)


def _text(frame: np.ndarray, text: str, org: tuple[int, int], scale: float, colour: tuple, bg: tuple = (30, 30, 30)) -> None:
    thickness = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    x, y = org
    cv2.rectangle(frame, (x, y - h - base), (x + w + 4, y + base), bg, -1)
    cv2.putText(frame, text, (x + 2, y), FONT, scale, colour, thickness, cv2.LINE_AA)


def draw_driving(frame: np.ndarray, boxes: np.ndarray, facts) -> np.ndarray:
    """Draw `engines.driving.DrivingFacts` for the frame's `boxes` in place; returns the frame."""
    h, w = frame.shape[:2]
    scale = max(0.4, min(h, w) / 1000)
    thick = max(1, round(min(h, w) / 360))
    for line in facts.lanes:
        pts = np.round(line.points[np.isfinite(line.points).all(1)]).astype(np.int32)
        if len(pts) > 1:
            cv2.polylines(frame, [pts], False, SIDE_BGR[line.side], thick + 1, cv2.LINE_AA)
    for trail in facts.trails.values():
        if len(trail) > 1:
            cv2.polylines(frame, [np.round(trail).astype(np.int32)], False, TRAIL_BGR, thick, cv2.LINE_AA)
    if facts.track_ids is not None:
        for box, track_id in zip(boxes, facts.track_ids):
            if track_id >= 0:
                _text(frame, f"#{track_id}", (int(box[0]), int(box[3]) + int(18 * scale)), scale * 0.8, (255, 255, 255))
    lead = facts.lead
    if lead is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in lead.box)
        cv2.rectangle(frame, (x1, y1), (x2, y2), LEAD_BGR, thick + 2)
        ttc = f" ttc {lead.time_to_collision_s:.1f} s" if lead.time_to_collision_s is not None else ""
        _text(frame, f"lead {lead.distance_m:.1f} m{ttc}", (x1, max(y1 - int(24 * scale), 12)), scale * 0.8, LEAD_BGR)
    ego = facts.ego
    y = int(h - 20 * scale)
    if ego is not None and ego.lateral_offset_m is not None:
        width = f"lane {ego.lane_width_m:.2f} m | " if ego.lane_width_m is not None else ""
        _text(frame, f"{width}offset {ego.lateral_offset_m:+.2f} m | heading {ego.heading_deg:+.1f} deg", (10, y), scale, (255, 255, 255))
    alerts = []
    if ego is not None and ego.departure != "none":
        alerts.append(f"LANE DEPARTURE {ego.departure.upper()}")
    if lead is not None and lead.time_to_collision_s is not None and lead.time_to_collision_s < TTC_WARNING_S:
        alerts.append("COLLISION WARNING")
    for k, alert in enumerate(alerts):
        _text(frame, alert, (int(w / 2 - 200 * scale), int((60 + 50 * k) * scale)), scale * 1.4, (255, 255, 255), WARN_BGR)
    return frame
