"""Training dataset: BDD100K-layout samples letterboxed to the network input with augmentations that keep
boxes, drivable and lane masks aligned, and an ultralytics-style `collate`.

Per item: resize (long side to fit, masks nearest) -> [mosaic of 4] -> letterbox (image pad 114, masks pad 0,
the geometry of `engines.preprocess.Letterbox`, as at inference) -> [random scale/translate: one affine for
image and masks, boxes transformed, clipped, tiny ones dropped] -> [HSV] -> [horizontal flip] -> BGR->RGB CHW.
"""

from model.ultra import torch  # noqa: I001  (first torch import: offline-safe ultralytics settings)

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from engines.preprocess import PAD_VALUE, Letterbox
from model.bdd import DEFAULT_CLASS_MAP, BDDDataset
from model.classes import ClassMap


def box_candidates(before: np.ndarray, after: np.ndarray, wh_thr: float = 2.0, area_thr: float = 0.1, ar_thr: float = 100.0) -> np.ndarray:
    """Boxes worth keeping after a transform (ultralytics' rule): >= 2 px sides, >= 10 % of the area, sane aspect."""
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    ar = np.maximum(w2 / (h2 + 1e-16), h2 / (w2 + 1e-16))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + 1e-16) > area_thr) & (ar < ar_thr)


def affine_boxes(boxes: np.ndarray, m: np.ndarray, w: int, h: int) -> np.ndarray:
    """xyxy boxes through a 2x3 affine: the enclosing box of the 4 transformed corners, clipped to w x h."""
    if not len(boxes):
        return boxes.reshape(0, 4)
    corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2)
    xy = corners @ m[:, :2].T + m[:, 2]
    xy = xy.reshape(-1, 4, 2)
    out = np.concatenate([xy.min(1), xy.max(1)], 1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out.astype(np.float32)


def augment_hsv(img: np.ndarray, rng: np.random.Generator, hgain: float, sgain: float, vgain: float) -> None:
    """Random hue/saturation/value gains on a BGR uint8 image, in place (ultralytics' RandomHSV)."""
    if not (hgain or sgain or vgain):
        return
    r = rng.uniform(-1, 1, 3) * (hgain, sgain, vgain) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
    x = np.arange(0, 256, dtype=r.dtype)
    lut_hue = ((x * r[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=img)


class TrainDataset(torch.utils.data.Dataset):
    """Items `{"img" (3,h,w) uint8 RGB, "cls" (n,1), "bboxes" (n,4) normalised xywh, "drivable", "lane" (h,w) uint8}`."""

    def __init__(self, root: str | Path, split: str = "train", imgsz: tuple[int, int] = (384, 640), augment: bool = True,
                 class_map: str | Mapping[str, str] | Sequence[str] | ClassMap = DEFAULT_CLASS_MAP, hsv: tuple[float, float, float] = (0.015, 0.7, 0.4),
                 flip: float = 0.5, scale: float = 0.25, translate: float = 0.1, mosaic: float = 0.0, cache: bool = False, seed: int = 0):
        self.base = BDDDataset(root, split, class_map)
        self.names = self.base.names
        self.imgsz = tuple(imgsz)
        self.augment, self.hsv, self.flip, self.scale, self.translate, self.mosaic = augment, hsv, flip, scale, translate, mosaic
        self.seed = seed
        self.calls = 0
        self.cache: list | None = [None] * len(self.base) if cache else None

    def __len__(self) -> int:
        return len(self.base)

    def summary(self) -> str:
        """What the split holds (checked when it was built)."""
        return self.base.summary()

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sample i resized to fit imgsz (image bilinear/area, masks nearest): image, boxes, classes, drivable, lane."""
        if self.cache is not None and self.cache[i] is not None:
            return self.cache[i]
        s = self.base.read(i)
        lb = Letterbox.fit(s.image.shape[:2], self.imgsz)
        new_h, new_w = lb.content
        if (new_h, new_w) != s.image.shape[:2]:
            interp = cv2.INTER_AREA if lb.scale < 1 else cv2.INTER_LINEAR
            image = cv2.resize(s.image, (new_w, new_h), interpolation=interp)
            drivable = cv2.resize(s.drivable, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
            lane = cv2.resize(s.lane, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
        else:
            image, drivable, lane = s.image, s.drivable, s.lane
        boxes = lb.boxes_to_network(s.boxes) - np.array([lb.left, lb.top, lb.left, lb.top], np.float32)
        out = (image, boxes, s.classes, drivable, lane)
        if self.cache is not None:
            self.cache[i] = out
        return out

    def _letterboxed(self, i: int):
        image, boxes, classes, drivable, lane = self.load(i)
        h, w = self.imgsz
        lb = Letterbox.fit(image.shape[:2], self.imgsz)
        img = np.full((h, w, 3), PAD_VALUE, np.uint8)
        da, ll = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
        y, x = lb.top, lb.left
        img[y : y + image.shape[0], x : x + image.shape[1]] = image
        da[y : y + image.shape[0], x : x + image.shape[1]] = drivable
        ll[y : y + image.shape[0], x : x + image.shape[1]] = lane
        return img, boxes + np.array([x, y, x, y], np.float32), classes, da, ll

    def _mosaic(self, i: int, rng: np.random.Generator):
        """Four samples around a random centre on a 2h x 2w canvas (ultralytics' Mosaic), cropped to h x w later."""
        h, w = self.imgsz
        yc, xc = int(rng.uniform(h * 0.5, h * 1.5)), int(rng.uniform(w * 0.5, w * 1.5))
        img = np.full((2 * h, 2 * w, 3), PAD_VALUE, np.uint8)
        da, ll = np.zeros((2 * h, 2 * w), np.uint8), np.zeros((2 * h, 2 * w), np.uint8)
        all_boxes, all_cls = [], []
        for k, j in enumerate([i, *rng.integers(0, len(self), 3)]):
            image, boxes, classes, drivable, lane = self.load(int(j))
            ih, iw = image.shape[:2]
            x0, y0 = (xc - iw if k % 2 == 0 else xc), (yc - ih if k < 2 else yc)  # top-left, top-right, bottom-left, bottom-right
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + iw, 2 * w), min(y0 + ih, 2 * h)
            src = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
            img[cy0:cy1, cx0:cx1], da[cy0:cy1, cx0:cx1], ll[cy0:cy1, cx0:cx1] = image[src], drivable[src], lane[src]
            b = boxes + np.array([x0, y0, x0, y0], np.float32)
            clipped = np.concatenate([b[:, :2].clip([cx0, cy0], [cx1, cy1]), b[:, 2:].clip([cx0, cy0], [cx1, cy1])], 1)
            keep = box_candidates(b, clipped)
            all_boxes.append(clipped[keep])
            all_cls.append(classes[keep])
        return img, np.concatenate(all_boxes), np.concatenate(all_cls), da, ll

    def _affine(self, img, boxes, classes, da, ll, rng: np.random.Generator):
        """One random scale + translation (image centre -> output centre +- translate) for image and masks; boxes
        follow, clipped, tiny ones dropped."""
        h, w = self.imgsz
        ih, iw = img.shape[:2]
        s = rng.uniform(1 - self.scale, 1 + self.scale)
        tx = rng.uniform(0.5 - self.translate, 0.5 + self.translate) * w
        ty = rng.uniform(0.5 - self.translate, 0.5 + self.translate) * h
        m = np.array([[s, 0, tx - s * iw / 2], [0, s, ty - s * ih / 2]], np.float64)
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3)
        da = cv2.warpAffine(da, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
        ll = cv2.warpAffine(ll, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
        moved = affine_boxes(boxes, m, w, h)
        unclipped = boxes * s
        keep = box_candidates(unclipped, moved) if len(boxes) else np.zeros(0, bool)
        return img, moved[keep], classes[keep], da, ll

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i, self.calls, torch.initial_seed() % 2**32])
        self.calls += 1
        if self.augment and self.mosaic > 0 and rng.random() < self.mosaic:
            img, boxes, classes, da, ll = self._affine(*self._mosaic(i, rng), rng)  # crops h x w around the canvas centre
        else:
            img, boxes, classes, da, ll = self._letterboxed(i)
            if self.augment and (self.scale or self.translate):
                img, boxes, classes, da, ll = self._affine(img, boxes, classes, da, ll, rng)
        if self.augment:
            augment_hsv(img, rng, *self.hsv)
            if rng.random() < self.flip:
                img, da, ll = img[:, ::-1], da[:, ::-1], ll[:, ::-1]
                boxes = boxes.copy()
                boxes[:, [0, 2]] = self.imgsz[1] - boxes[:, [2, 0]]
        return self.to_item(img, boxes, classes, da, ll)

    def to_item(self, img: np.ndarray, boxes: np.ndarray, classes: np.ndarray, da: np.ndarray, ll: np.ndarray) -> dict:
        """Network-input arrays -> the item dict (RGB CHW, normalised xywh boxes)."""
        h, w = self.imgsz
        xywh = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2 / w, (boxes[:, 1] + boxes[:, 3]) / 2 / h,
                         (boxes[:, 2] - boxes[:, 0]) / w, (boxes[:, 3] - boxes[:, 1]) / h], 1) if len(boxes) else np.zeros((0, 4))
        return {
            "img": torch.from_numpy(np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1))),
            "cls": torch.from_numpy(classes.astype(np.float32).reshape(-1, 1)),
            "bboxes": torch.from_numpy(xywh.astype(np.float32).reshape(-1, 4)),
            "drivable": torch.from_numpy(np.ascontiguousarray(da)),
            "lane": torch.from_numpy(np.ascontiguousarray(ll)),
        }


def collate(items: list[dict]) -> dict:
    """Items -> ultralytics-style batch: img (B,3,h,w) uint8, batch_idx (N,), cls (N,1), bboxes (N,4), drivable/lane (B,h,w)."""
    return {
        "img": torch.stack([it["img"] for it in items]),
        "batch_idx": torch.cat([torch.full((len(it["cls"]),), float(k)) for k, it in enumerate(items)]),
        "cls": torch.cat([it["cls"] for it in items]),
        "bboxes": torch.cat([it["bboxes"] for it in items]),
        "drivable": torch.stack([it["drivable"] for it in items]),
        "lane": torch.stack([it["lane"] for it in items]),
    }
