"""Detection classes: which BDD100K categories a model detects and under which names. Torch-free.

A class map is {BDD100K category: class name}; class ids follow the first appearance of each name.
Categories are spelled as in BDD100K's det_20 labels; the 2018 names are aliases (person = pedestrian,
bike = bicycle, motor = motorcycle), so labels of either release and specs using either spelling match.

`--classes` specs: a preset (`vehicle`: car, bus, truck, train -> vehicle, the default; `bdd10`: the ten
detection classes of BDD100K), or a comma list of categories (each its own class) and `category=name`
merges, e.g. `car,truck,bus,motorcycle` or `car=vehicle,bus=vehicle,pedestrian=person`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engines.errors import RoadsightError

ALIASES = {"person": "pedestrian", "bike": "bicycle", "motor": "motorcycle"}  # BDD100K 2018 -> det_20
BDD10 = ("pedestrian", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle", "traffic light", "traffic sign")
PRESETS: dict[str, dict[str, str]] = {
    "vehicle": {"car": "vehicle", "bus": "vehicle", "truck": "vehicle", "train": "vehicle"},
    "bdd10": {c: c for c in BDD10},
}
SPEC_HELP = "a preset (vehicle, bdd10), a list such as car,truck,bus,motorcycle, or merges such as car=vehicle,bus=vehicle"


def canonical(category: str) -> str:
    """A BDD100K category in det_20 spelling (2018 aliases resolved)."""
    return ALIASES.get(category, category)


@dataclass(frozen=True)
class ClassMap:
    """mapping: {det_20 category: class name}; names: the class names in class-id order."""

    mapping: dict[str, str]
    names: tuple[str, ...]

    def index(self, category: str) -> int | None:
        """Class id of a label's category (either spelling), None when the category is not detected."""
        name = self.mapping.get(canonical(category))
        return None if name is None else self.names.index(name)


def class_map(spec: str | Mapping[str, str] | Sequence[str] | ClassMap) -> ClassMap:
    """A spec string, a dict {category: name}, a list of categories or a ClassMap -> ClassMap."""
    if isinstance(spec, ClassMap):
        return spec
    if isinstance(spec, str):
        return parse_classes(spec)
    if not isinstance(spec, (Mapping, Sequence)) or not spec or not all(isinstance(k, str) for k in spec):
        raise RoadsightError(
            f"class_map: {spec!r} is not usable. Expected a non-empty dict {{category: class}} or list of BDD100K categories, "
            f"got {type(spec).__name__}. Example: {{'car': 'vehicle', 'bus': 'vehicle'}}."
        )
    pairs = spec.items() if isinstance(spec, Mapping) else ((c, c) for c in spec)
    mapping: dict[str, str] = {}
    for category, name in pairs:
        key = canonical(category)
        if mapping.get(key, name) != name:
            raise RoadsightError(f"classes: {key} is given twice ({mapping[key]} and {name}). Expected each category once. Drop one.")
        mapping[key] = name
    return ClassMap(mapping, tuple(dict.fromkeys(mapping.values())))


def parse_classes(spec: str) -> ClassMap:
    """A `--classes` value -> ClassMap (see the module docstring)."""
    text = spec.strip()
    if text in PRESETS:
        return class_map(PRESETS[text])
    items = [item.strip() for item in text.split(",")]
    if not text or not all(items) or any(item.count("=") > 1 or item.startswith("=") or item.endswith("=") for item in items):
        raise RoadsightError(f"--classes: cannot read {spec!r}. Expected {SPEC_HELP}. Fix the value.")
    pairs = [tuple(part.strip() for part in item.split("=")) if "=" in item else (item, item) for item in items]
    unknown = [c for c, _ in pairs if canonical(c) not in BDD10 and canonical(c) not in ("other vehicle", "other person", "trailer")]
    if unknown:
        raise RoadsightError(
            f"--classes: unknown BDD100K category {unknown[0]!r}. Expected one of {', '.join(BDD10)} (or 2018 names person, "
            f"bike, motor), got {unknown[0]!r}. Fix the spelling."
        )
    seen = [canonical(c) for c, _ in pairs]
    twice = next((c for c in seen if seen.count(c) > 1), None)
    if twice:
        raise RoadsightError(f"--classes: {twice} is given twice in {spec!r}. Expected each category once. Drop one.")
    return class_map(dict(pairs))


def stored_class_map(names: Sequence[str], mapping: Mapping[str, str] | None = None) -> ClassMap:
    """The ClassMap of a checkpoint or model: its stored mapping, or (artifacts written before mappings were
    stored) `vehicle` for ('vehicle',) and one category per name otherwise."""
    if mapping:
        cm = class_map(mapping)
    elif tuple(names) == ("vehicle",):
        cm = class_map(PRESETS["vehicle"])
    else:
        cm = class_map(list(names))
    if cm.names != tuple(names):
        raise RoadsightError(
            f"classes: the stored mapping gives {list(cm.names)} but the model detects {list(names)}. Expected the same "
            "names in the same order. Re-export the model from its checkpoint."
        )
    return cm
