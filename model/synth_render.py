"""Render a `model.synth_scene.Scene` to a BGR frame with exact labels.

Labels come from the same geometry as the pixels:
- drivable: the ego road's surface (ego-direction lanes between the divider and the right edge, which moves in
  where a lane ends or starts ahead) and a crossing road ahead, minus whatever stands in front of it
  (vehicles, people, the ego hood);
- lane: every painted marking, each as its painted polygon united with its centre line drawn
  `LANE_LABEL_PX` (8) px wide at 1280x720 (scaled with the width), the width of YOLOP's train labels;
  hidden where something stands in front;
- boxes: the full projected extent of each object (an occluded object keeps its full box, as BDD100K labels
  it), clipped to the frame; objects with less than `MIN_VISIBLE` of their in-frame silhouette visible
  (hidden or out of frame) are dropped.
Hills lift everything by the same ground height (`model.synth_geometry.Hill`); behind a crest the road ends at
the crest and objects beyond it show only above the crest line (their boxes stay full, like other occluded
objects). Lens distortion (`model.synth_lens`) warps the image and the masks with one map and moves the object
outlines with the same model before their boxes are taken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from model.synth_geometry import Camera, Hill, Offset, RoadPath, offset_at
from model.synth_lens import Lens
from model.synth_scene import Scene
from model.synth_things import Thing, prop_thing, two_wheeler_things, vehicle_thing

LANE_LABEL_PX = 8  # lane label line width at 1280x720
MIN_VISIBLE = 0.03  # share of the in-frame silhouette that must be visible for a box to be kept
MARK_MAX = 110.0  # metres: markings are painted (and labelled) up to this distance
MARKER_M = 0.15  # raised pavement marker: footprint side and height, metres
MARKER_H = 0.03
CROSSING_ARM = 80.0  # metres: a crossing road is drawn this far to each side
ROAD_MAX = 250.0
CLUTTER = -1  # id of unlabelled objects (and the hood) in Frame.ids; 0 = road, ground and sky


@dataclass
class Label:
    """One labelled object: BDD100K category, box xyxy in frame pixels (clipped), id in `Frame.ids`."""

    category: str
    box: tuple[float, float, float, float]
    id: int
    visible: float  # visible share of the in-frame silhouette
    truncated: bool
    key: int | None = None  # `Thing.key`: index of the vehicle in `Scene.vehicles` (None for props)


@dataclass
class Frame:
    """A rendered frame: BGR image, drivable and lane masks (0/1), labels, per-pixel visible object id
    (`Label.id`; CLUTTER for unlabelled objects, 0 for road, ground and sky)."""

    image: np.ndarray
    drivable: np.ndarray
    lane: np.ndarray
    labels: list[Label]
    ids: np.ndarray


@lru_cache(maxsize=4)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def _poly(pts: np.ndarray) -> np.ndarray:
    return np.round(pts).astype(np.int32)


class Canvas:
    """Image (uint8 while drawing), label masks, object ids and a quarter-resolution glow layer."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.image = np.zeros((h, w, 3), np.uint8)
        self.drivable = np.zeros((h, w), np.uint8)
        self.lane = np.zeros((h, w), np.uint8)
        self.ids = np.zeros((h, w), np.int16)
        self.glow = np.zeros((h // 4 + 1, w // 4 + 1, 3), np.float32)
        self.lights: list[tuple[np.ndarray, tuple]] = []

    def finish_masks(self) -> None:
        """Hide the road labels wherever an object (or the hood) stands in front of the road."""
        hidden = self.ids != 0
        self.drivable[hidden] = 0
        self.lane[hidden] = 0

    def occlude(self, pts: np.ndarray, colour: tuple, obj_id: int = CLUTTER, glow: tuple | None = None) -> None:
        """Draw an object polygon: paints the image and marks its id (masks are hidden by `finish_masks`)."""
        p = [_poly(pts)]
        cv2.fillPoly(self.image, p, colour, cv2.LINE_AA)
        cv2.fillPoly(self.ids, p, obj_id)
        if glow is not None:
            self.lights.append((p[0], glow))
            cv2.fillPoly(self.glow, [np.round(pts * 4).astype(np.int32)], glow, cv2.LINE_8, 4)


def _background(c: Canvas, s: Scene, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """Sky gradient above the skyline (the horizon on flat ground), terrain below, a far tree line or city
    skyline; returns the map of the distance below the skyline."""
    a, b = cam.skyline()
    yy, xx = _grid(c.h, c.w)
    dist = yy - (a * xx + b)
    qy, qx = _grid(c.h // 8, c.w // 8)
    t = np.clip(-(qy * 8 - (a * qx * 8 + b)) / (0.55 * c.h), 0, 1)[..., None]
    sky = np.asarray(s.sky[1], np.float32) * (1 - t) + np.asarray(s.sky[0], np.float32) * t
    if s.timeofday == "daytime" and s.weather == "clear":  # soft clouds
        cloud = np.zeros(sky.shape[:2], np.float32)
        for _ in range(int(rng.integers(0, 7))):
            centre = (int(rng.uniform(0, cloud.shape[1])), int(rng.uniform(0, cloud.shape[0] * 0.5)))
            axes = (int(rng.uniform(4, 20)), int(rng.uniform(1, 4)))
            cv2.ellipse(cloud, centre, axes, 0, 0, 360, float(rng.uniform(0.3, 0.8)), -1)
        cloud = cv2.GaussianBlur(cloud, (0, 0), 1.5)[..., None]
        sky = sky * (1 - cloud) + 245 * cloud
    c.image[:] = cv2.resize(sky, (c.w, c.h), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    xs = np.linspace(-20, c.w + 20, 40)
    ground = np.array([[-10, a * -10 + b], [c.w + 10, a * (c.w + 10) + b], [c.w + 10, c.h + 10], [-10, c.h + 10]])
    cv2.fillPoly(c.image, [_poly(ground)], tuple(float(v) for v in s.terrain), cv2.LINE_AA)
    scale = c.w / 1280
    if s.scene_type == "city street":
        for x in np.sort(rng.uniform(-40, c.w, 14)):
            top, wid = rng.uniform(10, 80) * scale, rng.uniform(30, 120) * scale
            colour = tuple(float(v) for v in np.asarray(s.sky[1]) * rng.uniform(0.55, 0.8))
            pts = np.array([[x, a * x + b + 2], [x + wid, a * (x + wid) + b + 2], [x + wid, a * (x + wid) + b - top], [x, a * x + b - top]])
            cv2.fillPoly(c.image, [_poly(pts)], colour, cv2.LINE_AA)
    else:
        heights = np.convolve(rng.uniform(0, 25, 44), np.ones(5) / 5, mode="valid")[:40] * scale
        top = np.stack([xs, a * xs + b - heights], 1)
        pts = np.concatenate([top, np.stack([xs[::-1], a * xs[::-1] + b + 2], 1)])
        cv2.fillPoly(c.image, [_poly(pts)], tuple(float(v) for v in np.asarray(s.terrain) * 0.6), cv2.LINE_AA)
    return dist


def _road(c: Canvas, s: Scene, cam: Camera, path: RoadPath, dash_phase: float, far: float = ROAD_MAX) -> None:
    """Road bands, repairs, the drivable label and painted markings with their lane label, up to arc length `far`
    (a crest)."""
    right, left = s.n_ego * s.lane_w, -s.n_opp * s.lane_w
    asphalt = np.asarray(s.asphalt, np.float64)
    side_l = s.shoulder if s.n_opp else 0.5
    kerb = (185, 185, 182)
    walk = (150, 150, 148) if s.scene_type == "city street" else s.terrain
    edge = _right_side(s)
    bands = [(edge(right + s.shoulder), edge(right + s.shoulder + 0.25), kerb), (left - side_l - 0.25, left - side_l, kerb),
             (edge(right + s.shoulder + 0.25), edge(right + s.shoulder + 0.25 + s.sidewalk), walk),
             (left - side_l - 0.25 - s.sidewalk, left - side_l - 0.25, walk),
             (left - side_l, edge(right + s.shoulder), tuple(asphalt * 1.06)), (left, edge(right), tuple(asphalt))]
    for o0, o1, colour in bands:
        cv2.fillPoly(c.image, [cam.polygon(path.band(o0, o1, 0.5, far, 64))], tuple(float(v) for v in colour), cv2.LINE_AA)
    for d, o, length, width, dark in s.patches:
        if d + length > 1.0 and d < far:  # (drive clips: patches already passed are skipped, those under the car cut)
            band = path.band(o - width / 2, o + width / 2, max(d, 0.5), min(d + length, far), 6)
            cv2.fillPoly(c.image, [cam.polygon(band)], tuple(asphalt * dark), cv2.LINE_AA)
    cv2.fillPoly(c.drivable, [cam.polygon(path.band(0.0, edge(right), 0.5, far, 64))], 1)
    moved = dash_phase - s.dash[2]  # drive clips: worn gaps, markers and a crossing move with the paint
    cut = None
    if s.crossing and s.crossing[0] + moved < far:
        cut = (s.crossing[0] + moved, min(s.crossing[0] + moved + s.crossing[1], far))
        _crossing(c, s, cam, path, cut, asphalt)
    _markings(c, s, cam, path, dash_phase, far, asphalt, cut)


def _markings(c: Canvas, s: Scene, cam: Camera, path: RoadPath, dash_phase: float, far: float, asphalt: np.ndarray,
              cut: tuple[float, float] | None) -> None:
    """The painted lines of the road and their lane label, up to `far`, interrupted by a crossing road `cut`."""
    label_px = max(1, int(round(LANE_LABEL_PX * c.w / 1280)))
    dash_len, period, _ = s.dash
    mark_max = min(MARK_MAX, far)
    moved = dash_phase - s.dash[2]
    for line in s.lines:
        colour = tuple(float(v) for v in line.alpha * np.asarray(line.colour) + (1 - line.alpha) * asphalt)
        for off, dashed in line.stripes:
            at = _line_offsets(s, line.o + off, line.follows_edge)
            if dashed:
                starts = np.arange(dash_phase % period - period, mark_max, period)
                segments = [(max(d0, 0.5), min(d0 + dash_len, far), 4) for d0 in starts if d0 + dash_len > 0.5]
            else:
                segments = [(0.5, mark_max, 40)]
            if line.span:
                segments = _around(_around(segments, (-1e9, line.span[0])), (line.span[1], 1e9))
            for d0, d1, n in segments if cut is None else _around(segments, cut):
                paint = cam.polygon(path.band(at(-0.075), at(0.075), d0, d1, n))
                if line.gaps:
                    _paint_worn(c, cam, path, at, d0, d1, n, [(g0 + moved, g1 + moved) for g0, g1 in line.gaps], colour)
                else:
                    cv2.fillPoly(c.image, [paint], colour, cv2.LINE_AA)
                cv2.fillPoly(c.lane, [paint], 1)
                d = np.geomspace(d0, d1, n) if d0 < d1 * 0.2 else np.linspace(d0, d1, n)
                cv2.polylines(c.lane, [cam.polygon(path.points(d, offset_at(at(0.0), d)))], False, 1, label_px)
        if line.markers:
            _markers(c, cam, path, line, moved, mark_max, cut, _line_offsets(s, line.o, line.follows_edge))


def _right_side(s: Scene) -> Callable[[float], Offset]:
    """Offset -> the same offset following the right road edge (moved in where a tapered lane is missing)."""
    if not s.taper:
        return lambda o: o
    return lambda o: (lambda d: o + s.right_shift(d))


def _line_offsets(s: Scene, o: float, follows_edge: bool) -> Callable[[float], Offset]:
    """k -> the offset o + k across a line, following the right road edge for the edge line of a tapered lane."""
    edge = _right_side(s) if follows_edge else (lambda v: v)
    return lambda k: edge(o + k)


def _around(segments: list, cut: tuple[float, float]) -> list:
    """Painted segments (d0, d1, n) with the stretch `cut` (a crossing road) taken out."""
    out = []
    for d0, d1, n in segments:
        for a, b in ((d0, min(d1, cut[0])), (max(d0, cut[1]), d1)):
            if b - a > 0.05:
                out.append((a, b, max(2, int(np.ceil(n * (b - a) / (d1 - d0))))))
    return out


def _crossing(c: Canvas, s: Scene, cam: Camera, path: RoadPath, cut: tuple[float, float], asphalt: np.ndarray) -> None:
    """A road crossing ahead between arc lengths `cut`: asphalt over the kerbs and verges, drivable (BDD100K's
    alternative drivable area, which YOLOP's drivable label merges), its centre line painted and labelled on
    both arms. Props and parked cars were kept off it when the scene was drawn."""
    o = np.linspace(-CROSSING_ARM, CROSSING_ARM, 41)
    d0, d1 = cut
    poly = cam.polygon(np.concatenate([path.points(np.full_like(o, d0), o), path.points(np.full_like(o, d1), o[::-1])]))
    cv2.fillPoly(c.image, [poly], tuple(asphalt), cv2.LINE_AA)
    cv2.fillPoly(c.drivable, [poly], 1)
    mid, label_px = (d0 + d1) / 2, max(1, int(round(LANE_LABEL_PX * c.w / 1280)))
    right, left = s.n_ego * s.lane_w + s.shoulder, -s.n_opp * s.lane_w - (s.shoulder if s.n_opp else 0.5)
    for a, b in ((-CROSSING_ARM, left - 1.0), (right + 1.0, CROSSING_ARM)):
        arm = np.linspace(a, b, 21)
        paint = cam.polygon(np.concatenate([path.points(np.full_like(arm, mid - 0.075), arm), path.points(np.full_like(arm, mid + 0.075), arm[::-1])]))
        cv2.fillPoly(c.image, [paint], (40.0, 175.0, 225.0), cv2.LINE_AA)
        cv2.fillPoly(c.lane, [paint], 1)
        cv2.polylines(c.lane, [cam.polygon(path.points(np.full_like(arm, mid), arm))], False, 1, label_px)


def _paint_worn(c: Canvas, cam: Camera, path: RoadPath, at: Callable[[float], Offset], d0: float, d1: float, n: int, gaps: list,
                colour: tuple) -> None:
    """Paint the stripe [d0, d1] of a line (`at(k)`: offset k across it) except where the paint is worn off
    (image only: the label keeps it)."""
    start = d0
    for g0, g1 in sorted(gaps) + [(d1, d1)]:
        end = min(g0, d1)
        if end - start > 0.05:
            k = max(2, int(np.ceil(n * (end - start) / (d1 - d0))))
            cv2.fillPoly(c.image, [cam.polygon(path.band(at(-0.075), at(0.075), start, end, k))], colour, cv2.LINE_AA)
        start = max(start, g1)
        if start >= d1:
            return


def _markers(c: Canvas, cam: Camera, path: RoadPath, line, moved: float, mark_max: float, cut: tuple[float, float] | None,
             at: Callable[[float], Offset]) -> None:
    """Raised pavement markers: small bright squares on the line (`at(k)`: offset k across it) every `spacing`
    metres where it is painted (not labelled: they sit on the labelled line)."""
    spacing, phase = line.markers
    colour = tuple(float(min(255.0, v * 1.1 + 20)) for v in line.colour)
    half = MARKER_M / 2
    for d in np.arange((phase + moved) % spacing, mark_max, spacing):
        if d > 1.0 and (cut is None or not cut[0] - MARKER_M < d < cut[1]) and (not line.span or line.span[0] <= d <= line.span[1]):
            corners = np.concatenate([path.band(at(-half), at(half), d, d + MARKER_M, 2, y) for y in (0.0, MARKER_H)])
            cv2.fillPoly(c.image, [cv2.convexHull(cam.polygon(corners))], colour, cv2.LINE_AA)


def _ground_shading(c: Canvas, s: Scene, cam: Camera, path: RoadPath, things: list[Thing], dist: np.ndarray, far: float = ROAD_MAX) -> None:
    """Asphalt/terrain texture and soft cast shadows of vehicles, trees, buildings and the domain's shadows
    (daylight); `things` are those in front of a crest, `far` its arc length."""
    tex = np.random.default_rng(s.texture_seed + 1).normal(1.0, 0.07, (c.h // 8, c.w // 8)).astype(np.float32)
    if s.timeofday == "night":
        shade = cv2.resize(tex, (c.w, c.h))
        c.image[:] = (c.image * np.where(dist > 0, shade, 1.0)[..., None]).astype(np.uint8)
        return
    strength = 0.5 if s.weather == "clear" and s.timeofday == "daytime" else 0.78
    shade = np.ones((c.h // 4 + 1, c.w // 4 + 1), np.float32)
    for th in things:
        for foot in th.ground:
            pts = foot.copy()
            centre = pts.mean(0)
            pts = centre + (pts - centre) * 1.12
            shifted = pts + np.array([s.shadow_dir * th.height * 0.35, 0, 0])
            hull = cv2.convexHull(np.round(cam.project(np.concatenate([pts, shifted]))[0] * 4).astype(np.int32))
            cv2.fillPoly(shade, [hull], strength, cv2.LINE_8, 4)
    for d, length, o0, o1, dark in s.shadows:  # trees, poles and bridges beside the road, cast across it
        if d < far:
            band = path.band(o0, o1, d, min(d + length, far), 6)
            cv2.fillPoly(shade, [np.round(cam.project(band)[0] * 4).astype(np.int32)], dark, cv2.LINE_8, 4)
    shade = cv2.GaussianBlur(shade, (0, 0), 1.5)[: tex.shape[0] * 2, : tex.shape[1] * 2] * cv2.resize(tex, (tex.shape[1] * 2, tex.shape[0] * 2))
    shade = cv2.resize(shade, (c.w, c.h), interpolation=cv2.INTER_LINEAR)
    c.image[:] = (c.image * np.where(dist > 0, shade, 1.0)[..., None]).astype(np.uint8)


def _haze(c: Canvas, s: Scene, cam: Camera, dist: np.ndarray) -> None:
    """Blend the far ground and the sky near the skyline towards the horizon colour (before objects are drawn)."""
    if s.haze <= 0:
        return
    a_h, b_h = cam.skyline()
    ends = (b_h, a_h * c.w + b_h)
    r0, r1 = int(np.clip(min(ends) - 0.15 * c.h, 0, c.h)), int(np.clip(max(ends) + 0.15 * c.h, 0, c.h))
    if r1 > r0:
        a = (s.haze * np.exp(-np.abs(dist[r0:r1]) / (0.05 * c.h)))[..., None]
        band = c.image[r0:r1].astype(np.float32)
        band += a * (np.asarray(s.sky[1], np.float32) - band)
        c.image[r0:r1] = band.astype(np.uint8)


def _fog_ground(c: Canvas, s: Scene, dist: np.ndarray) -> None:
    """Fog on the ground layer and sky: blend towards the fog colour by the depth of the ground at each row."""
    depth = s.f * s.cam_h / np.maximum(dist, 0.5)
    alpha = np.where(dist > 0, 1.0 - np.exp(-depth / s.fog), 1.0).astype(np.float32)[..., None]
    img = c.image.astype(np.float32)
    img += alpha * (np.asarray(s.sky[1], np.float32) - img)
    c.image[:] = img.astype(np.uint8)


def _fogged(colour: tuple, depth: float, s: Scene) -> tuple:
    a = 1.0 - np.exp(-depth / s.fog)
    return tuple(float(c * (1 - a) + f * a) for c, f in zip(colour, s.sky[1]))


def _rain(img: np.ndarray, s: Scene, rng: np.random.Generator) -> None:
    """Slanted light streaks over the frame (in place, float image)."""
    h, w = img.shape[:2]
    n = int(s.rain * 500 * w / 1280)
    length = rng.uniform(8, 30, n) * w / 1280
    x, y = rng.uniform(0, w, n), rng.uniform(0, h, n)
    lines = np.stack([np.stack([x, y], 1), np.stack([x + 0.25 * length, y + length], 1)], 1).round().astype(np.int32)
    streaks = np.zeros((h, w), np.uint8)
    cv2.polylines(streaks, list(lines), False, 255, max(1, w // 1280), cv2.LINE_AA)
    img += streaks[..., None].astype(np.float32) * (0.12 * s.gain)


def _glare(img: np.ndarray, s: Scene, cam: Camera) -> None:
    """A low sun just above the horizon: a bright flare, veiling glare over the frame and a few ghost spots."""
    h, w = img.shape[:2]
    a, b = cam.horizon()
    u = s.glare_x * w
    v = a * u + b - 0.06 * h
    qy, qx = _grid(h // 4, w // 4)
    r2 = ((qx * 4 - u) ** 2 + (qy * 4 - v) ** 2) / (0.25 * w) ** 2
    light = 255 * s.glare * (np.exp(-r2 * 12) * 2.0 + np.exp(-r2) * 0.45)
    for k in (0.6, 1.3, 1.8):  # ghosts along the line through the image centre
        gu, gv = u + k * (w / 2 - u), v + k * (h / 2 - v)
        light += 40 * s.glare * np.exp(-((qx * 4 - gu) ** 2 + (qy * 4 - gv) ** 2) / (0.03 * w) ** 2)
    img += cv2.resize(light, (w, h))[..., None] * np.array([0.9, 0.97, 1.0], np.float32)


def _hood(c: Canvas, s: Scene) -> None:
    if s.hood <= 0:
        return
    x = np.linspace(-0.05 * c.w, 1.05 * c.w, 33)
    top = c.h * (1 - s.hood * (1 - 0.6 * ((x - c.w / 2) / (0.6 * c.w)) ** 2))
    pts = np.concatenate([np.stack([x, top], 1), [[1.05 * c.w, c.h + 5], [-0.05 * c.w, c.h + 5]]])
    c.occlude(pts, (38, 36, 36))
    cv2.polylines(c.image, [_poly(np.stack([x, top + 3], 1))], False, (90, 90, 90), max(1, c.w // 640), cv2.LINE_AA)


def _scene_light(c: Canvas, s: Scene, dist: np.ndarray, lamps: list) -> np.ndarray:
    """Global light, night light pools, emitted light with glow -> float image (what reaches the lens)."""
    img = c.image.astype(np.float32)
    img *= s.gain * np.asarray(s.tint, np.float32)
    if s.timeofday == "night":
        qh, qw = c.glow.shape[:2]
        yy, xx = np.mgrid[0:qh, 0:qw].astype(np.float32)
        pool = 2.2 * np.exp(-(((xx - qw / 2) / (0.35 * qw)) ** 2 + ((yy - qh) / (0.3 * qh)) ** 2))
        for u, v, r in lamps:
            pool += 1.6 * np.exp(-(((xx - u / 4) / (r / 4 + 1)) ** 2 + ((yy - v / 4) / (0.5 * r / 4 + 1)) ** 2))
        pool = cv2.resize(pool, (c.w, c.h)) * (dist > 0)
        img *= (1.0 + pool)[..., None]
    if c.lights and s.timeofday != "daytime":
        for pts, colour in c.lights:
            cv2.fillPoly(img, [pts], colour)
        glow = cv2.GaussianBlur(c.glow, (0, 0), max(1.0, c.w / 400))
        img += cv2.resize(glow, (c.w, c.h)) * 0.9
    return img


def _sensor(img: np.ndarray, s: Scene, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """Glare, rain streaks, sensor noise, blur, motion blur and vignetting on the float image -> uint8."""
    h, w = img.shape[:2]
    if s.glare:
        _glare(img, s, cam)
    if s.rain:
        _rain(img, s, rng)
    if s.noise > 0:
        noise = np.empty((h, w), np.float32)
        cv2.setRNGSeed(int(rng.integers(0, 2**31)))
        cv2.randn(noise, 0.0, float(s.noise))
        img += noise[..., None]
    if s.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), s.blur * w / 1280)
    if s.motion[0]:
        n = max(3, int(s.motion[0] * w / 1280) | 1)
        kernel = np.zeros((n, n), np.float32)
        r = (n - 1) / 2
        cv2.line(kernel, (round(r - r * np.cos(s.motion[1])), round(r - r * np.sin(s.motion[1]))),
                 (round(r + r * np.cos(s.motion[1])), round(r + r * np.sin(s.motion[1]))), 1.0, 1)
        img = cv2.filter2D(img, -1, kernel / kernel.sum())
    if s.vignette:
        yy, xx = _grid(h, w)
        img *= (1.0 - s.vignette * (((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2) / 2)[..., None]
    return cv2.convertScaleAbs(img)


def render(s: Scene, path: RoadPath | None = None, dash_phase: float | None = None, frame_seed: int = 0) -> Frame:
    """Render a scene (optionally along a given road path, for drive clips) to pixels and exact labels."""
    hill = Hill(*s.hill) if s.hill[1] else None
    cam = Camera(s.width, s.height, s.f, s.width / 2 + s.principal[0], s.height / 2 + s.principal[1], s.cam_h, s.pitch, s.roll, hill)
    path = path or RoadPath.clothoid(s.k0, s.k1, s.yaw, -s.camera_o)
    rng = np.random.default_rng([s.texture_seed, frame_seed])
    c = Canvas(s.height, s.width)
    dist = _background(c, s, cam, np.random.default_rng(s.texture_seed))
    crest = cam.crest()
    far = ROAD_MAX if crest is None else _arc_at(path, crest[0])
    _road(c, s, cam, path, s.dash[2] if dash_phase is None else dash_phase, far)

    lit = s.timeofday != "daytime"
    things: list[Thing] = []
    for key, v in enumerate(s.vehicles):
        if 3.0 <= v.d <= 200:
            drawn = two_wheeler_things(v, path, cam, lit) if v.kind in ("motor", "bike") else [vehicle_thing(v, path, cam, lit)]
            for th in drawn:
                th.key = key
            things += drawn
    lamps = []
    for pr in s.props:
        if 2.5 <= pr.d <= 230:
            things.append(prop_thing(pr, path, cam, lit))
            if pr.kind == "lamp" and lit:
                uv, z = cam.project(path.points(np.array([pr.d]), pr.o + (-1.8 if pr.o > 0 else 1.8)))
                lamps.append((float(uv[0, 0]), float(uv[0, 1]), s.f * 5 / max(float(z[0]), 1.0)))
    _ground_shading(c, s, cam, path, [th for th in things if not _beyond(th, crest)], dist, far)
    _haze(c, s, cam, dist)
    if s.fog:
        _fog_ground(c, s, dist)
    # painter's order, far to near; buildings (behind the kerb, large footprints) go first so that people, lamps
    # and signs on the pavement in front of them are never painted over by a facade that starts nearer
    things.sort(key=lambda th: (th.layer, -th.depth))

    labels, boxes = [], {}
    for th in things:
        obj_id = CLUTTER
        if th.category is not None:
            obj_id = len(boxes) + 1
            boxes[obj_id] = th
        hidden_below = crest[1] if _beyond(th, crest) else None
        for part in th.parts:
            colour = _fogged(part.colour, th.depth, s) if s.fog else part.colour
            pts = part.pts if hidden_below is None else _above(part.pts, *hidden_below)
            if len(pts) >= 3:
                c.occlude(pts, colour, obj_id if part.in_box else CLUTTER, part.glow)
    _hood(c, s)
    c.finish_masks()
    counts = np.bincount(np.maximum(c.ids.ravel(), 0), minlength=len(boxes) + 1)
    for obj_id, th in boxes.items():
        label = _label(th, obj_id, int(counts[obj_id]), c.w, c.h)
        if label is not None:
            labels.append(label)
    img = _scene_light(c, s, dist, lamps)
    if s.lens != (0.0, 0.0):
        lens = Lens(*s.lens, cam.f, cam.cx, cam.cy, c.w, c.h)
        img, labels = lens.warp(img), _distort(c, lens, labels, boxes)
    image = _sensor(img, s, cam, rng)
    return Frame(image, c.drivable, c.lane, labels, c.ids)


def _arc_at(path: RoadPath, z: float) -> float:
    """Arc length where the road first reaches forward distance z (its end if never)."""
    i = int(np.argmax(path.z >= z))
    if path.z[i] < z:
        return float(path.d[-1])
    if i == 0:
        return float(path.d[0])
    share = (z - path.z[i - 1]) / (path.z[i] - path.z[i - 1])
    return float(path.d[i - 1] + share * (path.d[i] - path.d[i - 1]))


def _beyond(th: Thing, crest: tuple | None) -> bool:
    """Whether a thing stands beyond the crest (its nearest ground point farther than the crest)."""
    return crest is not None and th.depth > crest[0]


def _above(pts: np.ndarray, a: float, b: float) -> np.ndarray:
    """The part of a polygon (N, 2) above the image line v = a * u + b (Sutherland-Hodgman, one edge)."""
    side = pts[:, 1] - (a * pts[:, 0] + b)  # < 0 above
    out = []
    for i in range(len(pts)):
        j = (i + 1) % len(pts)
        if side[i] <= 0:
            out.append(pts[i])
        if (side[i] <= 0) != (side[j] <= 0):
            t = side[i] / (side[i] - side[j])
            out.append(pts[i] + t * (pts[j] - pts[i]))
    return np.array(out).reshape(-1, 2)


def _distort(c: Canvas, lens: Lens, labels: list[Label], things: dict[int, Thing]) -> list[Label]:
    """Warp the masks and ids with the lens (nearest) and re-measure each box from its warped outline; a label
    whose object has no pixel left in the distorted frame is dropped."""
    c.drivable, c.lane, c.ids = (lens.warp(m, nearest=True) for m in (c.drivable, c.lane, c.ids))
    seen = np.bincount(np.maximum(c.ids.ravel(), 0), minlength=len(things) + 1)
    out = []
    for lab in labels:
        warped = lens.box(np.concatenate([p.pts for p in things[lab.id].parts if p.in_box]))
        if warped is not None and seen[lab.id] > 0:
            out.append(dataclasses.replace(lab, box=warped[0], truncated=warped[1]))
    return out


def _label(th: Thing, obj_id: int, visible_px: int, w: int, h: int) -> Label | None:
    """Full box of a labelled thing clipped to the frame, or None when (nearly) hidden or out of the frame."""
    polys = [p.pts for p in th.parts if p.in_box]
    pts = np.concatenate(polys)
    x1, y1 = pts.min(0)
    x2, y2 = pts.max(0)
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
    if cx2 - cx1 < 1 or cy2 - cy1 < 1:
        return None
    ox, oy = int(np.floor(cx1)), int(np.floor(cy1))
    crop = np.zeros((int(np.ceil(cy2)) - oy + 1, int(np.ceil(cx2)) - ox + 1), np.uint8)
    for p in polys:  # one call per polygon: a multi-contour fillPoly uses the even-odd rule
        cv2.fillPoly(crop, [_poly(p)], 1, offset=(-ox, -oy))
    inside = int(crop.sum())
    if inside == 0 or visible_px < max(1, MIN_VISIBLE * inside):
        return None
    box = tuple(round(float(v), 2) for v in (cx1, cy1, cx2, cy2))
    truncated = bool(x1 < 0 or y1 < 0 or x2 > w or y2 > h)
    return Label(th.category, box, obj_id, min(1.0, visible_px / inside), truncated, th.key)
