"""Camera model of a forward-facing dashcam over flat ground: pixels <-> ground-plane metres.

Ground frame: X right, Z forward, metres, origin on the ground below the camera (as `model.synth_geometry`).
Camera file (YAML), every key optional except none; missing keys take the typical 1280x720 dashcam default:

    width: 1280          # frame size the intrinsics refer to (scaled to other frame sizes)
    height: 720
    fx: 1000.0           # focal lengths, px
    fy: 1000.0
    cx: 640.0            # principal point, px
    cy: 360.0
    mount_height_m: 1.4  # lens above the road
    pitch_deg: 2.0       # positive looks down
    roll_deg: 0.0        # positive turns the image clockwise
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from engines.errors import RoadsightError

HINT = "Fix the camera file (keys: " + "width, height, fx, fy, cx, cy, mount_height_m, pitch_deg, roll_deg)."


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics, mount height and attitude; `scaled` adapts it to another frame size."""

    width: int = 1280
    height: int = 720
    fx: float = 1000.0
    fy: float = 1000.0
    cx: float = 640.0
    cy: float = 360.0
    mount_height_m: float = 1.4
    pitch_deg: float = 2.0
    roll_deg: float = 0.0

    def __post_init__(self) -> None:
        checks = (("width", self.width > 0), ("height", self.height > 0), ("fx", self.fx > 0), ("fy", self.fy > 0),
                  ("mount_height_m", 0 < self.mount_height_m < 20), ("pitch_deg", -45 < self.pitch_deg < 45),
                  ("roll_deg", -45 < self.roll_deg < 45))
        for name, ok in checks:
            if not ok:
                raise RoadsightError(f"camera: {name} = {getattr(self, name)!r} is out of range. Expected a positive size/focal, "
                                     f"a mount height in (0, 20) m and pitch/roll in (-45, 45) degrees. {HINT}")

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera for frames of another size (intrinsics scaled per axis)."""
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        return replace(self, width=width, height=height, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy)

    def _rotation(self) -> np.ndarray:
        """World (x right, y down, z forward) -> camera axes."""
        p, r = math.radians(self.pitch_deg), math.radians(self.roll_deg)
        pitch = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
        roll = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
        return roll @ pitch

    def ground_to_image(self, xz: np.ndarray) -> np.ndarray:
        """Ground points (N, 2) [X, Z] metres -> pixels (N, 2); points behind the camera give NaN."""
        xz = np.asarray(xz, np.float64).reshape(-1, 2)
        world = np.stack([xz[:, 0], np.full(len(xz), self.mount_height_m), xz[:, 1]], 1)
        cam = world @ self._rotation().T
        z = np.where(cam[:, 2] > 1e-6, cam[:, 2], np.nan)
        return np.stack([self.cx + self.fx * cam[:, 0] / z, self.cy + self.fy * cam[:, 1] / z], 1)

    def image_to_ground(self, uv: np.ndarray) -> np.ndarray:
        """Pixels (N, 2) -> ground points (N, 2) [X, Z] metres; pixels at or above the horizon give NaN."""
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        rays = np.stack([(uv[:, 0] - self.cx) / self.fx, (uv[:, 1] - self.cy) / self.fy, np.ones(len(uv))], 1)
        world = rays @ self._rotation()  # R^T applied to each ray
        t = np.where(world[:, 1] > 1e-6, self.mount_height_m / np.where(world[:, 1] > 1e-6, world[:, 1], 1.0), np.nan)
        return np.stack([t * world[:, 0], t * world[:, 2]], 1)

    def homography_ground_to_image(self) -> np.ndarray:
        """3x3 H with [u, v, 1] ~ H @ [X, Z, 1] for points on the ground."""
        k = np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])
        r = self._rotation()
        return k @ np.stack([r[:, 0], r[:, 2], r[:, 1] * self.mount_height_m], 1)

    def horizon_v(self) -> float:
        """Image row of the horizon at the principal point's column (straight ahead)."""
        return float(self.cy - self.fy * math.tan(math.radians(self.pitch_deg)))

    def to_yaml(self) -> str:
        """The camera file text (round-trips through `load_camera`)."""
        return "".join(f"{k}: {round(v, 4) if isinstance(v, float) else v}\n" for k, v in asdict(self).items())


def default_camera(width: int = 1280, height: int = 720) -> CameraModel:
    """A typical 1280x720 dashcam (about 65 degrees horizontal field of view, 1.4 m high, 2 degrees down)."""
    return CameraModel().scaled(width, height)


def load_camera(path: Path | str) -> CameraModel:
    """Read a camera YAML file; any problem is one RoadsightError line naming the file and the fix."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RoadsightError(f"--camera: {path} does not exist. Expected a YAML camera file. Write one with `roadsight camera estimate`.") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        reason = str(error).splitlines()[0]
        raise RoadsightError(f"--camera: {path} is not readable YAML ({reason}). {HINT}") from None
    if not isinstance(data, dict):
        raise RoadsightError(f"--camera: {path} must hold a mapping of keys, but got {type(data).__name__}. {HINT}")
    known = {f.name: f.type for f in fields(CameraModel)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise RoadsightError(f"--camera: {path} has unknown keys {unknown}. {HINT}")
    values = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RoadsightError(f"--camera: {path}: {key} must be a number, but got {value!r}. {HINT}")
        values[key] = int(value) if key in ("width", "height") else float(value)
    if ("width" in values) != ("height" in values):
        raise RoadsightError(f"--camera: {path} gives only one of width/height. Expected both or neither. {HINT}")
    base = CameraModel()
    if "width" in values:  # unspecified intrinsics follow the stated frame size
        base = base.scaled(values["width"], values["height"])
    try:
        return replace(base, **values)
    except RoadsightError as error:
        raise RoadsightError(f"--camera: {path}: {error}") from None
