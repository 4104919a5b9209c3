"""Lane lines as curves: the lane mask seen from above (inverse perspective), split into line instances, each
fitted with a polynomial X = c0 + c1 Z + c2 Z^2 on the ground (metres, `engines.camera` ground frame).

Steps per frame: warp the mask into a bird's-eye grid (one `cv2.warpPerspective`), find line bases in the
near field (column histogram), grow each line outwards by refitting inside a corridor around its current
curve (dashes and gaps are bridged by the curve), drop duplicates, then name the lines left and right of
the camera `ego_left` / `ego_right` and keep their ids from frame to frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.camera import CameraModel

X_MAX, X_RES = 15.0, 0.1  # bird's-eye grid: lateral half width and cell size, metres
Z_MIN, Z_MAX, Z_RES = 4.0, 60.0, 0.25  # forward range and cell size, metres
NEAR = 22.0  # line bases are searched up to this distance
MIN_POINTS = 25  # grid cells a line needs


@dataclass
class LaneLine:
    """One painted line: `coeffs` (c0, c1, c2) of X = c0 + c1 Z + c2 Z^2 in metres, valid for Z in `z_range`."""

    id: int
    side: str  # ego_left | ego_right | other
    coeffs: tuple[float, float, float]
    z_range: tuple[float, float]
    points: np.ndarray  # (K, 2) frame pixels along the curve
    confidence: float

    def x_at(self, z: float | np.ndarray) -> float | np.ndarray:
        """Lateral position (m) of the line at forward distance z."""
        c0, c1, c2 = self.coeffs
        return c0 + c1 * z + c2 * z * z

    def to_dict(self) -> dict:
        """JSON record: {id, side, points (frame px), coeffs (ground, m), z_range_m, confidence}."""
        return {"id": self.id, "side": self.side, "points": np.round(self.points, 1).tolist(),
                "coeffs": [round(float(c), 6) for c in self.coeffs], "z_range_m": [round(z, 1) for z in self.z_range],
                "confidence": round(self.confidence, 3)}


class BirdsEye:
    """The lane mask resampled on the ground grid for one camera and frame size."""

    def __init__(self, camera: CameraModel):
        self.camera = camera
        self.cols, self.rows = int(round(2 * X_MAX / X_RES)), int(round((Z_MAX - Z_MIN) / Z_RES))
        grid_to_ground = np.array([[X_RES, 0, -X_MAX], [0, -Z_RES, Z_MAX], [0, 0, 1.0]])
        self.matrix = camera.homography_ground_to_image() @ grid_to_ground

    def points(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(X, Z) metres of the grid cells covered by the mask."""
        bev = cv2.warpPerspective(mask, self.matrix, (self.cols, self.rows), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
        rows, cols = np.nonzero(bev)
        return cols * X_RES - X_MAX, Z_MAX - rows * Z_RES


def _bases(x: np.ndarray, z: np.ndarray) -> list[float]:
    """Lateral positions of line candidates in the near field (peaks of a smoothed column histogram)."""
    near = x[z < NEAR]
    if len(near) < MIN_POINTS:
        return []
    hist = np.bincount(((near + X_MAX) / X_RES).astype(np.int64), minlength=int(2 * X_MAX / X_RES) + 1).astype(np.float32)
    smooth = np.convolve(hist, np.ones(7, np.float32), mode="same")
    padded = np.pad(smooth, 1)
    tops = np.flatnonzero((smooth >= 12) & (smooth >= padded[:-2]) & (smooth > padded[2:]))  # local maxima
    peaks: list[int] = []
    for i in tops[np.argsort(smooth[tops])[::-1]]:
        if all(abs(i - j) * X_RES > 1.2 for j in peaks):
            peaks.append(int(i))
    return [i * X_RES - X_MAX for i in peaks]


def _grow(x: np.ndarray, z: np.ndarray, x0: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Fit one line from its base outwards: (coeffs c0, c1, c2; inlier mask) or None."""
    keep = (np.abs(x - x0) < 0.6) & (z < NEAR)
    coeffs = np.array([0.0, 0.0, x0])  # numpy order: c2, c1, c0
    for z_far, margin in ((NEAR, 0.6), (40.0, 0.45), (Z_MAX + 1, 0.4)):
        if z_far > NEAR:
            keep = (np.abs(x - np.polyval(coeffs, z)) < margin) & (z < z_far)
        if keep.sum() < MIN_POINTS:
            return None
        zs, xs = z[keep], x[keep]
        vander = np.vander(zs, 3 if zs.max() - zs.min() > 20 else 2)  # quadratic once the line is long enough
        fit = np.linalg.solve(vander.T @ vander, vander.T @ xs)  # least squares (normal equations: 2 or 3 unknowns)
        coeffs = np.concatenate([np.zeros(3 - len(fit)), fit])
    return coeffs, keep


def _parallel(x: np.ndarray, z: np.ndarray, members: list[np.ndarray]) -> list[np.ndarray]:
    """Joint least squares of lines sharing heading and curvature (one offset each, every line weighted
    equally): [coeffs c2, c1, c0] per line."""
    rows = np.concatenate(members)
    weight = np.repeat([1.0 / np.sqrt(len(m)) for m in members], [len(m) for m in members])
    design = np.zeros((len(rows), len(members) + 2))
    design[np.arange(len(rows)), np.repeat(np.arange(len(members)), [len(m) for m in members])] = 1.0
    design[:, -2], design[:, -1] = z[rows], z[rows] ** 2
    solution = np.linalg.lstsq(design * weight[:, None], x[rows] * weight, rcond=None)[0]
    return [np.array([solution[-1], solution[-2], c0]) for c0 in solution[:-2]]


def _rms(x: np.ndarray, z: np.ndarray, rows: np.ndarray, coeffs: np.ndarray) -> float:
    return float(np.sqrt(np.mean((x[rows] - np.polyval(coeffs, z[rows])) ** 2)))


def fit_lines(mask: np.ndarray, birdseye: BirdsEye) -> list[tuple[np.ndarray, tuple[float, float], float]]:
    """Line curves in one lane mask: [(coeffs c2, c1, c0 in numpy order, (z_near, z_far), confidence)].

    Each line is grown on its own; then the two lines nearest the car on either side (the ego lane's) are
    refitted together when they agree with a common shape (painted lines run parallel): a line seen only far
    away, or as a few dashes, borrows the other's heading and curvature, which keeps its position at the car
    (Z = 0), where offset and lane width are read, accurate."""
    x, z = birdseye.points(mask)
    grown = []
    for x0 in _bases(x, z):
        line = _grow(x, z, x0)
        if line is not None and not any(abs(np.polyval(line[0], 10.0) - np.polyval(c, 10.0)) < 0.5 for c, _ in grown):
            grown.append(line)  # (two bases may grow into the same line)
    coeffs = [c for c, _ in grown]
    rows = [np.flatnonzero(keep) for _, keep in grown]
    left = [k for k, c in enumerate(coeffs) if c[2] < 0]
    right = [k for k, c in enumerate(coeffs) if c[2] >= 0]
    if left and right:
        pair = [max(left, key=lambda k: coeffs[k][2]), min(right, key=lambda k: coeffs[k][2])]
        joint = _parallel(x, z, [rows[k] for k in pair])
        if all(_rms(x, z, rows[k], c) < 0.2 for k, c in zip(pair, joint)):
            for k, c in zip(pair, joint):
                coeffs[k] = c
    out = []
    for c, r in zip(coeffs, rows):
        zs = z[r]
        z_range = (float(zs.min()), float(zs.max()))
        confidence = min(1.0, (z_range[1] - z_range[0]) / 30.0) * float(np.mean(np.abs(x[r] - np.polyval(c, zs)) < 0.2))
        out.append((c, z_range, confidence))
    return out


class LaneTracker:
    """Per-frame lane lines with ids that persist while a line stays within 0.7 m of where it was."""

    def __init__(self, camera: CameraModel):
        self.camera = camera
        self._birdseye: BirdsEye | None = None
        self._previous: list[LaneLine] = []
        self._next_id = 1

    def update(self, mask: np.ndarray) -> list[LaneLine]:
        """Lane lines of one (H, W) 0/1 lane mask at frame size."""
        h, w = mask.shape
        if self._birdseye is None or (self._birdseye.camera.width, self._birdseye.camera.height) != (w, h):
            self._birdseye = BirdsEye(self.camera.scaled(w, h))
        cam = self._birdseye.camera
        lines = []
        for coeffs, z_range, confidence in fit_lines(mask, self._birdseye):
            c2, c1, c0 = (float(c) for c in coeffs)
            zs = np.linspace(z_range[0], z_range[1], 16)
            points = cam.ground_to_image(np.stack([np.polyval(coeffs, zs), zs], 1))
            lines.append(LaneLine(0, "other", (c0, c1, c2), z_range, points, confidence))
        left = [ln for ln in lines if ln.coeffs[0] < 0]
        right = [ln for ln in lines if ln.coeffs[0] >= 0]
        if left:
            max(left, key=lambda ln: ln.coeffs[0]).side = "ego_left"
        if right:
            min(right, key=lambda ln: ln.coeffs[0]).side = "ego_right"
        free = list(self._previous)
        for ln in lines:
            match = min(free, key=lambda p: abs(p.x_at(10.0) - ln.x_at(10.0)), default=None)
            if match is not None and abs(match.x_at(10.0) - ln.x_at(10.0)) < 0.7:
                ln.id = match.id
                free.remove(match)
            else:
                ln.id, self._next_id = self._next_id, self._next_id + 1
        self._previous = lines
        return lines
