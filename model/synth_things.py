"""Polygons of the objects in a synthetic scene: vehicles as shaded boxes with windows and lights, people,
traffic signs and lights as camera-facing shapes, and clutter (buildings, trees, lamps).

A `Thing` is a list of `Part`s in drawing order; parts with `in_box` make up the labelled extent (a traffic
sign's box is its plate, not its pole). Polygons stay float until drawn, so boxes come from exact geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.synth_geometry import Box3D, Camera, RoadPath, face_rects
from model.synth_scene import Prop, Vehicle

GLASS = (62, 52, 46)
DARK = (24, 24, 26)
TAIL, TAIL_GLOW = (34, 30, 170), (70, 70, 255)
HEAD, HEAD_GLOW = (205, 212, 218), (255, 255, 255)
LAMP_GLOW = (170, 225, 255)
SHADE = (1.0, 1.0, 0.8, 0.7, 1.12)  # back, front, left, right, top


@dataclass
class Part:
    """One filled polygon (float pixels), its colour, an optional emitted colour (lights) and box membership."""

    pts: np.ndarray
    colour: tuple
    glow: tuple | None = None
    in_box: bool = True


@dataclass
class Thing:
    """An object to draw: `category` is a BDD100K category for labelled objects, None for clutter."""

    category: str | None
    depth: float
    parts: list[Part] = field(default_factory=list)
    ground: list[np.ndarray] = field(default_factory=list)  # ground-frame footprint polygons (for shadows)
    height: float = 0.0
    layer: int = 1  # drawing layer: 0 = buildings (drawn first), 1 = everything else
    key: int | None = None  # index of the scene object it draws (drive clips keep identities with it)


def _shade(colour: tuple, k: float) -> tuple:
    return tuple(float(min(255.0, c * k)) for c in colour)


def _local(box: Box3D, cl: float, cw: float, length: float, width: float, y0: float, y1: float) -> Box3D:
    """Sub-box of a vehicle frame: centre offset cl along, cw across."""
    return Box3D(box.centre + cl * box.tangent + cw * box.normal, box.tangent, box.normal, length, width, y0, y1)


def _add_box(thing: Thing, cam: Camera, box: Box3D, colour: tuple, details=None, lit: bool = False) -> None:
    """Visible faces of a box, then details (face index -> [(u0, u1, v0, v1, colour, glow)]) on them."""
    details = details or {}
    for idx, quad in box.visible_faces(cam.eye_height(box.centre[2])):
        thing.parts.append(Part(cam.project(quad)[0], _shade(colour, SHADE[idx])))
        rects = details.get(idx, ())
        if rects:
            polys = cam.project(face_rects(quad, np.array([r[:4] for r in rects], np.float64)))[0]
            for pts, (_, _, _, _, c, glow) in zip(polys, rects):
                thing.parts.append(Part(pts, _shade(c, SHADE[idx]), glow if lit else None))


def _windows(n: int, v0: float, v1: float, colour: tuple = GLASS) -> list:
    step = 0.9 / n
    return [(0.05 + i * step + 0.02, 0.05 + (i + 1) * step - 0.02, v0, v1, colour, None) for i in range(n)]


def vehicle_thing(v: Vehicle, path: RoadPath, cam: Camera, lit: bool) -> Thing:
    """Box model of a vehicle seen from the camera; `lit` switches its lights on (dusk, night)."""
    p, t, n = path.frame(v.d + v.length / 2)
    L, W, H = v.length, v.width, v.height
    body = Box3D(p + v.o * n, t * v.facing, n * v.facing, L, W, 0.3, H)
    thing = Thing(v.category, 0.0, height=H)
    thing.ground.append(np.array([body.corners()[i] for i in (0, 1, 3, 2)]))
    thing.depth = float(np.hypot(thing.ground[0][:, 0], thing.ground[0][:, 2]).min())
    tail = [(0.03, 0.2, 0.55, 0.82, TAIL, TAIL_GLOW), (0.8, 0.97, 0.55, 0.82, TAIL, TAIL_GLOW), (0.38, 0.62, 0.25, 0.45, (215, 215, 215), None),
            (0.0, 1.0, 0.0, 0.2, DARK, None)]
    head = [(0.04, 0.22, 0.5, 0.78, HEAD, HEAD_GLOW), (0.78, 0.96, 0.5, 0.78, HEAD, HEAD_GLOW), (0.32, 0.68, 0.45, 0.75, DARK, None),
            (0.38, 0.62, 0.12, 0.3, (215, 215, 215), None)]
    axle = L / 2 - (0.85 if L < 6 else 1.4)
    for sl in (1, -1):
        for sw in (1, -1):
            _add_box(thing, cam, _local(body, sl * axle, sw * (W / 2 - 0.17), 0.66, 0.3, 0.0, 0.66), DARK)
    _add_box(thing, cam, _local(body, 0, 0, L * 0.94, W * 0.92, 0.12, 0.4), DARK)
    if v.kind in ("sedan", "hatch", "suv", "van", "pickup"):
        cab_len, cab_off, bh = {"sedan": (0.5, -0.04, 0.58), "hatch": (0.6, -0.12, 0.6), "suv": (0.66, -0.1, 0.6),
                                "van": (0.93, -0.02, 0.45), "pickup": (0.38, 0.14, 0.55)}[v.kind]
        _add_box(thing, cam, _local(body, 0, 0, L, W, 0.3, bh * H), v.colour, {0: tail, 1: head}, lit)
        side = _windows(2 if v.kind != "van" else 3, 0.18, 0.85)
        glass = {0: [(0.08, 0.92, 0.12, 0.88, GLASS, None)], 1: [(0.05, 0.95, 0.08, 0.9, GLASS, None)], 2: side, 3: side}
        _add_box(thing, cam, _local(body, cab_off * L, 0, cab_len * L, 0.88 * W, bh * H, H), v.colour, glass)
    elif v.kind == "bus":
        band = [(0.04, 0.96, 0.5, 0.88, GLASS, None)]
        rear = [(0.1, 0.9, 0.6, 0.9, GLASS, None), (0.04, 0.16, 0.12, 0.3, TAIL, TAIL_GLOW), (0.84, 0.96, 0.12, 0.3, TAIL, TAIL_GLOW)]
        front = [(0.04, 0.96, 0.42, 0.95, GLASS, None), (0.05, 0.2, 0.1, 0.2, HEAD, HEAD_GLOW), (0.8, 0.95, 0.1, 0.2, HEAD, HEAD_GLOW)]
        _add_box(thing, cam, _local(body, 0, 0, L, W, 0.3, H), v.colour, {0: rear, 1: front, 2: band, 3: band}, lit)
    elif v.kind == "truck":
        cargo = (236, 236, 236) if v.colour[0] > 100 and v.colour[1] > 100 else v.colour
        _add_box(thing, cam, _local(body, 0, 0, L * 0.95, W * 0.8, 0.4, 1.0), DARK, {0: tail, 1: head}, lit)
        doors = [(0.49, 0.51, 0.04, 0.97, DARK, None), (0.0, 1.0, 0.0, 0.05, (110, 110, 110), None)]
        cab = [(0.05, 0.95, 0.5, 0.92, GLASS, None), (0.05, 0.22, 0.1, 0.25, HEAD, HEAD_GLOW), (0.78, 0.95, 0.1, 0.25, HEAD, HEAD_GLOW)]
        parts = [(_local(body, -0.12 * L, 0, 0.76 * L, W, 1.0, H), cargo, {0: doors, 1: doors}),
                 (_local(body, 0.38 * L, 0, 0.22 * L, 0.96 * W, 0.5, 0.8 * H), v.colour, {1: cab, 2: [(0.5, 0.9, 0.5, 0.9, GLASS, None)], 3: [(0.5, 0.9, 0.5, 0.9, GLASS, None)]})]
        if v.facing < 0:
            parts.reverse()
        for box, colour, det in parts:
            _add_box(thing, cam, box, colour, det, lit)
    else:  # train car
        band = [(0.03, 0.97, 0.5, 0.8, GLASS, None)]
        end = [(0.15, 0.85, 0.5, 0.8, GLASS, None)]
        _add_box(thing, cam, _local(body, 0, 0, L, W, 0.7, H), v.colour, {0: end, 1: end, 2: band, 3: band})
    return thing


def two_wheeler_things(v: Vehicle, path: RoadPath, cam: Camera, lit: bool) -> list[Thing]:
    """A motorcycle or bicycle (box model) and its rider (camera-facing shape): two labelled objects."""
    p, t, n = path.frame(v.d + v.length / 2)
    L, W, H = v.length, v.width, v.height
    frame = Box3D(p + v.o * n, t * v.facing, n * v.facing, L, W, 0.0, H)
    bike = Thing(v.category, float(np.hypot(*frame.centre[[0, 2]])) + 0.01, height=H)
    bike.ground.append(np.array([frame.corners()[i] for i in (0, 1, 3, 2)]))
    wheel = 0.32 if v.kind == "bike" else 0.3
    for sl in (1, -1):
        _add_box(bike, cam, _local(frame, sl * (L / 2 - wheel), 0, 2 * wheel, 0.12, 0.0, 2 * wheel), DARK)
    lamp = [(0.3, 0.7, 0.55, 0.85, TAIL if v.facing > 0 else HEAD, TAIL_GLOW if v.facing > 0 else HEAD_GLOW)]
    body_w = 0.12 if v.kind == "bike" else 0.4
    _add_box(bike, cam, _local(frame, 0, 0, L * 0.7, body_w, 0.35, 0.75 * H), v.colour, {0: lamp, 1: lamp}, lit and v.kind == "motor")
    _add_box(bike, cam, _local(frame, 0.4 * L, 0, 0.08, W, 0.9 * H, H), DARK)  # handlebar (front)
    rider = Thing("rider", bike.depth - 0.01, height=1.7)
    seat = frame.centre.copy()
    clothes = VEHICLE_COLOURS_RIDER[int(abs(v.o * 1000 + v.length * 100)) % len(VEHICLE_COLOURS_RIDER)]
    parts = ((_rect(-0.24, -0.12, 0.35, 0.95), (40, 40, 45)), (_rect(0.12, 0.24, 0.35, 0.95), (40, 40, 45)),
             (np.array([[-0.22, 0.9], [0.22, 0.9], [0.2, 1.45], [-0.2, 1.45]]), clothes), (_ngon(0, 1.58, 0.14, 12, squash=1.1), (30, 30, 30) if v.kind == "motor" else (150, 120, 100)))
    for pts2d, colour in parts:
        rider.parts.append(Part(_billboard(cam, seat, pts2d), colour))
    return [bike, rider]


VEHICLE_COLOURS_RIDER = ((40, 40, 150), (150, 80, 30), (30, 30, 30), (200, 200, 200), (40, 120, 40))


def _billboard(cam: Camera, base: np.ndarray, pts2d: np.ndarray) -> np.ndarray:
    """Screen-facing shape: 2D points (x across, y up, metres) around a ground point -> float pixels."""
    p = np.repeat(base[None], len(pts2d), axis=0)
    p[:, 0] += pts2d[:, 0]
    p[:, 1] += pts2d[:, 1]
    return cam.project(p)[0]


def _rect(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _ngon(cx: float, cy: float, r: float, n: int, rot: float = 0.0, squash: float = 1.0) -> np.ndarray:
    a = rot + np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(a), cy + squash * r * np.sin(a)], axis=-1)


SIGNS = {  # style: (outer shape, outer colour, inner colour)
    0: ("circle", (40, 40, 200), (235, 235, 235)),
    1: ("rect", (150, 80, 20), (235, 235, 235)),
    2: ("triangle", (40, 40, 200), (235, 235, 235)),
    3: ("diamond", (30, 190, 235), (30, 30, 30)),
    4: ("octagon", (40, 40, 190), (235, 235, 235)),
    5: ("gantry", (40, 110, 20), (235, 235, 235)),
}


def _sign_shape(kind: str, cy: float, s: float) -> np.ndarray:
    r = s / 2
    return {
        "circle": _ngon(0, cy, r, 20), "octagon": _ngon(0, cy, r, 8, np.pi / 8), "diamond": _ngon(0, cy, r, 4, np.pi / 2),
        "triangle": _ngon(0, cy, r, 3, np.pi / 2), "rect": _rect(-r, r, cy - 0.7 * r, cy + 0.7 * r), "gantry": _rect(-r, r, cy - 0.45 * r, cy + 0.45 * r),
    }[kind]


def prop_thing(pr: Prop, path: RoadPath, cam: Camera, lit: bool) -> Thing:
    """People, signs, traffic lights (labelled) and trees, buildings, lamps (clutter)."""
    base = path.points(np.array([pr.d]), pr.o)[0]
    labelled = pr.kind in ("person", "traffic sign", "traffic light")
    category = "pedestrian" if pr.kind == "person" else pr.kind  # BDD100K det_20 spelling
    thing = Thing(category if labelled else None, float(np.hypot(base[0], base[2])))

    def add(pts2d: np.ndarray, colour: tuple, glow: tuple | None = None, in_box: bool = True) -> None:
        thing.parts.append(Part(_billboard(cam, base, pts2d), colour, glow, in_box))

    if pr.kind == "person":
        h, (top, legs, skin) = pr.size[0], pr.colour
        stride = 0.08 * np.sin(pr.d * 3.0)
        add(_rect(-0.16 + stride, -0.02 + stride, 0.0, 0.48 * h), legs)
        add(_rect(0.02 - stride, 0.16 - stride, 0.0, 0.48 * h), legs)
        add(np.array([[-0.2, 0.46 * h], [0.2, 0.46 * h], [0.22, 0.81 * h], [-0.22, 0.81 * h]]), top)
        add(_rect(-0.28, -0.2, 0.48 * h, 0.8 * h), top)
        add(_rect(0.2, 0.28, 0.48 * h, 0.8 * h), top)
        add(_ngon(0, 0.9 * h, 0.1 * h / 1.75, 12, squash=1.2), skin)
        thing.height = h
    elif pr.kind == "traffic sign":
        size, height = pr.size
        shape, outer, inner = SIGNS[pr.style]
        if shape == "gantry":
            half = abs(pr.o) + 1.0
            for x in (-half, half):
                add(_rect(x - 0.15, x + 0.15, 0.0, height), (150, 150, 150), in_box=False)
            add(_rect(-half, half, height - 0.1, height + 0.1), (150, 150, 150), in_box=False)
            add(_sign_shape(shape, height + 0.1, size), outer)
            add(_sign_shape(shape, height + 0.1, size * 0.9), outer)
        else:
            cy = height + size / 2
            add(_rect(-0.04, 0.04, 0.0, cy), (130, 130, 130), in_box=False)
            add(_sign_shape(shape, cy, size), outer)
            add(_sign_shape(shape, cy, size * (0.7 if shape != "rect" else 0.85)), inner)
    elif pr.kind == "traffic light":
        y0 = pr.size[0]
        if y0 < 4:
            add(_rect(-0.07, 0.07, 0.0, y0), (60, 60, 60), in_box=False)
        else:
            add(_rect(-0.03, 0.03, y0 + 0.9, y0 + 1.2), (60, 60, 60), in_box=False)
        add(_rect(-0.18, 0.18, y0, y0 + 0.95), pr.colour)
        lamps = ((40, 40, 230), (40, 200, 240), (90, 220, 60))
        for k, colour in enumerate(lamps):
            on = k == pr.style
            add(_ngon(0, y0 + 0.8 - 0.32 * k, 0.11, 10), colour if on else (45, 45, 45), tuple(c * 1.5 for c in colour) if on else None)
    elif pr.kind == "tree":
        h, r = pr.size
        add(_rect(-0.15, 0.15, 0.0, 0.55 * h), (40, 55, 70))
        for dx, dy, k in ((-0.35 * r, 0.6 * h, 0.85), (0.35 * r, 0.65 * h, 1.0), (0.0, 0.78 * h, 1.15)):
            add(_ngon(dx, dy, r * 0.8, 14, squash=1.1), _shade(pr.colour, k))
        thing.height = h
        thing.ground.append(path.points(np.full(12, pr.d), pr.o) + np.concatenate([_ngon(0, 0, r, 12), np.zeros((12, 1))], 1)[:, [0, 2, 1]])
    elif pr.kind == "rail":  # a beam along the road on posts
        ds = np.linspace(pr.d, pr.d + pr.size[0], 5)
        beam = np.concatenate([path.points(ds, pr.o, 0.8), path.points(ds[::-1], pr.o, 0.5)])
        thing.parts.append(Part(cam.project(path.points(np.array([pr.d, pr.d]), pr.o, np.array([0.0, 0.6])))[0][[0, 1, 1, 0]]
                                + np.array([[-1, 0], [-1, 0], [1, 0], [1, 0]]) * max(1.0, cam.f * 0.08 / max(thing.depth, 1)), (70, 70, 70)))
        thing.parts.append(Part(cam.project(beam)[0], pr.colour))
    elif pr.kind in ("barrier", "wall"):  # a concrete barrier or wall along the road (clutter the size of vehicles)
        ds = np.linspace(pr.d, pr.d + pr.size[0], 5)
        top, face = path.points(ds, pr.o, pr.size[1]), path.points(ds[::-1], pr.o, 0.0)
        thing.parts.append(Part(cam.project(np.concatenate([top, face]))[0], pr.colour))
        thing.parts.append(Part(cam.project(np.concatenate([top, path.points(ds[::-1], pr.o, pr.size[1] * 0.85)]))[0], _shade(pr.colour, 1.12)))
    elif pr.kind == "lamp":
        h = pr.size[0]
        toward = -1.5 if pr.o > 0 else 1.5
        add(_rect(-0.07, 0.07, 0.0, h), pr.colour)
        add(np.array([[0, h - 0.1], [toward, h + 0.1], [toward, h + 0.2], [0, h]]), pr.colour)
        add(_rect(toward - 0.3, toward + 0.3, h - 0.02, h + 0.12), (200, 220, 230), LAMP_GLOW)
    else:  # building
        w, depth, h = pr.size
        p, t, n = path.frame(pr.d)
        box = Box3D(p + pr.o * n, t, n, w, depth, 0.0, h)
        rows, cols = max(1, min(8, int(h / 3.2))), max(1, min(8, int(w / 3.5)))
        rng = np.random.default_rng(int(abs(pr.o) * 1000 + w * 10) % 2**31)
        win = []
        for i in range(rows):
            for j in range(cols):
                on = lit and rng.random() < 0.2
                win.append(((j + 0.25) / cols, (j + 0.75) / cols, (i + 0.3) / rows, (i + 0.75) / rows, (60, 50, 40), (50, 120, 160) if on else None))
        _add_box(thing, cam, box, pr.colour, {0: win, 2: win, 3: win}, lit)
        thing.ground.append(np.array([box.corners()[i] for i in (0, 1, 3, 2)]))
        thing.depth = float(np.hypot(thing.ground[0][:, 0], thing.ground[0][:, 2]).min())
        thing.height, thing.layer = h, 0
    return thing
