"""Draw a Perception on its frame with OpenCV: translucent drivable area and lanes, labelled boxes."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from engines.draw_driving import draw_driving
from engines.errors import RoadsightError
from engines.perception import Perception

DRIVABLE_BGR = (80, 175, 76)  # green
LANE_BGR = (0, 215, 255)  # amber
BOX_BGR = (255, 144, 30)  # blue-orange contrast on road scenes
TEXT_BGR = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@lru_cache(maxsize=16)
def _tint_table(colour: tuple[int, int, int], alpha: float) -> np.ndarray:
    """A (1, 256, 3) uint8 cv2.LUT table: round((1 - alpha) * value + alpha * colour) per channel."""
    values = np.arange(256, dtype=np.float64)[:, None] * (1 - alpha) + np.array(colour, np.float64) * alpha
    return np.clip(np.round(values), 0, 255).astype(np.uint8)[None]


def _blend(frame: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: float) -> None:
    """frame[mask] = round((1 - alpha) * frame + alpha * colour), in place, on the mask's bounding box only."""
    x, y, w, h = cv2.boundingRect(mask)
    if w and h:
        region, inside = frame[y : y + h, x : x + w], mask[y : y + h, x : x + w]
        cv2.copyTo(cv2.LUT(region, _tint_table(colour, alpha)), inside, region)


@lru_cache(maxsize=512)
def _text_size(text: str, scale: float, thickness: int) -> tuple[tuple[int, int], int]:
    return cv2.getTextSize(text, FONT, scale, thickness)


def _label(frame: np.ndarray, text: str, x: int, y: int, scale: float, colour: tuple[int, int, int]) -> None:
    """Text on a filled background, above (x, y) or inside the frame when there is no room."""
    thickness = max(1, round(scale * 2))
    (w, h), base = _text_size(text, scale, thickness)
    top = y - h - base - 2 if y - h - base - 2 >= 0 else y
    cv2.rectangle(frame, (x, top), (x + w + 2, top + h + base + 2), colour, -1)
    cv2.putText(frame, text, (x + 1, top + h + 1), FONT, scale, TEXT_BGR, thickness, cv2.LINE_AA)


def draw(
    frame: np.ndarray,
    perception: Perception,
    fps: float | None = None,
    latency_ms: float | None = None,
    copy: bool = True,
) -> np.ndarray:
    """Overlay drivable area, lanes and labelled boxes (and an fps/latency line) on a BGR frame.

    Returns the annotated frame (a copy unless copy=False).
    """
    out = frame.copy() if copy else frame
    for mask, colour, alpha in ((perception.drivable, DRIVABLE_BGR, 0.4), (perception.lane, LANE_BGR, 0.7)):
        if mask is not None:
            if mask.shape != out.shape[:2]:
                raise RoadsightError(
                    f"draw: mask and frame sizes differ. Expected a mask of {out.shape[:2]}, got {mask.shape}. "
                    "Draw on the frame the Perception came from."
                )
            _blend(out, mask, colour, alpha)
    scale = max(0.35, min(out.shape[:2]) / 1000)
    thickness = max(1, round(min(out.shape[:2]) / 360))
    for (x1, y1, x2, y2), score, class_id in zip(perception.boxes, perception.scores, perception.class_ids):
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(out, p1, p2, BOX_BGR, thickness)
        _label(out, f"{perception.names[class_id]} {score:.2f}", p1[0], p1[1], scale, BOX_BGR)
    if perception.driving is not None:
        draw_driving(out, perception.boxes, perception.driving)
    status = []
    if fps is not None:
        status.append(f"{fps:.1f} fps")
    if latency_ms is not None:
        status.append(f"{latency_ms:.1f} ms")
    if status:
        _label(out, " | ".join(status), 0, 0, scale, (40, 40, 40))
    return out
