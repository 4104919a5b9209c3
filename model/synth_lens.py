"""Mild radial lens distortion of a rendered frame: one map warps the image (bilinear) and the label masks
and object ids (nearest), and the same model moves the outlines that boxes are measured from, so the labels
stay exact.

Model, in coordinates normalized by the focal length around the principal point, with OpenCV's sign
(k1 < 0 barrel, k1 > 0 pincushion): the distorted pixel n_d shows the pinhole render at
n_u = zoom * n_d / (1 + k1 r_d^2 + k2 r_d^4). It is written from the distorted side so that the image map is
closed form; outline points go the other way by a fixed-point iteration. `zoom` (<= 1) keeps every output
pixel inside the render, so a barrel lens shows no black corners.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

OUTLINE_STEP = 8.0  # pixels: outlines are resampled this finely before they are warped (edges bend)
ITERATIONS = 40


@dataclass(frozen=True)
class Lens:
    """Radial distortion (k1, k2) of a camera with focal length `f` pixels and principal point (cx, cy)."""

    k1: float
    k2: float
    f: float
    cx: float
    cy: float
    width: int
    height: int

    def _ratio(self, r2: np.ndarray) -> np.ndarray:
        return 1.0 + self.k1 * r2 + self.k2 * r2 * r2

    def _shrink(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """1 / ratio at distorted pixels (u, v): the pinhole position is c + zoom * (p - c) * this."""
        return 1.0 / self._ratio(((u - self.cx) ** 2 + (v - self.cy) ** 2) / self.f**2)

    @cached_property
    def zoom(self) -> float:
        """Largest scale <= 1 that keeps the pinhole positions of the frame border inside the render."""
        w, h = self.width, self.height
        u = np.concatenate([np.linspace(0, w, 65), np.linspace(0, w, 65), np.zeros(37), np.full(37, float(w))])
        v = np.concatenate([np.zeros(65), np.full(65, float(h)), np.linspace(0, h, 37), np.linspace(0, h, 37)])
        s = self._shrink(u, v)
        du, dv = (u - self.cx) * s, (v - self.cy) * s
        room = np.concatenate([np.where(du > 0, (w - self.cx) / np.maximum(du, 1e-9), self.cx / np.maximum(-du, 1e-9)),
                               np.where(dv > 0, (h - self.cy) / np.maximum(dv, 1e-9), self.cy / np.maximum(-dv, 1e-9))])
        return float(min(1.0, room.min()))

    @cached_property
    def maps(self) -> tuple[np.ndarray, np.ndarray]:
        """cv2.remap maps (float32, height x width): the pinhole position every distorted pixel shows."""
        yy, xx = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32)
        s = (self.zoom * self._shrink(xx, yy)).astype(np.float32)
        return self.cx + (xx - self.cx) * s, self.cy + (yy - self.cy) * s

    def warp(self, img: np.ndarray, nearest: bool = False) -> np.ndarray:
        """The distorted image (bilinear) or label map (`nearest`: masks and ids keep their values)."""
        mx, my = self.maps
        return cv2.remap(img, mx, my, cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def points(self, uv: np.ndarray) -> np.ndarray:
        """Pinhole pixel positions (N, 2) -> distorted positions (N, 2) (inverse of `maps`; inside the render)."""
        c = np.array([self.cx, self.cy])
        q = (np.asarray(uv, np.float64) - c) / (self.f * self.zoom)
        n = q.copy()
        for _ in range(ITERATIONS):
            n = q * self._ratio((n**2).sum(1))[:, None]
        return c + n * self.f

    def box(self, pts: np.ndarray) -> tuple[tuple[float, float, float, float], bool] | None:
        """Box xyxy (clipped to the frame) and truncation of the distorted region spanned by pinhole points (N, 2),
        or None when none of it is in the frame. The outline is the convex hull cut to the render, resampled
        every OUTLINE_STEP px (straight edges bend under distortion), then warped."""
        w, h = self.width, self.height
        hull = cv2.convexHull(np.asarray(pts, np.float32).reshape(-1, 1, 2))
        frame = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32).reshape(-1, 1, 2)
        area, cut = cv2.intersectConvexConvex(hull, frame)
        if area <= 0 or cut is None:
            return None
        out = self.points(_resample(cut.reshape(-1, 2).astype(np.float64)))
        (x1, y1), (x2, y2) = out.min(0), out.max(0)
        truncated = bool(x1 < 0 or y1 < 0 or x2 > w or y2 > h)
        box = (max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h)))
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            return None
        return tuple(round(float(v), 2) for v in box), truncated


def _resample(poly: np.ndarray, step: float = OUTLINE_STEP) -> np.ndarray:
    """A closed polygon (N, 2) with extra points on its edges, at most `step` apart."""
    nxt = np.roll(poly, -1, axis=0)
    out = []
    for a, b in zip(poly, nxt):
        k = max(1, int(np.ceil(np.hypot(*(b - a)) / step)))
        out.append(a + (b - a) * (np.arange(k) / k)[:, None])
    return np.concatenate(out)
