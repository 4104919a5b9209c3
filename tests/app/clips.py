"""A small synthetic clip written with OpenCV, and a frame counter (imported by the app tests as `clips`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLIP_FRAMES, CLIP_SIZE, CLIP_FPS = 60, (320, 192), 30.0  # (width, height)


def clip_frame(i: int) -> np.ndarray:
    """Frame i: a green band whose height grows with i (drivable) and a white square moving right (boxes)."""
    width, height = CLIP_SIZE
    frame = np.full((height, width, 3), 40, np.uint8)
    frame[height - 20 - i : height] = (30, 220, 30)
    x = 4 * i
    frame[40:80, x : x + 40] = 255
    return frame


def write_clip(path: Path, frames: int = CLIP_FRAMES, fps: float = CLIP_FPS) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG" if path.suffix == ".avi" else "mp4v"), fps, CLIP_SIZE)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(clip_frame(i))
    writer.release()
    return path


def count_frames(path: Path) -> int:
    """Frames OpenCV can decode from a video file (0 when it cannot be opened)."""
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.isOpened() and capture.read()[0]:
        count += 1
    capture.release()
    return count
