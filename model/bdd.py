"""Reader for datasets in YOLOP's BDD100K multi-task layout (what `roadsight data synth` writes). Torch-free.

    ROOT/images/SPLIT/NAME.jpg, ROOT/det_annotations/SPLIT/NAME.json (BDD100K per-image JSON),
    ROOT/da_seg_annotations/SPLIT/NAME.png (drivable), ROOT/ll_seg_annotations/SPLIT/NAME.png (lane)

Masks: 0 = background, any value > 0 = the class (YOLOP writes 0/255). Other layouts (the official BDD100K
release, A-YOLOM) are converted once by `model.convert` (`roadsight data convert`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.errors import RoadsightError
from engines.media import IMAGE_SUFFIXES
from model.classes import PRESETS, ClassMap
from model.classes import class_map as to_class_map

DEFAULT_CLASS_MAP = PRESETS["vehicle"]
LAYOUT = "ROOT/images/SPLIT/*.jpg, det_annotations/SPLIT/*.json, da_seg_annotations/SPLIT/*.png, ll_seg_annotations/SPLIT/*.png"
FOLDERS = {"det": ("det_annotations", ".json"), "drivable": ("da_seg_annotations", ".png"), "lane": ("ll_seg_annotations", ".png")}
CHECKED_SAMPLES = 8  # masks and labels decoded when the dataset is built, spread over the split
FORMATS = {"bdd100k": "official BDD100K 100K release", "ayolom": "A-YOLOM"}
OTHER_LAYOUTS = {  # marker path -> the --from value of `roadsight data convert`
    "images/100k": "bdd100k", "labels/det_20": "bdd100k", "detection-object": "ayolom", "seg-drivable-10": "ayolom",
}


def convert_hint(fmt: str, root: Path | str = "ROOT") -> str:
    """The sentence that tells a user how to convert a dataset in layout `fmt`."""
    return f"Convert it once: `roadsight data convert --from {fmt} --src {root} --out data/bdd`, then train on data/bdd"


@dataclass
class Sample:
    """One labelled frame: boxes xyxy in frame pixels, class ids into `BDDDataset.names`, masks 0/1."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8 BGR
    boxes: np.ndarray  # (N, 4) float32
    classes: np.ndarray  # (N,) int64
    drivable: np.ndarray  # (H, W) uint8 0/1
    lane: np.ndarray  # (H, W) uint8 0/1


def read_boxes(path: Path, classes: ClassMap) -> tuple[np.ndarray, np.ndarray]:
    """Boxes and class ids of the mapped categories in one per-image BDD100K JSON: {"frames": [{"objects"}]}
    (2018, YOLOP) or {"name", "labels"} (det_20; no "labels" key = no objects). Objects without box2d are ignored."""
    try:
        data = json.loads(path.read_text())
        if isinstance(data, list):
            raise RoadsightError(
                f"{path}: a BDD100K label list ({len(data)} frames in one file, like det_20's det_SPLIT.json). Expected one "
                f"JSON per image ({{'name', 'frames': [...]}}), got a list. {convert_hint('bdd100k')}."
            )
        if "frames" in data:
            objects = [o for f in data["frames"] for o in f.get("objects", [])]
        elif "labels" in data or "name" in data:
            objects = data.get("labels") or []
        else:
            raise KeyError("frames")
        boxes, ids = [], []
        for obj in objects:
            box, cls = obj.get("box2d"), classes.index(obj.get("category", ""))
            if box is not None and cls is not None:
                boxes.append([box["x1"], box["y1"], box["x2"], box["y2"]])
                ids.append(cls)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as err:
        raise RoadsightError(
            f"{path}: not a BDD100K label file ({type(err).__name__}: {err}). Expected {{'name', 'frames': [{{'objects': [...]}}]}}, "
            f"got something else. Re-export the labels, convert them with `roadsight data convert`, or regenerate with `roadsight data synth`."
        ) from None
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(ids, np.int64)


def check_masks(drivable: np.ndarray, lane: np.ndarray, where: str) -> None:
    """Refuse masks coded like the official BDD100K release, which this layout would read inverted."""
    values = np.unique(drivable)
    if values.max() <= 2 and 2 in values:
        raise RoadsightError(
            f"dataset: {where} drivable mask holds only {sorted(values.tolist())}: the official BDD100K coding (0 direct, 1 alternative, "
            f"2 background). Expected 0 = background, >0 = drivable (0/255), got the release's masks. {convert_hint('bdd100k')}."
        )
    if (lane == 255).mean() > 0.5:
        raise RoadsightError(
            f"dataset: {where} lane mask is {100 * (lane == 255).mean():.0f} % 255: the official BDD100K coding (255 background). "
            f"Expected 0 = background, >0 = lane, got the release's masks. {convert_hint('bdd100k')}."
        )


def require_split(root: Path, split: str) -> Path:
    """ROOT/images/SPLIT, or a one-line error that names the converter when ROOT is in another known layout."""
    folder = root / "images" / split
    if not folder.is_dir():
        foreign = next((fmt for marker, fmt in OTHER_LAYOUTS.items() if (root / marker).exists()), None)
        if foreign:
            raise RoadsightError(f"dataset: {root} is in the {FORMATS[foreign]} layout. Expected the layout {LAYOUT}, got that one. {convert_hint(foreign, root)}.")
        got = "no such folder" if not root.is_dir() else f"no images/{split}/ in it"
        raise RoadsightError(
            f"dataset: {folder} is missing. Expected the layout {LAYOUT}, got {got}. Convert a dataset with `roadsight data convert` "
            f"or create one with `roadsight data synth --out {root}`."
        )
    return folder


class BDDDataset:
    """Frames, boxes and masks of one split; `read(i)` decodes sample i.

    Built only on a complete split: every image has its JSON and both masks, and a few samples spread over the
    split are decoded to refuse foreign codings (official BDD100K masks, det_20 label lists) before any training.
    """

    def __init__(self, root: str | Path, split: str = "train", class_map: str | Mapping[str, str] | Sequence[str] | ClassMap = DEFAULT_CLASS_MAP):
        self.root, self.split = Path(root), split
        self.classes = to_class_map(class_map)
        self.names = self.classes.names
        folder = require_split(self.root, split)
        self.images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.images:
            raise RoadsightError(f"dataset: {folder} holds no images. Expected .jpg/.png frames ({LAYOUT}), got an empty split. Check the path or the split name.")
        for key, (sub, ext) in FOLDERS.items():
            where = self.root / sub / split
            if not where.is_dir():
                raise RoadsightError(f"dataset: {where} is missing. Expected the layout {LAYOUT}, got images without {sub}/. Add the labels.")
            present = {p.stem for p in where.iterdir() if p.suffix.lower() == ext}
            missing = [p for p in self.images if p.stem not in present]
            if missing:
                raise RoadsightError(
                    f"dataset: {len(missing)} of {len(self.images)} images in {folder} have no {where / (missing[0].stem + ext)} (the first). "
                    f"Expected one {key} file per image, got {len(missing)} missing. Remove those images, or rebuild the set with "
                    "`roadsight data convert`, which skips them."
                )
        for i in sorted({round(k) for k in np.linspace(0, len(self) - 1, min(len(self), CHECKED_SAMPLES))}):
            p, image = self.paths(i), self._image(i)
            self.read_labels(i)
            check_masks(self._mask(p["drivable"], image.shape, "drivable"), self._mask(p["lane"], image.shape, "lane"), p["image"].stem)

    def __len__(self) -> int:
        return len(self.images)

    def summary(self) -> str:
        """One line: what was checked and found."""
        return (f"{self.root} {self.split}: {len(self)} images, each with its JSON labels, drivable and lane masks; "
                f"classes {', '.join(self.names)}")

    def paths(self, i: int) -> dict[str, Path]:
        """The four files of sample i."""
        image = self.images[i]
        return {"image": image, **{k: self.root / sub / self.split / f"{image.stem}{ext}" for k, (sub, ext) in FOLDERS.items()}}

    def read_labels(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N, 4) xyxy and class ids (N,) of sample i without decoding any image."""
        return read_boxes(self.paths(i)["det"], self.classes)

    def _image(self, i: int) -> np.ndarray:
        path = self.images[i]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise RoadsightError(f"dataset: cannot decode {path}. Expected a JPEG/PNG frame, got an unreadable file. Replace or delete it.")
        return image

    def _mask(self, path: Path, shape: tuple[int, ...], key: str) -> np.ndarray:
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None or mask.shape != shape[:2]:
            got = "an unreadable file" if mask is None else f"{mask.shape[1]}x{mask.shape[0]}"
            raise RoadsightError(f"dataset: {path} does not match its image. Expected a {shape[1]}x{shape[0]} grayscale PNG, got {got}. Regenerate the mask.")
        return mask

    def read(self, i: int) -> Sample:
        """Decode sample i: image (BGR), boxes, classes, drivable and lane masks (0/1, frame size)."""
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        p, image = self.paths(i), self._image(i)
        boxes, classes = self.read_labels(i)
        drivable, lane = ((self._mask(p[k], image.shape, k) > 0).astype(np.uint8) for k in ("drivable", "lane"))
        return Sample(p["image"].stem, image, boxes, classes, drivable, lane)
