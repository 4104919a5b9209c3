"""Random description of one synthetic driving scene: road layout, markings, vehicles, roadside objects,
light and camera effects. Everything random is drawn here from one numpy Generator, so a seed fixes a scene;
`model.synth_render` turns a description into pixels and labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.domain import TIMES, WEATHERS, Domain

VEHICLE_COLOURS = (  # BGR, roughly the frequency of real car colours
    (232, 232, 230), (236, 236, 236), (28, 28, 30), (30, 30, 34), (178, 180, 176), (120, 120, 118),
    (34, 34, 165), (130, 68, 28), (80, 42, 20), (52, 88, 44), (150, 178, 196), (40, 60, 92), (30, 190, 225),
)
BUS_COLOURS = ((30, 190, 235), (220, 220, 220), (150, 90, 30), (40, 40, 170), (60, 140, 60))
CLOTHES = ((30, 30, 30), (120, 60, 30), (40, 40, 160), (200, 200, 200), (60, 110, 60), (90, 90, 90), (40, 150, 200))

# kind: (BDD100K det_20 category, length range, width range, height range, relative frequency)
VEHICLE_KINDS = {
    "sedan": ("car", (4.3, 4.9), (1.72, 1.86), (1.38, 1.5), 0.34),
    "hatch": ("car", (3.7, 4.2), (1.66, 1.78), (1.42, 1.55), 0.14),
    "suv": ("car", (4.4, 5.0), (1.82, 1.98), (1.62, 1.86), 0.24),
    "van": ("car", (4.8, 5.6), (1.9, 2.05), (1.9, 2.4), 0.07),
    "bus": ("bus", (10.0, 12.5), (2.45, 2.55), (2.9, 3.4), 0.07),
    "truck": ("truck", (7.0, 10.0), (2.4, 2.55), (3.2, 4.0), 0.11),
    "pickup": ("truck", (5.0, 5.6), (1.9, 2.0), (1.75, 1.95), 0.03),
    "motor": ("motorcycle", (1.9, 2.2), (0.7, 0.85), (1.1, 1.3), 0.03),  # with a rider (BDD100K: motorcycle + rider)
    "bike": ("bicycle", (1.6, 1.8), (0.45, 0.6), (0.95, 1.05), 0.015),  # with a rider
}
SCENE_TYPES = ("city street", "highway", "residential")


@dataclass
class Vehicle:
    """A vehicle on the road: `d` = arc length of its end nearest the camera, `o` = lateral centre offset."""

    kind: str
    category: str
    d: float
    o: float
    facing: int  # +1 drives away from the camera (rear visible), -1 oncoming (front visible)
    length: float
    width: float
    height: float
    colour: tuple
    speed: float  # m/s along its facing direction (drive clips)


@dataclass
class Prop:
    """A roadside object: labelled (person, traffic sign, traffic light) or clutter (tree, building, lamp, pole)."""

    kind: str
    d: float
    o: float
    size: tuple  # kind-specific metres (e.g. building width/depth/height)
    colour: tuple
    style: int = 0  # kind-specific variant (sign shape, lit lamp of a traffic light, ...)


@dataclass
class Line:
    """A painted marking line at lateral offset `o`: stripes as (offset from o, dashed).

    Worn paint: `gaps` are (d0, d1) stretches where the paint is gone (and `alpha` is lower). The lane label
    keeps the intended line through them: BDD100K annotators draw a line along its whole length, not around
    each worn patch, and the model should find the line that is meant. `markers` = (spacing, phase) metres of
    raised pavement markers on the line (not labelled themselves; they sit on the labelled line).
    A lane that ends or starts ahead (`Scene.taper`): the right edge line `follows_edge`, and the divider of
    that lane is painted (and labelled) only over `span` = (d0, d1).
    """

    o: float
    stripes: tuple
    colour: tuple
    alpha: float
    gaps: tuple = ()
    markers: tuple = ()
    follows_edge: bool = False
    span: tuple = ()


@dataclass
class Scene:
    """Everything needed to render one frame (plus the motion of a drive clip)."""

    width: int
    height: int
    scene_type: str
    timeofday: str  # daytime | dawn/dusk | night
    weather: str  # clear | overcast | rainy | foggy (BDD100K attribute values)
    f: float
    cam_h: float
    pitch: float
    roll: float
    k0: float
    k1: float
    yaw: float
    lane_w: float
    n_ego: int
    n_opp: int
    ego_lane: int
    ego_offset: float  # lateral offset of the camera from its lane centre
    shoulder: float
    sidewalk: float
    asphalt: tuple
    terrain: tuple
    lines: list[Line]
    dash: tuple  # (dash length, period, phase) metres
    vehicles: list[Vehicle]
    props: list[Prop]
    sky: tuple  # (top colour, horizon colour)
    gain: float
    tint: tuple
    haze: float
    shadow_dir: float  # lateral shear of cast shadows (sun side)
    noise: float
    blur: float
    jpeg: int
    hood: float  # hood height as a share of the image (0 = no hood)
    texture_seed: int
    patches: list = field(default_factory=list)  # (d, o, length, width, darkness) asphalt repairs
    fog: float = 0.0  # fog visibility scale in metres (0 = no fog)
    rain: float = 0.0  # rain streak density (0 = dry)
    principal: tuple = (0.0, 0.0)  # principal point offset from the image centre, pixels
    shadows: list = field(default_factory=list)  # (d, length, o0, o1, darkness) cast shadows across the road
    glare: float = 0.0  # low-sun flare strength (0 = none)
    glare_x: float = 0.5  # flare position, share of the width
    vignette: float = 0.0  # corner darkening share
    concrete: bool = False  # light concrete pavement with tar seams
    motion: tuple = (0.0, 0.0)  # directional blur (length in px at 1280 wide, angle in radians)
    lens: tuple = (0.0, 0.0)  # radial distortion (k1, k2), OpenCV's sign (0, 0 = pinhole)
    hill: tuple = (0.0, 0.0)  # (start metres, vertical curvature 1/m: > 0 sag, < 0 crest; 0 = flat), `Hill`
    crossing: tuple = ()  # (arc length of its near edge, width) metres of a road crossing ahead (() = none)
    taper: tuple = ()  # (d0, d1, ends): the rightmost ego lane ends (merge) or starts (split) between d0 and d1

    def right_shift(self, d: np.ndarray) -> np.ndarray:
        """Lateral shift (metres, <= 0) of the right road edge at arc lengths d: -lane_w where the tapered lane
        is absent, 0 where it exists, a smooth step in between."""
        d0, d1, ends = self.taper
        t = np.clip((np.asarray(d, dtype=np.float64) - d0) / (d1 - d0), 0.0, 1.0)
        t = t * t * (3 - 2 * t)
        return -self.lane_w * (t if ends else 1.0 - t)

    @property
    def camera_o(self) -> float:
        """Lateral offset of the camera from the road reference line."""
        return (self.ego_lane + 0.5) * self.lane_w + self.ego_offset


def _choice(rng: np.random.Generator, items, p=None):
    return items[int(rng.choice(len(items), p=p))]


def _lines(rng: np.random.Generator, n_ego: int, n_opp: int, lane_w: float, scene_type: str) -> list[Line]:
    """Markings: lane dividers, the divider to oncoming traffic (yellow), road edges (sometimes unmarked)."""
    white, yellow = (228, 232, 235), (40, 175, 225)
    lines = []

    def add(o, stripes, colour):
        lines.append(Line(o, stripes, colour, float(rng.uniform(0.55, 1.0))))

    solid_dividers = rng.random() < 0.15
    for i in range(1, n_ego):
        add(i * lane_w, ((0.0, not solid_dividers),), white)
    for i in range(1, n_opp):
        add(-i * lane_w, ((0.0, True),), white)
    if n_opp:
        style = _choice(rng, ("double", "solid_dashed", "single"), p=(0.6, 0.15, 0.25))
        stripes = {"double": ((-0.11, False), (0.11, False)), "solid_dashed": ((-0.11, True), (0.11, False)), "single": ((0.0, False),)}
        add(0.0, stripes[style], yellow)
    elif rng.random() < 0.85:
        add(0.25, ((0.0, False),), yellow if rng.random() < 0.6 else white)
    if rng.random() < (0.9 if scene_type == "highway" else 0.6):
        add(n_ego * lane_w - 0.25, ((0.0, False),), white)
    if n_opp and rng.random() < 0.5:
        add(-n_opp * lane_w + 0.25, ((0.0, False),), white)
    return lines


def _vehicles(rng: np.random.Generator, s: Scene, d_range: tuple[float, float], density_range: tuple[float, float]) -> list[Vehicle]:
    """Traffic in every lane (gaps drawn per lane), parked cars in cities, now and then a train beside the road."""
    kinds = list(VEHICLE_KINDS)
    freq = np.array([VEHICLE_KINDS[k][4] for k in kinds])
    if s.scene_type == "highway":
        freq[kinds.index("truck")] *= 2.5
    freq /= freq.sum()
    density = rng.uniform(*density_range)
    out = []
    lanes = [(i, 1) for i in range(s.n_ego)] + [(-i - 1, -1) for i in range(s.n_opp)]
    for lane, facing in lanes:
        d = d_range[0] + rng.exponential(25 / density)
        while d < d_range[1]:
            kind = kinds[int(rng.choice(len(kinds), p=freq))]
            cat, lr, wr, hr, _ = VEHICLE_KINDS[kind]
            length = rng.uniform(*lr)
            colour = _choice(rng, BUS_COLOURS) if kind == "bus" else _choice(rng, VEHICLE_COLOURS)
            centre = (lane + 0.5) * s.lane_w + rng.normal(0, 0.25)
            if not (lane == s.ego_lane and d < 6):
                speed = rng.uniform(8, 30) * (0.3 if s.scene_type == "city street" else 1.0)
                out.append(Vehicle(kind, cat, d, centre, facing, length, rng.uniform(*wr), rng.uniform(*hr), colour, speed))
            d += length + rng.uniform(3, 12) + rng.exponential(30 / density)
    if s.scene_type != "highway" and rng.random() < 0.5:  # parked cars on a parking strip on the right
        s.shoulder = max(s.shoulder, rng.uniform(2.3, 2.8))
        d = d_range[0] + rng.uniform(0, 20)
        while d < min(d_range[1], 90):
            kind = _choice(rng, ("sedan", "hatch", "suv", "van"))
            cat, lr, wr, hr, _ = VEHICLE_KINDS[kind]
            length = rng.uniform(*lr)
            o = s.n_ego * s.lane_w + s.shoulder * 0.5 + 0.1
            out.append(Vehicle(kind, cat, d, o, _choice(rng, (1, 1, -1)), length, rng.uniform(*wr), rng.uniform(*hr), _choice(rng, VEHICLE_COLOURS), 0.0))
            d += length + rng.uniform(1.0, 8.0) + rng.exponential(10)
    if rng.random() < 0.07:  # a train on a track beside the road
        side = _choice(rng, (-1, 1))
        edge = s.n_ego * s.lane_w if side > 0 else -s.n_opp * s.lane_w
        o = edge + side * rng.uniform(8, 18)
        d = rng.uniform(10, 50)
        colour = _choice(rng, ((200, 200, 200), (40, 40, 160), (120, 90, 40), (60, 120, 60)))
        for _ in range(int(rng.integers(2, 6))):
            out.append(Vehicle("train", "train", d, o, side, 20.0, 3.0, rng.uniform(3.6, 4.2), colour, 25.0))
            d += 21.0
    return out


def _props(rng: np.random.Generator, s: Scene, d_range: tuple[float, float]) -> list[Prop]:
    """Roadside objects along both sides: buildings/trees/lamps (clutter), people, signs, traffic lights."""
    right = s.n_ego * s.lane_w + s.shoulder
    left = -s.n_opp * s.lane_w - (s.shoulder if s.n_opp else 0.6)
    out = []
    city = s.scene_type == "city street"
    for side, edge in ((1, right), (-1, left)):
        d = d_range[0] + rng.uniform(0, 10)
        while d < d_range[1]:  # buildings (city) or trees
            if city or (s.scene_type == "residential" and rng.random() < 0.4):
                w, depth, h = rng.uniform(8, 30), rng.uniform(8, 20), rng.uniform(4, 9 if not city else 30)
                setback = s.sidewalk + rng.uniform(0.5, 3 if city else 12)
                grey = rng.integers(70, 200)
                colour = tuple(int(np.clip(grey + c, 0, 255)) for c in rng.integers(-28, 28, 3))
                out.append(Prop("building", d + w / 2, edge + side * (setback + depth / 2), (w, depth, h), colour, int(rng.integers(0, 3))))
                d += w + rng.uniform(0, 6 if city else 20)
            else:
                if rng.random() < 0.8:
                    h = rng.uniform(4, 12)
                    green = (int(rng.integers(20, 60)), int(rng.integers(60, 120)), int(rng.integers(30, 80)))
                    out.append(Prop("tree", d, edge + side * (s.sidewalk + rng.uniform(0.8, 8)), (h, rng.uniform(1.5, 3.5)), green))
                d += rng.uniform(4, 25 if s.scene_type == "highway" else 12)
        d = d_range[0] + rng.uniform(0, 25)
        while d < d_range[1] and (city or rng.random() < 0.6):  # street lamps
            out.append(Prop("lamp", d, edge + side * 0.4, (rng.uniform(6, 9),), (90, 90, 90)))
            d += rng.uniform(25, 40)
    if s.scene_type == "highway" and rng.random() < 0.7:  # guard rails (clutter), 8 m sections
        sides = [(right + 0.3, 1)] + ([(left - 0.3, -1)] if not s.n_opp or rng.random() < 0.5 else [])
        for o, _ in sides:
            out += [Prop("rail", d, o, (8.0,), (165, 168, 170)) for d in np.arange(d_range[0], d_range[1], 8.0)]
    n_people = int(rng.poisson(3.0 if city else 0.6 if s.scene_type == "residential" else 0.0))
    for _ in range(n_people):
        side = _choice(rng, (1, -1))
        o = (right if side > 0 else left) + side * rng.uniform(0.3, max(0.5, s.sidewalk))
        if rng.random() < 0.08:  # someone crossing
            o = rng.uniform(left, right)
        colours = (_choice(rng, CLOTHES), _choice(rng, CLOTHES), tuple(int(c) for c in rng.integers(40, 140, 3)))
        out.append(Prop("person", rng.uniform(5, 60), o, (rng.uniform(1.55, 1.9),), colours))
    for _ in range(int(rng.poisson(1.6))):
        side = _choice(rng, (1, 1, -1))
        o = (right if side > 0 else left) + side * rng.uniform(0.5, 2.5)
        out.append(Prop("traffic sign", rng.uniform(8, 90), o, (rng.uniform(0.6, 0.9), rng.uniform(1.9, 2.8)), (0, 0, 0), int(rng.integers(0, 5))))
    if s.scene_type == "highway" and rng.random() < 0.3:  # overhead sign gantry
        out.append(Prop("traffic sign", rng.uniform(40, 110), s.n_ego * s.lane_w / 2, (rng.uniform(3.0, 5.0), 5.6), (40, 110, 20), 5))
    if city and rng.random() < 0.5:
        d = rng.uniform(20, 70)
        for k in range(int(rng.integers(1, 3))):
            out.append(Prop("traffic light", d + k * 0.5, (k + 0.5) * s.lane_w, (5.4,), (30, 30, 30), int(rng.integers(0, 3))))
        out.append(Prop("traffic light", d, right + 0.5, (3.0,), (30, 30, 30), int(rng.integers(0, 3))))
    return out


def _light(rng: np.random.Generator, s: Scene, dom: Domain) -> None:
    s.timeofday = _choice(rng, TIMES, p=dom.probs("timeofday"))
    s.weather = _choice(rng, WEATHERS, p=dom.probs("weather"))
    if s.weather == "rainy":
        s.rain = rng.uniform(0.3, 1.0)
        s.asphalt = tuple(int(c * 0.75) for c in s.asphalt)  # wet road
    elif s.weather == "foggy":
        s.fog = rng.uniform(40.0, 160.0)
    if s.timeofday == "daytime":
        top = (int(rng.integers(190, 240)), int(rng.integers(140, 190)), int(rng.integers(80, 130)))
        if s.weather != "clear":
            g = int(rng.integers(175, 215))
            top = (g + 6, g, g - 6)
        s.sky, s.gain, s.tint = (top, (228, 222, 212)), rng.uniform(0.85, 1.12), (1.0, 1.0, 1.0)
        s.haze = rng.uniform(0.1, 0.5)
    elif s.timeofday == "dawn/dusk":
        s.sky = ((int(rng.integers(110, 150)), 80, 70), (80, int(rng.integers(130, 170)), int(rng.integers(200, 240))))
        s.gain, s.tint, s.haze = rng.uniform(0.45, 0.7), (0.85, 0.95, 1.12), rng.uniform(0.2, 0.6)
    else:
        s.sky = ((22, 12, 8), (46, 36, 34))
        s.gain, s.tint, s.haze = rng.uniform(0.14, 0.26), (1.05, 1.0, 0.95), 0.1
    if s.weather in ("rainy", "foggy"):
        s.gain *= 0.85
        if s.timeofday != "night":
            s.sky = (tuple(int(c * 0.5 + 90) for c in s.sky[0]), tuple(int(c * 0.6 + 70) for c in s.sky[1]))
    s.noise = rng.uniform(*dom.noise) * (2.0 if s.timeofday == "night" else 1.0)
    s.blur = rng.uniform(0.4, 1.6) if rng.random() < dom.blur_p else 0.0


def sample_scene(rng: np.random.Generator, width: int = 1280, height: int = 720, d_range: tuple[float, float] = (4.0, 120.0),
                 prop_range: tuple[float, float] = (2.0, 220.0), domain: Domain | None = None) -> Scene:
    """Draw a random scene at `width` x `height`: vehicles between d_range metres ahead, props over prop_range,
    every factor from `domain` (default: classic). Factors off in a domain draw nothing, so classic scenes
    are the same as before domains existed."""
    dom = domain or Domain()
    scene_type = _choice(rng, SCENE_TYPES, p=(0.45, 0.3, 0.25))
    n_ego = 1 + int(rng.choice(len(dom.lanes_highway if scene_type == "highway" else dom.lanes_other),
                               p=dom.lanes_highway if scene_type == "highway" else dom.lanes_other))
    n_opp = 0 if scene_type == "highway" and rng.random() < 0.8 else int(rng.choice([0, 1, 2], p=[0.25, 0.5, 0.25]))
    lane_w = rng.uniform(3.3, 3.8) if scene_type == "highway" else rng.uniform(2.9, 3.6)
    asphalt_g = int(rng.integers(*dom.asphalt))
    asphalt = (asphalt_g + int(rng.integers(-4, 8)), asphalt_g, asphalt_g - int(rng.integers(-4, 8)))
    terrain = _choice(rng, ((60, 110, 80), (70, 120, 110), (80, 110, 130), (150, 150, 150)) if scene_type != "city street" else ((150, 152, 155), (120, 125, 130)))
    s = Scene(
        width=width, height=height, scene_type=scene_type, timeofday="", weather="", f=width * rng.uniform(*dom.focal),
        cam_h=rng.uniform(*dom.cam_height), pitch=rng.normal(0.035, dom.pitch_sd), roll=rng.normal(0.0, dom.roll_sd),
        k0=rng.normal(0.0, dom.curvature_sd), k1=rng.normal(0.0, dom.curvature_rate_sd), yaw=rng.normal(0.0, 0.02), lane_w=lane_w,
        n_ego=n_ego, n_opp=n_opp, ego_lane=int(rng.integers(0, n_ego)), ego_offset=rng.normal(0.0, 0.3),
        shoulder=rng.uniform(0.3, 2.5) if scene_type == "highway" else rng.uniform(0.2, 1.2),
        sidewalk=rng.uniform(1.5, 4.0) if scene_type == "city street" else rng.uniform(0.0, 1.0),
        asphalt=asphalt, terrain=terrain, lines=[], dash=(rng.uniform(2.5, 4.0), rng.uniform(9.0, 13.0), rng.uniform(0, 12)),
        vehicles=[], props=[], sky=((0, 0, 0), (0, 0, 0)), gain=1.0, tint=(1.0, 1.0, 1.0), haze=0.0, shadow_dir=rng.uniform(-1.5, 1.5),
        noise=0.0, blur=0.0, jpeg=int(rng.integers(*dom.jpeg)), hood=rng.uniform(0.05, 0.12) if rng.random() < dom.hood_p else 0.0,
        texture_seed=int(rng.integers(0, 2**31)),
    )
    _light(rng, s, dom)
    s.lines = _lines(rng, n_ego, n_opp, lane_w, scene_type)
    s.vehicles = _vehicles(rng, s, d_range, dom.density)
    s.props = _props(rng, s, prop_range)
    for _ in range(int(rng.poisson(dom.patches))):
        dark = rng.uniform(0.75, 1.2)
        s.patches.append((rng.uniform(3, 80), rng.uniform(-n_opp * lane_w, n_ego * lane_w), rng.uniform(1, 12), rng.uniform(0.3, 3), dark))
    _wide(rng, s, dom, prop_range)
    return s


def _wide(rng: np.random.Generator, s: Scene, dom: Domain, prop_range: tuple[float, float]) -> None:
    """The factors the classic domain leaves off (each draws only when its domain turns it on)."""
    if dom.principal_sd:
        s.principal = tuple(float(v) for v in rng.normal(0.0, dom.principal_sd, 2) * (s.width, s.height))
    if dom.concrete_p and rng.random() < dom.concrete_p:
        g = int(rng.integers(150, 200))
        s.asphalt, s.concrete = (g - int(rng.integers(0, 10)), g, g + int(rng.integers(0, 8))), True
        if s.weather == "rainy":
            s.asphalt = tuple(int(c * 0.75) for c in s.asphalt)
        right, left = s.n_ego * s.lane_w, -s.n_opp * s.lane_w
        for d in np.arange(rng.uniform(2, 6), 90.0, rng.uniform(4.5, 6.0)):  # tar seams between slabs
            s.patches.append((float(d), (left + right) / 2, 0.06, right - left, 0.55))
    if dom.cast_shadows and s.timeofday == "daytime":
        right, left = s.n_ego * s.lane_w + s.shoulder, -s.n_opp * s.lane_w - s.shoulder
        for _ in range(int(rng.poisson(dom.cast_shadows))):
            kind = _choice(rng, ("tree", "pole", "bridge"), p=(0.55, 0.3, 0.15))
            d = rng.uniform(0.5, 30)
            if kind == "bridge":
                s.shadows.append((d, rng.uniform(6, 15), left - 5, right + 5, rng.uniform(0.35, 0.55)))
            elif kind == "pole":
                o = rng.uniform(left, right)
                s.shadows.append((d, rng.uniform(0.3, 0.7), o - rng.uniform(4, 12), o + rng.uniform(4, 12), rng.uniform(0.45, 0.65)))
            else:
                o = _choice(rng, (left, right)) + rng.normal(0, 1.5)
                s.shadows.append((d, rng.uniform(3, 12), o - rng.uniform(2, 7), o + rng.uniform(2, 7), rng.uniform(0.35, 0.6)))
    if dom.glare_p and s.timeofday != "night" and rng.random() < dom.glare_p:
        s.glare, s.glare_x = rng.uniform(0.5, 1.0), rng.uniform(0.1, 0.9)
    if dom.barrier_p:
        right, left = s.n_ego * s.lane_w + s.shoulder + 0.4, -s.n_opp * s.lane_w - (s.shoulder if s.n_opp else 0.6) - 0.4
        for o, side in ((right, 1), (left, -1)):
            if rng.random() < dom.barrier_p:
                kind = _choice(rng, ("barrier", "wall"), p=(0.7, 0.3))
                size = (8.0, rng.uniform(0.8, 1.1) if kind == "barrier" else rng.uniform(1.8, 4.0))
                g = int(rng.integers(140, 215))
                s.props += [Prop(kind, float(d), o + side * 0.3, size, (g, g, g + 3)) for d in np.arange(prop_range[0], min(prop_range[1], 160.0), 8.0)]
    if dom.vignette_p and rng.random() < dom.vignette_p:
        s.vignette = rng.uniform(0.2, 0.5)
    if dom.exposure != (1.0, 1.0):
        s.gain *= rng.uniform(*dom.exposure)
    if dom.white_balance_sd:
        s.tint = tuple(float(t * np.clip(rng.normal(1.0, dom.white_balance_sd), 0.7, 1.3)) for t in s.tint)
    if dom.motion_blur_p and rng.random() < dom.motion_blur_p:
        s.motion = (rng.uniform(4, 18), rng.normal(0.0, 0.4))
    _road_shape_and_paint(rng, s, dom)


def _road_shape_and_paint(rng: np.random.Generator, s: Scene, dom: Domain) -> None:
    """Lens distortion, hills, worn paint, raised markers, a crossing road and a lane that ends or starts ahead
    (drawn after the other factors, so that adding them left the draws of those unchanged)."""
    if dom.distortion_p and rng.random() < dom.distortion_p:
        s.lens = (rng.uniform(*dom.distortion_k1), rng.uniform(*dom.distortion_k2))
    if dom.hill_p and rng.random() < dom.hill_p:
        s.hill = (rng.uniform(5.0, 60.0), _choice(rng, (-1.0, 1.0)) / rng.uniform(*dom.hill_radius))
    if dom.worn_p and rng.random() < dom.worn_p:
        for line in s.lines:
            line.alpha *= rng.uniform(0.4, 0.85)
            line.gaps = _worn_gaps(rng)
    if dom.markers_p and rng.random() < dom.markers_p:
        spacing = rng.uniform(6.0, 12.0)
        for line in s.lines:
            if rng.random() < 0.8:
                line.markers = (spacing, rng.uniform(0.0, spacing))
    if dom.intersection_p and rng.random() < dom.intersection_p:
        _add_crossing(s, rng.uniform(15.0, 70.0), rng.uniform(6.0, 14.0))
    if dom.merge_p and rng.random() < dom.merge_p:
        d0, length, ends = rng.uniform(10.0, 50.0), rng.uniform(30.0, 70.0), bool(rng.random() < 0.5)
        if s.n_ego >= 2 and not s.concrete and not s.crossing:  # (seams span the full width; crossings stay simple)
            _add_taper(s, d0, d0 + length, ends or s.ego_lane == s.n_ego - 1)


def _add_taper(s: Scene, d0: float, d1: float, ends: bool) -> None:
    """The rightmost ego lane ends (`ends`) or starts between d0 and d1: the edge line follows the road edge, the
    lane's divider stops or begins, and traffic, parked cars and repairs where the lane is missing go."""
    s.taper = (float(d0), float(d1), ends)
    divider = (s.n_ego - 1) * s.lane_w
    for line in s.lines:
        if line.o > divider + 0.5 * s.lane_w:
            line.follows_edge = True
        elif abs(line.o - divider) < 1e-6:
            line.span = (0.0, d0) if ends else (d1, 1e9)

    def missing(start: float, end: float) -> bool:
        return end > d0 if ends else start < d1

    s.vehicles = [v for v in s.vehicles if not (v.o > divider and v.kind != "train" and missing(v.d, v.d + v.length))]
    s.patches = [p for p in s.patches if p[1] + p[3] / 2 <= divider]


def _add_crossing(s: Scene, d: float, width: float) -> None:
    """A road crossing at arc length d: roadside props and parked cars that would stand on it are removed."""
    s.crossing = (float(d), float(width))
    lo, hi = d - 1.0, d + width + 1.0

    def clear(start: float, end: float) -> bool:
        return end < lo or start > hi

    road_o = (-s.n_opp * s.lane_w, s.n_ego * s.lane_w)
    s.props = [p for p in s.props if road_o[0] <= p.o <= road_o[1] or clear(*_prop_span(p))]
    s.vehicles = [v for v in s.vehicles if v.speed > 0 or clear(v.d, v.d + v.length)]


def _prop_span(p: Prop) -> tuple[float, float]:
    """Arc-length extent of a roadside prop (buildings are centred on d, rails and barriers start at d)."""
    if p.kind == "building":
        return p.d - p.size[0] / 2, p.d + p.size[0] / 2
    if p.kind in ("rail", "barrier", "wall"):
        return p.d, p.d + p.size[0]
    return p.d - 0.5, p.d + 0.5


def _worn_gaps(rng: np.random.Generator) -> tuple:
    """(d0, d1) stretches of missing paint along the first 110 m: short scuffs to long worn-off runs."""
    gaps, d = [], rng.exponential(8.0)
    while d < 110.0:
        length = rng.uniform(0.3, 1.5) if rng.random() < 0.7 else rng.uniform(2.0, 8.0)
        gaps.append((float(d), float(d + length)))
        d += length + rng.exponential(10.0)
    return tuple(gaps)
