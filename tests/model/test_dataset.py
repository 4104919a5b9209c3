"""TrainDataset: letterbox as at inference, augmentations that keep boxes and both masks aligned, collate."""

import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engines.preprocess import Letterbox  # noqa: E402
from model.dataset import TrainDataset, affine_boxes, collate  # noqa: E402

H0, W0 = 120, 200
IMGSZ = (96, 160)
RECTS = [(20, 30, 90, 80), (0, 50, 40, 119), (150, 10, 199, 60), (70, 70, 130, 110)]  # x1, y1, x2, y2 (inclusive px)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """One object per image: the box is drawn as a filled rectangle in the image (red), drivable and lane masks."""
    root = tmp_path_factory.mktemp("boxes")
    for folder in ("images", "det_annotations", "da_seg_annotations", "ll_seg_annotations"):
        (root / folder / "train").mkdir(parents=True)
    for k, (x1, y1, x2, y2) in enumerate(RECTS):
        image, mask = np.zeros((H0, W0, 3), np.uint8), np.zeros((H0, W0), np.uint8)
        image[y1 : y2 + 1, x1 : x2 + 1] = (0, 0, 255)
        mask[y1 : y2 + 1, x1 : x2 + 1] = 255
        cv2.imwrite(str(root / "images" / "train" / f"{k}.png"), image)
        cv2.imwrite(str(root / "da_seg_annotations" / "train" / f"{k}.png"), mask)
        cv2.imwrite(str(root / "ll_seg_annotations" / "train" / f"{k}.png"), mask)
        box = {"x1": x1, "y1": y1, "x2": x2 + 1, "y2": y2 + 1}
        objects = [{"category": "car", "box2d": box}, {"category": "traffic sign", "box2d": box}]
        (root / "det_annotations" / "train" / f"{k}.json").write_text(json.dumps({"name": str(k), "frames": [{"objects": objects}]}))
    return root


def xyxy(item) -> np.ndarray:
    h, w = IMGSZ
    b = item["bboxes"].numpy()
    return np.stack([(b[:, 0] - b[:, 2] / 2) * w, (b[:, 1] - b[:, 3] / 2) * h, (b[:, 0] + b[:, 2] / 2) * w, (b[:, 1] + b[:, 3] / 2) * h], 1)


def extent(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def assert_only_slivers(mask: np.ndarray, largest_scale: float = 1.4) -> None:
    """Lane pixels without a box may only be what box_candidates drops: < 10 % of a rectangle or <= 3 px thin."""
    max_area = max((x2 - x1 + 1) * (y2 - y1 + 1) for x1, y1, x2, y2 in RECTS) * (IMGSZ[1] / W0 * largest_scale) ** 2
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    for _, _, w, h, area in stats[1:]:
        assert min(w, h) <= 3 or area <= 0.1 * max_area, f"a {w}x{h} patch of mask without a box"


def test_plain_item_is_the_inference_letterbox(root):
    ds = TrainDataset(root, "train", IMGSZ, augment=False)
    assert len(ds) == 4 and ds.names == ("vehicle",)
    lb = Letterbox.fit((H0, W0), IMGSZ)
    for k, (x1, y1, x2, y2) in enumerate(RECTS):
        item = ds[k]
        assert item["img"].shape == (3, *IMGSZ) and item["img"].dtype == torch.uint8
        assert item["drivable"].shape == IMGSZ and item["drivable"].dtype == torch.uint8 and item["lane"].max() == 1
        assert item["cls"].tolist() == [[0.0]]
        expected = lb.boxes_to_network(np.array([[x1, y1, x2 + 1, y2 + 1]], np.float32))
        np.testing.assert_allclose(xyxy(item), expected, atol=1e-3)
        np.testing.assert_allclose(extent(item["lane"].numpy()), expected[0], atol=1.0)
        red = item["img"][0].numpy() > 128  # RGB: channel 0 is red
        assert np.array_equal(red, item["drivable"].numpy() > 0)
        pad = item["img"].numpy()[:, : lb.top]
        assert (pad == 114).all()


def test_augmentations_keep_boxes_and_masks_aligned(root):
    ds = TrainDataset(root, "train", IMGSZ, augment=True, hsv=(0.0, 0.0, 0.0), flip=0.5, scale=0.4, translate=0.2)
    flipped = 0
    for _ in range(6):
        for k in range(len(ds)):
            item = ds[k]
            lane, da = item["lane"].numpy(), item["drivable"].numpy()
            assert np.array_equal(lane, da)
            if not len(item["bboxes"]):
                assert_only_slivers(lane)
                continue
            box = xyxy(item)[0]
            np.testing.assert_allclose(extent(lane), box, atol=1.5)
            np.testing.assert_allclose(extent(item["img"][0].numpy() > 128), box, atol=1.5)
            flipped += int((box[0] + box[2]) / 2 > IMGSZ[1] / 2) != int((RECTS[k][0] + RECTS[k][2]) / 2 > W0 / 2)
    assert flipped > 0


def test_mosaic_keeps_every_box_on_its_rectangle(root):
    ds = TrainDataset(root, "train", IMGSZ, augment=True, hsv=(0.0, 0.0, 0.0), mosaic=1.0, scale=0.2, translate=0.1)
    boxes_seen = 0
    for _ in range(5):
        for k in range(len(ds)):
            item = ds[k]
            lane = item["lane"].numpy()
            for b in xyxy(item):  # pixels wholly inside the box (rounding would count a half-covered edge row of a thin box)
                x1, y1, x2, y2 = np.ceil(b[:2]).astype(int).tolist() + np.floor(b[2:]).astype(int).tolist()
                boxes_seen += 1
                assert lane[y1:y2, x1:x2].mean() > 0.85
            covered = np.zeros_like(lane)
            for x1, y1, x2, y2 in np.round(xyxy(item)).astype(int):
                covered[max(y1 - 1, 0) : y2 + 1, max(x1 - 1, 0) : x2 + 1] = 1
            assert_only_slivers(lane * (1 - covered))
    assert boxes_seen > 20


def test_hsv_changes_colours_not_labels(root):
    plain = TrainDataset(root, "train", IMGSZ, augment=False)[0]
    jitter = TrainDataset(root, "train", IMGSZ, augment=True, hsv=(0.5, 0.9, 0.9), flip=0.0, scale=0.0, translate=0.0, seed=3)
    changed = False
    for _ in range(4):
        item = jitter[0]
        assert torch.equal(item["lane"], plain["lane"]) and torch.allclose(item["bboxes"], plain["bboxes"])
        changed |= not torch.equal(item["img"], plain["img"])
    assert changed


def test_cache_and_seed(root):
    a = TrainDataset(root, "train", IMGSZ, augment=False, cache=True)
    b = TrainDataset(root, "train", IMGSZ, augment=False)
    for k in range(len(a)):
        a[k]
        x, y = a[k], b[k]  # the second read comes from the cache
        assert all(torch.equal(x[key], y[key]) for key in x)
    c, d = (TrainDataset(root, "train", IMGSZ, augment=True, seed=7) for _ in range(2))
    assert all(torch.equal(c[1][key], d[1][key]) for key in ("img", "bboxes", "lane"))


def test_collate(root):
    ds = TrainDataset(root, "train", IMGSZ, augment=False, class_map=["car", "traffic sign"])
    items = [ds[k] for k in range(3)]
    batch = collate(items)
    assert batch["img"].shape == (3, 3, *IMGSZ) and batch["img"].dtype == torch.uint8
    assert batch["batch_idx"].tolist() == [0, 0, 1, 1, 2, 2]
    assert batch["cls"].shape == (6, 1) and batch["cls"].flatten().tolist() == [0, 1] * 3
    assert torch.equal(batch["bboxes"][2:4], items[1]["bboxes"])
    assert batch["drivable"].shape == (3, *IMGSZ) and batch["lane"].shape == (3, *IMGSZ)


def test_affine_boxes_clip_to_the_output():
    m = np.array([[2.0, 0.0, -10.0], [0.0, 2.0, 5.0]])
    out = affine_boxes(np.array([[0, 0, 10, 10], [50, 20, 100, 40]], np.float32), m, 160, 96)
    np.testing.assert_allclose(out, [[0, 5, 10, 25], [90, 45, 160, 85]])
