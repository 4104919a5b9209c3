"""The typed domain description of `roadsight data synth`: the ranges every scene factor is drawn from.

A domain is a YAML file of `Domain` fields (missing ones keep the `classic` value); `classic` (the look the
shipped model was trained on) and `wide` (camera, road, light, roadside and sensor randomization) are
built in (model/domains/*.yaml). A condition (`--condition NAME`) fixes one factor on top of a domain to
make a stress set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from engines.errors import RoadsightError

TIMES = ("daytime", "dawn/dusk", "night")
WEATHERS = ("clear", "overcast", "rainy", "foggy")


@dataclass(frozen=True)
class Domain:
    """Ranges (lo, hi), probabilities (_p) and means of the scene factors; defaults are the classic look."""

    name: str = "classic"
    # camera
    cam_height: tuple[float, float] = (1.2, 1.65)  # metres
    focal: tuple[float, float] = (0.72, 0.86)  # focal length / image width (1.07-0.36 = 50-110 deg HFOV)
    pitch_sd: float = 0.02  # radians, around 0.035 down
    roll_sd: float = 0.012
    principal_sd: float = 0.0  # principal point offset, share of the image size
    hood_p: float = 0.35  # ego hood visible at the bottom
    distortion_p: float = 0.0  # mild radial lens distortion (image and labels warped with one map)
    distortion_k1: tuple[float, float] = (-0.06, 0.04)  # OpenCV's sign: < 0 barrel, > 0 pincushion
    distortion_k2: tuple[float, float] = (-0.01, 0.01)
    # road
    lanes_highway: tuple[float, ...] = (0.2, 0.35, 0.3, 0.15)  # P(1, 2, ... ego lanes) on highways
    lanes_other: tuple[float, ...] = (0.45, 0.35, 0.15, 0.05)
    curvature_sd: float = 1 / 700  # 1/m at the camera
    curvature_rate_sd: float = 1 / 60000  # 1/m^2
    asphalt: tuple[int, int] = (58, 125)  # grey level of asphalt
    concrete_p: float = 0.0  # light concrete pavement (grey 150-200) with tar seams
    patches: float = 2.0  # mean asphalt repairs per scene
    hill_p: float = 0.0  # a vertical curve ahead: crest (road falls away, may hide what lies beyond) or sag (rises)
    hill_radius: tuple[float, float] = (800.0, 5000.0)  # metres, radius of the vertical curve
    worn_p: float = 0.0  # worn paint: faded lines with gaps (the lane label keeps the intended line)
    markers_p: float = 0.0  # raised pavement markers (small reflective dots) along the lines
    intersection_p: float = 0.0  # a road crossing ahead (its lanes drivable, the road's lines interrupted)
    merge_p: float = 0.0  # the rightmost ego lane ends (merge) or starts (split) ahead, where there are 2+ lanes
    # light and weather
    timeofday: dict[str, float] = field(default_factory=lambda: {"daytime": 0.58, "dawn/dusk": 0.14, "night": 0.28})
    weather: dict[str, float] = field(default_factory=lambda: {"clear": 0.5, "overcast": 0.25, "rainy": 0.15, "foggy": 0.1})
    cast_shadows: float = 0.0  # mean shadows of trees, poles and bridges across the road (daylight)
    glare_p: float = 0.0  # low sun in view: flare and veiling glare
    # roadside
    barrier_p: float = 0.0  # concrete barriers or walls along each road side
    # traffic
    density: tuple[float, float] = (0.2, 1.0)  # vehicles per lane, relative
    # sensor
    jpeg: tuple[int, int] = (55, 96)
    noise: tuple[float, float] = (1.0, 4.0)  # sd in grey levels (doubled at night)
    blur_p: float = 0.35
    vignette_p: float = 0.0
    exposure: tuple[float, float] = (1.0, 1.0)  # gain multiplier (auto-exposure error)
    white_balance_sd: float = 0.0  # per-channel gain sd
    motion_blur_p: float = 0.0  # directional blur (camera shake, ego motion)

    def probs(self, which: str) -> tuple[float, ...]:
        """timeofday or weather probabilities in the order of TIMES / WEATHERS."""
        names, table = (TIMES, self.timeofday) if which == "timeofday" else (WEATHERS, self.weather)
        return tuple(float(table.get(k, 0.0)) for k in names)


# condition -> the fields it fixes (on top of the chosen domain)
CONDITIONS: dict[str, dict] = {
    "night": {"timeofday": {"night": 1.0}},
    "rain": {"weather": {"rainy": 1.0}},
    "fog": {"weather": {"foggy": 1.0}},
    "shadows": {"timeofday": {"daytime": 1.0}, "weather": {"clear": 1.0}, "cast_shadows": 6.0},
    "concrete": {"concrete_p": 1.0},
    "curves": {"curvature_sd": 1 / 120, "curvature_rate_sd": 1 / 8000},
    "dense": {"density": (2.5, 4.0)},
    "glare": {"timeofday": {"daytime": 0.6, "dawn/dusk": 0.4}, "weather": {"clear": 1.0}, "glare_p": 1.0},
    "hills": {"hill_p": 1.0},
    "worn": {"worn_p": 1.0, "markers_p": 0.5},
    "lens": {"distortion_p": 1.0},
    "intersection": {"intersection_p": 1.0},
    "merges": {"merge_p": 1.0, "lanes_highway": (0.0, 0.5, 0.3, 0.2), "lanes_other": (0.0, 0.6, 0.3, 0.1), "concrete_p": 0.0, "intersection_p": 0.0},
}
BUILTIN = ("classic", "wide")


def _check(d: Domain, source: str) -> Domain:
    for which, names in (("timeofday", TIMES), ("weather", WEATHERS)):
        table = getattr(d, which)
        unknown = set(table) - set(names)
        if unknown or abs(sum(table.values()) - 1) > 1e-6 or min(table.values()) < 0:
            raise RoadsightError(f"domain {source}: {which} {table}. Expected probabilities of {', '.join(names)} summing to 1, got that. Fix the file.")
    for key in ("lanes_highway", "lanes_other"):
        p = getattr(d, key)
        if not 1 <= len(p) <= 6 or abs(sum(p) - 1) > 1e-6 or min(p) < 0:
            raise RoadsightError(f"domain {source}: {key} {p}. Expected 1-6 probabilities (1, 2, ... lanes) summing to 1, got that. Fix the file.")
    for f in dataclasses.fields(Domain):
        v = getattr(d, f.name)
        if f.name.endswith("_p") and not 0 <= v <= 1:
            raise RoadsightError(f"domain {source}: {f.name} = {v}. Expected a probability in [0, 1], got that. Fix the file.")
        if isinstance(v, tuple) and len(v) == 2 and not f.name.startswith("lanes") and v[0] > v[1]:
            raise RoadsightError(f"domain {source}: {f.name} = {list(v)}. Expected [low, high] with low <= high, got that. Fix the file.")
    return d


def from_dict(values: dict, source: str, base: Domain | None = None) -> Domain:
    """A Domain from YAML values (unknown keys and wrong types are one-line errors)."""
    known = {f.name: f for f in dataclasses.fields(Domain)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise RoadsightError(f"domain {source}: unknown key(s) {', '.join(unknown)}. Expected some of: {', '.join(known)}. Fix the file.")
    out = {}
    for key, v in values.items():
        default = getattr(base or Domain(), key)
        try:
            if isinstance(default, tuple):
                out[key] = tuple(type(default[0])(x) for x in v)
            elif isinstance(default, dict):
                out[key] = {str(k): float(x) for k, x in v.items()}
            else:
                out[key] = type(default)(v)
        except (TypeError, ValueError, AttributeError):
            raise RoadsightError(f"domain {source}: {key} = {v!r}. Expected the type of {default!r}, got that. Fix the file.") from None
    return _check(dataclasses.replace(base or Domain(), **out), source)


def load_domain(spec: str | Path = "classic", condition: str | None = None) -> Domain:
    """A built-in domain name or a YAML file, optionally with one condition fixed."""
    import yaml

    if str(spec) in BUILTIN:
        text, source = resources.files("model.domains").joinpath(f"{spec}.yaml").read_text(), str(spec)
    else:
        path = Path(spec)
        if not path.is_file():
            raise RoadsightError(f"--domain: {spec} is neither a built-in domain nor a file. Expected {' or '.join(BUILTIN)} or a YAML file, got neither. Check the name or path.")
        text, source = path.read_text(), str(path)
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise RoadsightError(f"domain {source}: not valid YAML ({str(e).splitlines()[0]}). Expected a mapping of Domain fields. Fix the file.") from None
    if not isinstance(values, dict):
        raise RoadsightError(f"domain {source}: a YAML {type(values).__name__}. Expected a mapping of Domain fields, got that. Fix the file.")
    values.setdefault("name", Path(source).stem)
    domain = from_dict(values, source)
    if condition is None:
        return domain
    if condition not in CONDITIONS:
        raise RoadsightError(f"--condition: unknown condition '{condition}'. Expected one of {', '.join(CONDITIONS)}. Pick one of them.")
    return from_dict({**CONDITIONS[condition], "name": f"{domain.name}+{condition}"}, f"{source} --condition {condition}", domain)
