"""Reader for datasets in YOLOP's BDD100K multi-task layout (what `roadsight data synth` writes). Torch-free.

    ROOT/images/SPLIT/NAME.jpg, ROOT/det_annotations/SPLIT/NAME.json (BDD100K per-image JSON),
    ROOT/da_seg_annotations/SPLIT/NAME.png (drivable), ROOT/ll_seg_annotations/SPLIT/NAME.png (lane)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.errors import RoadsightError

DEFAULT_CLASS_MAP = {"car": "vehicle", "bus": "vehicle", "truck": "vehicle", "train": "vehicle"}
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
LAYOUT = "ROOT/images/SPLIT/*.jpg, det_annotations/SPLIT/*.json, da_seg_annotations/SPLIT/*.png, ll_seg_annotations/SPLIT/*.png"


@dataclass
class Sample:
    """One labelled frame: boxes xyxy in frame pixels, class ids into `BDDDataset.names`, masks 0/1."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8 BGR
    boxes: np.ndarray  # (N, 4) float32
    classes: np.ndarray  # (N,) int64
    drivable: np.ndarray  # (H, W) uint8 0/1
    lane: np.ndarray  # (H, W) uint8 0/1


def resolve_class_map(class_map: Mapping[str, str] | Sequence[str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """A dict {BDD category: class name} or a list of categories (each its own class) -> (map, names in order)."""
    if isinstance(class_map, str) or not isinstance(class_map, (Mapping, Sequence)) or not class_map:
        raise RoadsightError(
            f"class_map: {class_map!r} is not usable. Expected a non-empty dict {{category: class}} or list of BDD100K categories, "
            f"got {type(class_map).__name__}. Example: {{'car': 'vehicle', 'bus': 'vehicle'}}."
        )
    mapping = dict(class_map) if isinstance(class_map, Mapping) else {c: c for c in class_map}
    names = tuple(dict.fromkeys(mapping.values()))
    return mapping, names


def read_boxes(path: Path, mapping: Mapping[str, str], names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes and class ids of the mapped categories in one BDD100K JSON file (objects without box2d ignored)."""
    try:
        data = json.loads(path.read_text())
        if "frames" in data:  # BDD100K per-image JSON (YOLOP's det_annotations)
            objects = [o for f in data["frames"] for o in f.get("objects", [])]
        else:  # BDD100K 'det_20' style: {"name", "labels": [...]}
            objects = data["labels"] or []
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as err:
        raise RoadsightError(
            f"{path}: not a BDD100K label file ({type(err).__name__}: {err}). Expected {{'name', 'frames': [{{'objects': [...]}}]}}, "
            f"got something else. Re-export the labels or regenerate with `roadsight data synth`."
        ) from None
    index = {n: i for i, n in enumerate(names)}
    boxes, classes = [], []
    for obj in objects:
        box, cls = obj.get("box2d"), mapping.get(obj.get("category", ""))
        if box is None or cls is None:
            continue
        boxes.append([box["x1"], box["y1"], box["x2"], box["y2"]])
        classes.append(index[cls])
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64)


class BDDDataset:
    """Frames, boxes and masks of one split; `read(i)` decodes sample i."""

    def __init__(self, root: str | Path, split: str = "train", class_map: Mapping[str, str] | Sequence[str] = DEFAULT_CLASS_MAP):
        self.root, self.split = Path(root), split
        self.class_map, self.names = resolve_class_map(class_map)
        folder = self.root / "images" / split
        if not folder.is_dir():
            got = "no such folder" if not self.root.is_dir() else f"no images/{split}/ in it"
            raise RoadsightError(f"dataset: {folder} is missing. Expected the layout {LAYOUT}, got {got}. Create one with `roadsight data synth --out {self.root}`.")
        self.images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not self.images:
            raise RoadsightError(f"dataset: {folder} holds no images. Expected .jpg/.png frames ({LAYOUT}), got an empty split. Check the path or the split name.")
        for sub in ("det_annotations", "da_seg_annotations", "ll_seg_annotations"):
            if not (self.root / sub / split).is_dir():
                raise RoadsightError(f"dataset: {self.root / sub / split} is missing. Expected the layout {LAYOUT}, got images without {sub}/. Add the labels.")

    def __len__(self) -> int:
        return len(self.images)

    def paths(self, i: int) -> dict[str, Path]:
        """The four files of sample i."""
        image = self.images[i]
        return {
            "image": image,
            "det": self.root / "det_annotations" / self.split / f"{image.stem}.json",
            "drivable": self.root / "da_seg_annotations" / self.split / f"{image.stem}.png",
            "lane": self.root / "ll_seg_annotations" / self.split / f"{image.stem}.png",
        }

    def read_labels(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N, 4) xyxy and class ids (N,) of sample i without decoding any image."""
        path = self.paths(i)["det"]
        if not path.is_file():
            raise RoadsightError(f"dataset: {path} is missing. Expected one JSON per image ({LAYOUT}), got none for {self.images[i].name}. Add it or remove the image.")
        return read_boxes(path, self.class_map, self.names)

    def read(self, i: int) -> Sample:
        """Decode sample i: image (BGR), boxes, classes, drivable and lane masks (0/1, frame size)."""
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        p = self.paths(i)
        image = cv2.imread(str(p["image"]), cv2.IMREAD_COLOR)
        if image is None:
            raise RoadsightError(f"dataset: cannot decode {p['image']}. Expected a JPEG/PNG frame, got an unreadable file. Replace or delete it.")
        boxes, classes = self.read_labels(i)
        masks = []
        for key in ("drivable", "lane"):
            if not p[key].is_file():
                raise RoadsightError(f"dataset: {p[key]} is missing. Expected a {key} mask PNG for {p['image'].name} ({LAYOUT}), got none. Add it or remove the image.")
            mask = cv2.imread(str(p[key]), cv2.IMREAD_GRAYSCALE)
            if mask is None or mask.shape != image.shape[:2]:
                got = "an unreadable file" if mask is None else f"{mask.shape[1]}x{mask.shape[0]}"
                raise RoadsightError(f"dataset: {p[key]} does not match {p['image'].name}. Expected a {image.shape[1]}x{image.shape[0]} grayscale PNG, got {got}. Regenerate the mask.")
            masks.append((mask > 0).astype(np.uint8))
        return Sample(p["image"].stem, image, boxes, classes, masks[0], masks[1])
