"""Geometry of the synthetic scenes: a pinhole camera with pitch and roll over the ground (flat, or lifted by a
`Hill`), and a road path described by its heading along the arc length (curvature integrated), so that scenes
and drive clips share one renderer.

Ground frame: X right, Y up, Z forward, metres, origin on the ground below the camera.
Road coordinates: `d` = arc length ahead of the camera along the road, `o` = lateral offset from the road's
reference line (the divider between oncoming and ego lanes), positive to the right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Offset = float | Callable[[np.ndarray], np.ndarray]  # a lateral offset, fixed or a function of the arc length

NEAR = 0.3  # metres: points closer than this along the optical axis are not projected
GRADE_MAX = 0.08  # steepest grade of a hill
HILL_END = 250.0  # metres: the ground levels off beyond (where the road ends)


@dataclass(frozen=True)
class Hill:
    """A vertical curve of the ground, a function of the forward distance Z only (a cylindrical hill): flat up to
    `start`, then a parabola of curvature `k` (1/m; > 0 sag: the ground rises, < 0 crest: it falls away) until
    the grade reaches GRADE_MAX, level again beyond HILL_END. Everything on the ground (road, markings,
    vehicles, props, shadows) is lifted by the same height, so it all stays on the surface."""

    start: float
    k: float

    def height(self, z: np.ndarray) -> np.ndarray:
        """Ground height (metres) at forward distances z."""
        t = np.clip(np.asarray(z, dtype=np.float64), self.start, HILL_END) - self.start
        bend = np.minimum(t, GRADE_MAX / abs(self.k))  # length of the parabola before the grade is capped
        return 0.5 * self.k * bend**2 + self.k * bend * (t - bend)


@dataclass
class Camera:
    """Pinhole camera `cam_h` metres above the ground at its feet, pitched down by `pitch` and rolled by `roll`
    (radians), over flat ground or a `hill`."""

    width: int
    height: int
    f: float
    cx: float
    cy: float
    cam_h: float
    pitch: float
    roll: float
    hill: Hill | None = None

    def _rotate(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Pitch then roll (y measured down from the camera)."""
        cp, sp, cr, sr = np.cos(self.pitch), np.sin(self.pitch), np.cos(self.roll), np.sin(self.roll)
        y2, z2 = cp * y - sp * z, sp * y + cp * z
        return np.stack([cr * x - sr * y2, sr * x + cr * y2, z2], axis=-1)

    def to_camera(self, pts: np.ndarray) -> np.ndarray:
        """Ground-frame points (..., 3) -> camera coordinates (..., 3): x right, y down, z forward."""
        y = self.cam_h - pts[..., 1]
        if self.hill is not None:
            y = y - self.hill.height(pts[..., 2])
        return self._rotate(pts[..., 0], y, pts[..., 2])

    def eye_height(self, z: float) -> float:
        """Height of the camera above the ground at forward distance z (the hill lifts the ground)."""
        return self.cam_h if self.hill is None else self.cam_h - float(self.hill.height(z))

    def _pixels(self, c: np.ndarray) -> np.ndarray:
        z = np.maximum(c[..., 2], NEAR)
        return np.stack([self.cx + self.f * c[..., 0] / z, self.cy + self.f * c[..., 1] / z], axis=-1)

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ground-frame points (..., 3) -> (pixel coordinates (..., 2) float64, depth (...,))."""
        c = self.to_camera(pts)
        return np.clip(self._pixels(c), -1e5, 1e5), c[..., 2]

    def _line(self, drop: float) -> tuple[float, float]:
        """The image line v = a * u + b of the directions `drop` metres down per metre ahead."""
        far = np.array([-1e7, 1e7])
        (u0, v0), (u1, v1) = self._pixels(self._rotate(far, np.full(2, drop * 1e8), np.full(2, 1e8)))
        a = (v1 - v0) / (u1 - u0)
        return float(a), float(v0 - a * u0)

    def horizon(self) -> tuple[float, float]:
        """The horizon line v = a * u + b in pixels (vanishing points of two ground directions)."""
        far = np.array([[-1e7, 0.0, 1e8], [1e7, 0.0, 1e8]])
        (u0, v0), (u1, v1) = self._pixels(self._rotate(far[:, 0], self.cam_h - far[:, 1], far[:, 2]))
        a = (v1 - v0) / (u1 - u0)
        return float(a), float(v0 - a * u0)

    def _drops(self) -> tuple[np.ndarray, np.ndarray]:
        """Forward distances Z of the ground and the slope of the sight line to it (metres down per metre)."""
        z = np.linspace(1.0, HILL_END, 500)
        return z, (self.cam_h - self.hill.height(z)) / z

    def skyline(self) -> tuple[float, float]:
        """The image line where the ground meets the sky: the horizon, or above it when a hill rises ahead."""
        if self.hill is None:
            return self.horizon()
        return self._line(min(0.0, float(self._drops()[1].min())))

    def crest(self) -> tuple[float, tuple[float, float]] | None:
        """(forward distance Z of the crest, its image line) when the ground hides what lies beyond, else None."""
        if self.hill is None or self.hill.k >= 0:
            return None
        z, drop = self._drops()
        i = int(np.argmin(drop))
        return (float(z[i]), self._line(float(drop[i]))) if i < len(z) - 1 else None

    def polygon(self, pts: np.ndarray) -> np.ndarray:
        """Ground-frame polygon (N, 3) -> int32 pixel polygon (N, 2) for cv2.fillPoly (shift 0)."""
        return np.round(self.project(pts)[0]).astype(np.int32)


class RoadPath:
    """Road reference line from its heading theta(d) (radians, relative to the camera's forward axis)."""

    def __init__(self, d: np.ndarray, theta: np.ndarray, x0: float):
        self.d = d
        self.theta = theta
        step = np.diff(d)
        sin_t, cos_t = np.sin(theta), np.cos(theta)
        self.x = x0 + np.concatenate([[0.0], np.cumsum(0.5 * (sin_t[1:] + sin_t[:-1]) * step)])
        self.z = d[0] + np.concatenate([[0.0], np.cumsum(0.5 * (cos_t[1:] + cos_t[:-1]) * step)])

    @classmethod
    def clothoid(cls, k0: float, k1: float, yaw: float, x0: float, d_max: float = 260.0) -> RoadPath:
        """Curvature k0 + k1 * d (1/m), heading offset `yaw`, reference line at X = x0 below the camera."""
        d = np.linspace(0.0, d_max, 521)
        return cls(d, yaw + k0 * d + 0.5 * k1 * d**2, x0)

    def points(self, d: np.ndarray, o: np.ndarray | float, y: np.ndarray | float = 0.0) -> np.ndarray:
        """Ground-frame points (N, 3) at arc lengths d, lateral offsets o, heights y."""
        d = np.asarray(d, dtype=np.float64)
        theta = np.interp(d, self.d, self.theta)
        x = np.interp(d, self.d, self.x) + np.asarray(o) * np.cos(theta)
        z = np.interp(d, self.d, self.z) - np.asarray(o) * np.sin(theta)
        y = np.broadcast_to(np.asarray(y, dtype=np.float64), d.shape)
        return np.stack([x, y, z], axis=-1)

    def frame(self, d: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point on the reference line, unit tangent, unit right normal) at arc length d, in the ground plane."""
        theta = float(np.interp(d, self.d, self.theta))
        p = np.array([np.interp(d, self.d, self.x), 0.0, np.interp(d, self.d, self.z)])
        return p, np.array([np.sin(theta), 0.0, np.cos(theta)]), np.array([np.cos(theta), 0.0, -np.sin(theta)])

    def band(self, o0: Offset, o1: Offset, d0: float, d1: float, n: int = 48, y: float = 0.0) -> np.ndarray:
        """Ground polygon (2n, 3) of the strip between offsets o0 and o1 (fixed or varying along the road) from d0
        to d1 (geometric sampling)."""
        d = np.geomspace(max(d0, 0.5), d1, n) if d0 < d1 * 0.2 else np.linspace(d0, d1, n)
        return np.concatenate([self.points(d, offset_at(o0, d), y), self.points(d[::-1], offset_at(o1, d[::-1]), y)])


def offset_at(o: Offset, d: np.ndarray) -> np.ndarray | float:
    """The value of a lateral offset at arc lengths d."""
    return o(d) if callable(o) else o


# faces of a box as corner indices (corners: bit0 = +length, bit1 = +width (right), bit2 = +height) ordered
# (bottom-a, bottom-b, top-b, top-a) with a on the viewer's left, and their outward normals
FACES = (
    ((0, 2, 6, 4), (-1, 0, 0)),  # back  (-length)
    ((3, 1, 5, 7), (1, 0, 0)),  # front (+length)
    ((0, 1, 5, 4), (0, -1, 0)),  # left  (-width)
    ((2, 3, 7, 6), (0, 1, 0)),  # right (+width)
    ((4, 6, 7, 5), (0, 0, 1)),  # top
)


@dataclass
class Box3D:
    """Oriented box on the ground: centre of its base footprint, unit tangent/normal, length, width, y0..y1."""

    centre: np.ndarray
    tangent: np.ndarray
    normal: np.ndarray
    length: float
    width: float
    y0: float
    y1: float

    def corners(self) -> np.ndarray:
        """(8, 3) corners, index bits: 1 = +length, 2 = +width, 4 = +height."""
        out = np.empty((8, 3))
        for i in range(8):
            sl, sw = (0.5 if i & 1 else -0.5), (0.5 if i & 2 else -0.5)
            out[i] = self.centre + sl * self.length * self.tangent + sw * self.width * self.normal
            out[i, 1] = self.y1 if i & 4 else self.y0
        return out

    def visible_faces(self, cam_h: float) -> list[tuple[int, np.ndarray]]:
        """(face index, (4, 3) corners) of the faces turned towards a camera at (0, cam_h, 0)."""
        c = self.corners()
        eye = np.array([0.0, cam_h, 0.0])
        axes = (self.tangent, self.normal, np.array([0.0, 1.0, 0.0]))
        out = []
        for i, (idx, (a, b, h)) in enumerate(FACES):
            normal = a * axes[0] + b * axes[1] + h * axes[2]
            if float(np.dot(normal, c[list(idx)].mean(0) - eye)) < 0:
                out.append((i, c[list(idx)]))
        return out


def face_rects(quad: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """(k, 4, 3) sub-rectangles [u0, u1] x [v0, v1] (rows of `rects`) of a face quad, same corner order."""
    u = rects[:, [0, 1, 1, 0], None]
    v = rects[:, [2, 2, 3, 3], None]
    bottom = quad[0] + u * (quad[1] - quad[0])
    top = quad[3] + u * (quad[2] - quad[3])
    return bottom + v * (top - bottom)
