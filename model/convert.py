"""`roadsight data convert`: BDD100K as users have it on disk -> the project's layout (model/bdd.py). Torch-free.

Sources (`--from`):
  bdd100k  the official 100K release: images/100k/SPLIT/*.jpg, labels/det_20/det_SPLIT.json (one list per split),
           labels/drivable/masks/SPLIT/*.png (0 direct, 1 alternative, 2 background),
           labels/lane/masks/SPLIT/*.png (255 background) or labels/lane/polygons/lane_SPLIT.json (poly2d).
  yolop    YOLOP's layout (the project's own): per-image JSON, 0/255 masks; incomplete images are skipped.
  ayolom   A-YOLOM: images/SPLIT2017/*.jpg, detection-object/labels/SPLIT2017/*.txt (YOLO boxes, ids in AYOLOM_NAMES),
           seg-drivable-10/labels/SPLIT2017/*.txt and seg-lane-11/labels/SPLIT2017/*.txt (YOLO polygons).

Output: OUT/images/SPLIT/NAME.jpg (hard link, or a copy across file systems), OUT/det_annotations/SPLIT/NAME.json
({"name", "frames": [{"objects": [{"category", "box2d"}]}]}, det_20 category spellings), da_seg_annotations/ and ll_seg_annotations/ PNG 0/255.
Each image is kept or skipped with a reason; the report counts both.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from engines.errors import RoadsightError
from engines.media import IMAGE_SUFFIXES
from model.bdd import FOLDERS, check_masks
from model.classes import canonical

SOURCES = ("bdd100k", "yolop", "ayolom")
DRIVABLE = ("direct", "direct+alternative")
LANES = ("masks", "polygons")
SPLITS = ("train", "val")
AYOLOM_NAMES = ("person", "rider", "car", "bus", "truck", "bike", "motor", "traffic light", "traffic sign", "train")
LANE_PX = 8  # width of lane lines drawn from polygons at 1280x720 (YOLOP's and the synthetic sets' train width)


@dataclass
class Frame:
    """One source image: its labels, and loaders for its 0/1 masks at frame size (None = skip, with `skip` saying why)."""

    split: str
    name: str
    image: Path
    objects: list[dict] = field(default_factory=list)
    masks: Callable[[tuple[int, int]], tuple[np.ndarray, np.ndarray]] | None = None
    skip: str = ""


@dataclass
class ConvertReport:
    """Images kept per split and skipped per reason."""

    source: str
    out: Path
    kept: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, frame: Frame, reason: str) -> None:
        """Count a frame: kept when reason is empty, else skipped for that reason."""
        if reason:
            self.skipped[reason] += 1
            self.examples.setdefault(reason, f"{frame.split}/{frame.image.name}")
        else:
            self.kept[frame.split] += 1

    def lines(self) -> list[str]:
        kept = ", ".join(f"{n} {s}" for s, n in sorted(self.kept.items())) or "none"
        out = [f"converted {self.source} -> {self.out}: kept {sum(self.kept.values())} images ({kept})"]
        out += [f"skipped {n}: {reason} (e.g. {self.examples[reason]})" for reason, n in self.skipped.most_common()]
        return out


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RoadsightError(f"data convert: cannot read {path} ({type(err).__name__}). Expected a BDD100K JSON file, got that. Re-download it.") from None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def _gray(path: Path, shape: tuple[int, int]) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None or mask.shape != shape:
        got = "an unreadable file" if mask is None else f"{mask.shape[1]}x{mask.shape[0]}"
        raise RoadsightError(f"data convert: {path} does not match its image. Expected a {shape[1]}x{shape[0]} grayscale PNG, got {got}. Re-download it.")
    return mask


def _official_values(mask: np.ndarray, path: Path, allowed: set[int], what: str) -> None:
    extra = sorted(set(np.unique(mask).tolist()) - allowed)
    if extra:
        raise RoadsightError(
            f"data convert: {path} holds values {extra[:5]}. Expected the release's {what} (not its colormaps), got other values. "
            "Point --src at the release root with labels/drivable/masks and labels/lane/masks."
        )


def _bezier_polyline(vertices: list, types: str) -> np.ndarray:
    """BDD100K poly2d vertices ('L' points, 'C' cubic Bezier control points) -> a dense polyline."""
    pts, i, v = [np.asarray(vertices[0], float)], 1, np.asarray(vertices, float)
    while i < len(v):
        if types[i] == "C" and i + 2 < len(v):
            t = np.linspace(0, 1, 17)[1:, None]
            p0, p1, p2, p3 = v[i - 1], v[i], v[i + 1], v[i + 2]
            pts += list((1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3)
            i += 3
        else:
            pts.append(v[i])
            i += 1
    return np.round(np.asarray(pts)).astype(np.int32)


def draw_lanes(poly_labels: list[dict], shape: tuple[int, int]) -> np.ndarray:
    """0/1 lane mask of BDD100K lane poly2d labels, lines LANE_PX wide at 1280 px width (scaled with the frame)."""
    mask = np.zeros(shape, np.uint8)
    width = max(1, round(LANE_PX * shape[1] / 1280))
    for label in poly_labels:
        for poly in label.get("poly2d") or []:
            line = _bezier_polyline(poly["vertices"], poly.get("types") or "L" * len(poly["vertices"]))
            cv2.polylines(mask, [line], bool(poly.get("closed")), 1, width)
    return mask


def bdd100k_frames(src: Path, drivable: str = "direct", lanes: str = "masks") -> Iterator[Frame]:
    """The official release: det_20 lists, 0/1/2 drivable masks, 255-background lane masks (or lane polygons)."""
    drivable_max = 0 if drivable == "direct" else 1
    found = False
    for split in SPLITS:
        images = _images(src / "images" / "100k" / split)
        det = src / "labels" / "det_20" / f"det_{split}.json"
        if not images:
            continue
        found = True
        if not det.is_file():
            raise RoadsightError(f"data convert: {det} is missing. Expected the det_20 labels beside images/100k/{split}, got none. Unpack bdd100k_det_20_labels.")
        frames = _read_json(det)
        labels = {f["name"]: f.get("labels") or [] for f in frames}  # no "labels" key: a frame without objects
        polygons = {}
        if lanes == "polygons":
            poly_file = src / "labels" / "lane" / "polygons" / f"lane_{split}.json"
            if not poly_file.is_file():
                raise RoadsightError(f"data convert: {poly_file} is missing. Expected the lane polygons for --lanes polygons, got none. Use --lanes masks.")
            polygons = {f["name"]: f.get("labels") or [] for f in _read_json(poly_file)}
        for image in images:
            da = src / "labels" / "drivable" / "masks" / split / f"{image.stem}.png"
            ll = src / "labels" / "lane" / "masks" / split / f"{image.stem}.png"
            skip = ("no labels (not in det_20)" if image.name not in labels else "no drivable mask" if not da.is_file() else
                    "no lane mask" if lanes == "masks" and not ll.is_file() else
                    "no lane polygons" if lanes == "polygons" and image.name not in polygons else "")

            def masks(shape, da=da, ll=ll, name=image.name, polygons=polygons):
                d = _gray(da, shape)
                _official_values(d, da, {0, 1, 2}, "drivable masks (0 direct, 1 alternative, 2 background)")
                if lanes == "polygons":
                    return d <= drivable_max, draw_lanes(polygons[name], shape)
                return d <= drivable_max, _gray(ll, shape) != 255

            yield Frame(split, image.stem, image, [] if skip else labels[image.name], masks, skip)
    if not found:
        raise RoadsightError(f"data convert: {src} has no images/100k/train or images/100k/val. Expected the official BDD100K 100K release root, got none. Check --src.")


def yolop_frames(src: Path) -> Iterator[Frame]:
    """YOLOP's layout: per-image JSON (2018 'frames' or det_20 'labels'), 0/255 masks."""
    found = False
    for split in SPLITS:
        images = _images(src / "images" / split)
        found |= bool(images)
        for image in images:
            det, da, ll = (src / sub / split / f"{image.stem}{ext}" for sub, ext in FOLDERS.values())
            skip = "no labels" if not det.is_file() else "no drivable mask" if not da.is_file() else "no lane mask" if not ll.is_file() else ""
            objects = []
            if not skip:
                data = _read_json(det)
                if isinstance(data, list):
                    raise RoadsightError(f"data convert: {det} is a label list. Expected YOLOP's per-image JSON, got a list of {len(data)} frames. Use --from bdd100k for the release.")
                objects = [o for f in data["frames"] for o in f.get("objects", [])] if "frames" in data else data.get("labels") or []

            def masks(shape, da=da, ll=ll, where=image.stem):
                d, lane = _gray(da, shape), _gray(ll, shape)
                check_masks(d, lane, where)
                return d > 0, lane > 0

            yield Frame(split, image.stem, image, objects, masks, skip)
    if not found:
        raise RoadsightError(f"data convert: {src} has no images/train or images/val. Expected YOLOP's layout (images/, det_annotations/, ...), got none. Check --src.")


def _yolo_lines(path: Path) -> list[list[float]]:
    try:
        return [[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()]
    except ValueError:
        raise RoadsightError(f"data convert: {path} is not a YOLO label file. Expected lines 'class x y ...' of numbers, got other text. Re-download it.") from None


def _fill_polygons(path: Path, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    h, w = shape
    for row in _yolo_lines(path):
        xy = np.asarray(row[1:], float).reshape(-1, 2) * (w, h)
        cv2.fillPoly(mask, [np.round(xy).astype(np.int32)], 1)
    return mask


def ayolom_frames(src: Path) -> Iterator[Frame]:
    """A-YOLOM: YOLO txt boxes (ids in AYOLOM_NAMES), drivable and lane as YOLO polygon txt."""
    found = False
    for split in SPLITS:
        images = _images(src / "images" / f"{split}2017")
        found |= bool(images)
        for image in images:
            det, da, ll = (src / sub / "labels" / f"{split}2017" / f"{image.stem}.txt" for sub in ("detection-object", "seg-drivable-10", "seg-lane-11"))
            skip = "no labels" if not det.is_file() else "no drivable polygons" if not da.is_file() else "no lane polygons" if not ll.is_file() else ""
            objects = [{"category": AYOLOM_NAMES[int(r[0])], "box2d": list(r[1:5])} for r in ([] if skip else _yolo_lines(det))]

            def masks(shape, da=da, ll=ll):
                return _fill_polygons(da, shape), _fill_polygons(ll, shape)

            yield Frame(split, image.stem, image, objects, masks, skip)
    if not found:
        raise RoadsightError(f"data convert: {src} has no images/train2017 or images/val2017. Expected A-YOLOM's layout, got none. Check --src.")


def _yolo_to_box2d(objects: list[dict], shape: tuple[int, int]) -> None:
    """A-YOLOM boxes (normalised cx, cy, w, h) -> box2d pixels, in place."""
    h, w = shape
    for obj in objects:
        cx, cy, bw, bh = obj["box2d"]
        obj["box2d"] = {"x1": (cx - bw / 2) * w, "y1": (cy - bh / 2) * h, "x2": (cx + bw / 2) * w, "y2": (cy + bh / 2) * h}


def _link(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_frame(frame: Frame, out: Path, yolo_boxes: bool = False) -> str:
    """Write one kept frame in the project layout; returns a skip reason for an unreadable image, else ''."""
    pixels = cv2.imread(str(frame.image), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        return "unreadable image"
    hw = pixels.shape[:2]
    drivable, lane = frame.masks(hw)
    if yolo_boxes:
        _yolo_to_box2d(frame.objects, hw)
    objects = [{"category": canonical(o["category"]), "box2d": o["box2d"]} for o in frame.objects if o.get("box2d")]
    paths = {"image": out / "images" / frame.split / frame.image.name,
             **{k: out / sub / frame.split / f"{frame.name}{ext}" for k, (sub, ext) in FOLDERS.items()}}
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    _link(frame.image, paths["image"])
    paths["det"].write_text(json.dumps({"name": frame.name, "frames": [{"objects": objects}]}))
    cv2.imwrite(str(paths["drivable"]), np.where(drivable, 255, 0).astype(np.uint8))
    cv2.imwrite(str(paths["lane"]), np.where(lane, 255, 0).astype(np.uint8))
    return ""


def convert(source: str, src: Path, out: Path, drivable: str = "direct", lanes: str = "masks", workers: int = 4,
            on_start: Callable[[int], None] | None = None, on_frame: Callable[[], None] | None = None) -> ConvertReport:
    """Convert every image of SRC's train/val splits into OUT with `workers` threads (OpenCV decodes and
    encodes outside the GIL); returns what was kept and skipped."""
    for name, value, allowed in (("--from", source, SOURCES), ("--drivable", drivable, DRIVABLE), ("--lanes", lanes, LANES)):
        if value not in allowed:
            raise RoadsightError(f"data convert: {name} {value!r} is unknown. Expected one of {', '.join(allowed)}, got {value!r}.")
    if not src.is_dir():
        raise RoadsightError(f"data convert: --src {src} is not a folder. Expected the dataset root, got no folder. Check the path.")
    if out.resolve() == src.resolve():
        raise RoadsightError(f"data convert: --out is --src ({src}). Expected a new folder, got the source. Pass another --out.")
    frames = list({"bdd100k": lambda: bdd100k_frames(src, drivable, lanes), "yolop": lambda: yolop_frames(src),
                   "ayolom": lambda: ayolom_frames(src)}[source]())
    if on_start:
        on_start(len(frames))
    report = ConvertReport(source, out)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        reasons = pool.map(lambda f: f.skip or write_frame(f, out, yolo_boxes=source == "ayolom"), frames)
        for frame, reason in zip(frames, reasons):
            report.add(frame, reason)
            if on_frame:
                on_frame()
    if not report.kept:
        raise RoadsightError(f"data convert: no image of {src} could be converted. Expected labelled images, got {'; '.join(report.lines()[1:]) or 'none'}. Check --src and --from.")
    return report


def convert_command(source: str, src: Path, out: Path, drivable: str = "direct", lanes: str = "masks", workers: int = 4) -> ConvertReport:
    """CLI body: progress bar, then the report."""
    console = Console()
    columns = (TextColumn("converting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("convert", total=None)
        report = convert(source, src, out, drivable, lanes, workers, lambda n: bar.update(task, total=n), lambda: bar.advance(task))
    for line in report.lines():
        console.print(line)
    console.print(f"Train with `roadsight train --data {out}` (add --classes to choose the detected classes).")
    return report
