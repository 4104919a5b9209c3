"""BDDDataset on a hand-written BDD100K-layout folder: boxes, class maps, masks, one-line errors."""

import json

import cv2
import numpy as np
import pytest

from engines.errors import RoadsightError
from model.bdd import DEFAULT_CLASS_MAP, BDDDataset
from model.classes import class_map

H, W = 48, 80
OBJECTS = [
    {"category": "car", "box2d": {"x1": 1.5, "y1": 2.0, "x2": 10.0, "y2": 12.25}},
    {"category": "person", "box2d": {"x1": 20.0, "y1": 5.0, "x2": 24.0, "y2": 15.0}},
    {"category": "lane", "poly2d": [[0, 40], [80, 30]]},  # no box2d: ignored
    {"category": "truck", "box2d": {"x1": 30.0, "y1": 10.0, "x2": 60.0, "y2": 40.0}},
    {"category": "bus", "box2d": {"x1": 61.0, "y1": 0.0, "x2": 79.0, "y2": 20.0}},
]


def write_sample(root, split, name, objects, drivable_value=255):
    for folder in ("images", "det_annotations", "da_seg_annotations", "ll_seg_annotations"):
        (root / folder / split).mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(len(name)).integers(0, 255, (H, W, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "images" / split / f"{name}.png"), image)
    (root / "det_annotations" / split / f"{name}.json").write_text(json.dumps({"name": name, "frames": [{"objects": objects}]}))
    drivable = np.zeros((H, W), np.uint8)
    drivable[30:] = drivable_value
    lane = np.zeros((H, W), np.uint8)
    lane[:, 40:42] = 1  # any value > 0 is lane
    cv2.imwrite(str(root / "da_seg_annotations" / split / f"{name}.png"), drivable)
    cv2.imwrite(str(root / "ll_seg_annotations" / split / f"{name}.png"), lane)
    return image


@pytest.fixture
def root(tmp_path):
    write_sample(tmp_path, "val", "b", OBJECTS[:1])
    write_sample(tmp_path, "val", "a", OBJECTS)
    return tmp_path


def test_default_map_keeps_vehicles_as_one_class(root):
    ds = BDDDataset(root, "val")
    assert len(ds) == 2 and ds.names == ("vehicle",)
    s = ds.read(0)
    assert s.name == "a" and s.image.shape == (H, W, 3) and s.image.dtype == np.uint8
    np.testing.assert_array_equal(s.boxes, np.array([[1.5, 2.0, 10.0, 12.25], [30, 10, 60, 40], [61, 0, 79, 20]], np.float32))
    assert s.boxes.dtype == np.float32 and s.classes.dtype == np.int64 and s.classes.tolist() == [0, 0, 0]
    assert s.drivable.dtype == np.uint8 and set(np.unique(s.drivable)) == {0, 1} and s.drivable[30:].all() and not s.drivable[:30].any()
    assert s.lane.sum() == 2 * H and s.lane[:, 40:42].all()


def test_class_maps(root):
    multi = BDDDataset(root, "val", {"car": "car", "bus": "bus", "truck": "truck"})
    assert multi.names == ("car", "bus", "truck")
    assert multi.read(0).classes.tolist() == [0, 2, 1]
    listed = BDDDataset(root, "val", ["person", "car"])
    s = listed.read(0)
    assert listed.names == ("person", "car") and s.classes.tolist() == [1, 0]
    np.testing.assert_array_equal(s.boxes[0], [1.5, 2.0, 10.0, 12.25])
    grouped = BDDDataset(root, "val", {"car": "light", "truck": "heavy", "bus": "heavy", "person": "vru"})
    assert grouped.names == ("light", "heavy", "vru") and grouped.read(0).classes.tolist() == [0, 2, 1, 1]
    assert class_map(DEFAULT_CLASS_MAP).names == ("vehicle",)


def test_det20_style_labels(tmp_path):
    write_sample(tmp_path, "train", "x", [])
    (tmp_path / "det_annotations" / "train" / "x.json").write_text(json.dumps({"name": "x", "labels": OBJECTS}))
    assert BDDDataset(tmp_path, "train").read(0).boxes.shape == (3, 4)
    (tmp_path / "det_annotations" / "train" / "x.json").write_text(json.dumps({"name": "x", "attributes": {}}))  # no "labels"
    assert BDDDataset(tmp_path, "train").read(0).boxes.shape == (0, 4)


def one_line_error(fn) -> str:
    with pytest.raises(RoadsightError) as err:
        fn()
    text = str(err.value)
    assert "\n" not in text and "Expected" in text
    return text


def test_errors_are_one_line(root, tmp_path):
    assert "missing" in one_line_error(lambda: BDDDataset(tmp_path / "nowhere", "train"))
    assert "images/test" in one_line_error(lambda: BDDDataset(root, "test")).replace("\\", "/")
    (root / "images" / "empty").mkdir()
    assert "no images" in one_line_error(lambda: BDDDataset(root, "empty"))
    (root / "images" / "val" / "a.png").write_bytes(b"not an image")
    assert "a.png" in one_line_error(lambda: BDDDataset(root, "val"))  # decoded when the split is opened
    write_sample(root, "val", "a", OBJECTS)
    (root / "det_annotations" / "val" / "b.json").write_text("{broken")
    assert "b.json" in one_line_error(lambda: BDDDataset(root, "val"))
    assert "class_map" in one_line_error(lambda: BDDDataset(root, "val", []))
    (root / "ll_seg_annotations" / "val" / "b.png").unlink()
    text = one_line_error(lambda: BDDDataset(root, "val"))  # at build time, not when sample b is reached
    assert "1 of 2 images" in text and "b.png" in text and "lane" in text


def test_mask_size_mismatch(tmp_path):
    write_sample(tmp_path, "train", "m", OBJECTS)
    cv2.imwrite(str(tmp_path / "da_seg_annotations" / "train" / "m.png"), np.zeros((10, 10), np.uint8))
    assert "80x48" in one_line_error(lambda: BDDDataset(tmp_path, "train"))
