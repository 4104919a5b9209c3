"""Scene-like frames and videos for the calibration tests (importable helpers; fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def scene(seed: int, h: int = 72, w: int = 128) -> np.ndarray:
    """A blurred road-like BGR frame: sky, grey road, a few boxes and a white line (spatially smooth)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rng.integers(90, 200, 3)
    cv2.rectangle(img, (0, h // 2), (w, h), (90, 90, 90), -1)
    for _ in range(3):
        x, y = int(rng.integers(0, w - 20)), int(rng.integers(h // 3, h - 12))
        cv2.rectangle(img, (x, y), (x + 20, y + 12), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    cv2.line(img, (w // 2, h // 2), (int(rng.integers(0, w)), h), (255, 255, 255), 2)
    return cv2.GaussianBlur(img, (3, 3), 0)


def write_video(path: Path, frames: int, seed: int = 0, h: int = 72, w: int = 128) -> Path:
    """An MJPG .avi whose frame i shows scene(seed) with i encoded as a grey bar of width 4 + i px."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for i in range(frames):
        img = scene(seed, h, w)
        img[:8, :] = 0
        img[:8, : 4 + i] = 255
        writer.write(img)
    writer.release()
    return path


def bar_index(frame: np.ndarray) -> int:
    """Inverse of write_video's encoding: the frame index."""
    return int((frame[:8].mean(axis=(0, 2)) > 127).sum()) - 4


