"""Detection AP and segmentation confusion-matrix metrics, numpy only (works without torch).

Detection follows ultralytics' validator so numbers compare with YOLOv8-lineage peers (A-YOLOM,
RMT-PPAD): per image, predictions sorted by confidence are matched greedily to unclaimed ground truth of
the same class at each IoU threshold 0.50:0.95 (`match_predictions`), then per class AP with 101-point
interpolation (`compute_ap`), precision/recall at the max of the smoothed mean F1, and recall by the
YOLOP rule: recall at the confidence that maximises the mean recall (i.e. at the lowest confidence).

Segmentation accumulates ONE 2x2 confusion matrix over every pixel of every image (rows = ground truth,
columns = prediction, index 1 = the class: drivable or lane), unlike peers' per-image/per-batch means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
_AP_X = np.linspace(0.0, 1.0, 101)  # COCO 101-point recall grid, as ultralytics
_CURVE_X = np.linspace(0.0, 1.0, 1000)  # confidence grid of the P/R/F1 curves, as ultralytics
_TRAPZ = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


def box_iou(a: np.ndarray, b: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + eps)


def match_predictions(
    pred_classes: np.ndarray, true_classes: np.ndarray, iou: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS
) -> np.ndarray:
    """(N, T) bool: prediction j (columns of `iou`, in descending confidence) is a true positive at
    threshold t. `iou` is (M gt, N pred). Greedy like ultralytics' `BaseValidator.match_predictions`:
    each prediction takes the best still-unclaimed same-class target, separately per threshold."""
    correct = np.zeros((len(pred_classes), len(thresholds)), dtype=bool)
    if len(pred_classes) == 0 or len(true_classes) == 0:
        return correct
    iou = iou * (np.asarray(true_classes)[:, None] == np.asarray(pred_classes)[None, :])
    matched = np.zeros((iou.shape[0], len(thresholds)), dtype=bool)
    cols = np.arange(len(thresholds))
    for j in np.flatnonzero((iou >= thresholds.min()).any(0)):
        available = np.where(matched, 0.0, iou[:, j, None])
        k = available.argmax(0)
        correct[j] = available[k, cols] >= thresholds
        matched[k, cols] |= correct[j]
    return correct


def compute_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """AP of one precision/recall curve: precision envelope, interpolated at 101 recall points,
    integrated with the trapezoid rule (ultralytics' `compute_ap`)."""
    mrec = np.concatenate(([0.0], recall, [recall[-1] if len(recall) else 1.0], [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0], [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    return float(_TRAPZ(np.interp(_AP_X, mrec, mpre), _AP_X))


def smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """Box filter of width fraction f (ultralytics' `smooth`, used to pick the max-F1 confidence)."""
    nf = round(len(y) * f * 2) // 2 + 1
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


def ap_per_class(tp: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray, eps: float = 1e-16) -> dict:
    """Per-class AP over IoU thresholds and P/R/F1 curves over confidence (ultralytics' `ap_per_class`).

    Returns a dict of arrays over the classes that have ground truth (`classes`, `instances`):
    `ap` (nc, T), `p_curve`/`r_curve`/`f1_curve` (nc, 1000) over confidence `x`, and the indices
    `i_f1` (max smoothed mean F1) and `i_recall` (max mean recall, the YOLOP rule).
    """
    order = np.argsort(-conf)  # ultralytics' sort, so ties break the same way
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    classes, nt = np.unique(target_cls, return_counts=True)
    x = _CURVE_X
    ap = np.zeros((len(classes), tp.shape[1]))
    p_curve, r_curve = np.zeros((len(classes), len(x))), np.zeros((len(classes), len(x)))
    for ci, c in enumerate(classes):
        i = pred_cls == c
        if not i.any():
            continue
        tpc = tp[i].cumsum(0)
        fpc = (1 - tp[i]).cumsum(0)
        recall = tpc / (nt[ci] + eps)
        precision = tpc / (tpc + fpc)
        r_curve[ci] = np.interp(-x, -conf[i], recall[:, 0], left=0)
        p_curve[ci] = np.interp(-x, -conf[i], precision[:, 0], left=1)
        for j in range(tp.shape[1]):
            ap[ci, j] = compute_ap(recall[:, j], precision[:, j])
    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + eps)
    i_f1 = int(smooth(f1_curve.mean(0), 0.1).argmax()) if len(classes) else 0
    i_recall = int(r_curve.mean(0).argmax()) if len(classes) else 0
    return {
        "classes": classes.astype(int),
        "instances": nt,
        "ap": ap,
        "x": x,
        "p_curve": p_curve,
        "r_curve": r_curve,
        "f1_curve": f1_curve,
        "i_f1": i_f1,
        "i_recall": i_recall,
    }


class DetectionMetrics:
    """Accumulate detections image by image, then `compute()` mAP50, mAP50-95, P/R at max F1 and
    YOLOP-rule recall, overall (mean over classes with ground truth) and per class."""

    def __init__(self, names: Sequence[str], iou_thresholds: np.ndarray = IOU_THRESHOLDS):
        self.names = tuple(names)
        self.iou_thresholds = np.asarray(iou_thresholds, dtype=np.float64)
        if not np.isclose(self.iou_thresholds, 0.5).any():
            raise ValueError(f"iou_thresholds must include 0.5 (AP50), got {self.iou_thresholds.tolist()}")
        self._tp: list[np.ndarray] = []
        self._conf: list[np.ndarray] = []
        self._pred_cls: list[np.ndarray] = []
        self._target_cls: list[np.ndarray] = []
        self.images = 0

    def update(
        self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, gt_boxes: np.ndarray, gt_classes: np.ndarray
    ) -> np.ndarray:
        """Add one image (xyxy boxes in the same pixel frame); returns its (N, T) true-positive matrix
        in the order of the given predictions."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        class_ids = np.asarray(class_ids, np.int64).reshape(-1)
        gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
        gt_classes = np.asarray(gt_classes, np.int64).reshape(-1)
        order = np.argsort(-scores, kind="stable")
        tp_sorted = match_predictions(class_ids[order], gt_classes, box_iou(gt_boxes, boxes[order]), self.iou_thresholds)
        tp = np.empty_like(tp_sorted)
        tp[order] = tp_sorted
        self._tp.append(tp_sorted)  # stored in confidence order, like ultralytics' NMS output
        self._conf.append(scores[order])
        self._pred_cls.append(class_ids[order])
        self._target_cls.append(gt_classes)
        self.images += 1
        return tp

    @property
    def instances(self) -> int:
        return int(sum(len(t) for t in self._target_cls))

    def compute(self) -> dict:
        """JSON-ready results. Means are over classes with ground truth; None where undefined."""
        t = len(self.iou_thresholds)
        tp = np.concatenate(self._tp) if self._tp else np.zeros((0, t), bool)
        conf = np.concatenate(self._conf) if self._conf else np.zeros(0)
        pred_cls = np.concatenate(self._pred_cls) if self._pred_cls else np.zeros(0, np.int64)
        target_cls = np.concatenate(self._target_cls) if self._target_cls else np.zeros(0, np.int64)
        s = ap_per_class(tp.astype(np.float64), conf, pred_cls, target_cls)
        i50 = int(np.flatnonzero(np.isclose(self.iou_thresholds, 0.5))[0])
        p_f1, r_f1 = s["p_curve"][:, s["i_f1"]], s["r_curve"][:, s["i_f1"]]
        r_yolop, p_yolop = s["r_curve"][:, s["i_recall"]], s["p_curve"][:, s["i_recall"]]
        per_class = {}
        for k, c in enumerate(s["classes"]):
            name = self.names[c] if 0 <= c < len(self.names) else str(c)
            per_class[name] = {
                "instances": int(s["instances"][k]),
                "AP50": float(s["ap"][k, i50]),
                "AP50-95": float(s["ap"][k].mean()),
                "precision": float(p_f1[k]),
                "recall_at_max_f1": float(r_f1[k]),
                "recall": float(r_yolop[k]),
            }
        for name in self.names:
            per_class.setdefault(name, {"instances": 0, "AP50": None, "AP50-95": None})

        def mean(values: np.ndarray) -> float | None:
            return float(values.mean()) if len(values) else None

        return {
            "mAP50": mean(s["ap"][:, i50]),
            "mAP50-95": mean(s["ap"].mean(1)) if len(s["ap"]) else None,
            "recall": mean(r_yolop),
            "precision": mean(p_f1),
            "recall_at_max_f1": mean(r_f1),
            "f1": mean(s["f1_curve"][:, s["i_f1"]]),
            "conf_at_max_f1": float(s["x"][s["i_f1"]]) if len(s["classes"]) else None,
            "precision_at_recall": mean(p_yolop),
            "images": self.images,
            "instances": self.instances,
            "classes": per_class,
        }


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2*radius+1)^2 square: each positive pixel grows `radius` px on every side
    (a 2-px line becomes 2 + 2*radius px wide)."""
    out = np.asarray(mask) > 0
    if radius <= 0:
        return out
    for axis in (0, 1):
        grown = out.copy()
        n = out.shape[axis]
        for shift in range(1, min(radius, n - 1) + 1):
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(0, n - shift), slice(shift, n)
            grown[tuple(lo)] |= out[tuple(hi)]
            grown[tuple(hi)] |= out[tuple(lo)]
        out = grown
    return out


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else math.nan


class SegmentationMetrics:
    """One 2x2 confusion matrix (rows ground truth, columns prediction; 0 background, 1 the class)
    accumulated over every pixel of every `update` — a global, batch-size-independent aggregate."""

    def __init__(self) -> None:
        self.confusion = np.zeros((2, 2), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one mask pair of the same shape; any value > 0 counts as the class."""
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
        index = (gt.ravel() > 0).astype(np.int64) * 2 + (pred.ravel() > 0)
        self.confusion += np.bincount(index, minlength=4).reshape(2, 2)

    def iou(self, cls: int = 1) -> float:
        c = self.confusion
        return _ratio(c[cls, cls], c[cls, :].sum() + c[:, cls].sum() - c[cls, cls])

    @property
    def miou(self) -> float:
        """Mean of IoU(background) and IoU(class) (the drivable-area mIoU of the YOLOP lineage)."""
        return (self.iou(0) + self.iou(1)) / 2

    @property
    def pixel_acc(self) -> float:
        return _ratio(np.trace(self.confusion), self.confusion.sum())

    @property
    def recall(self) -> float:
        """Sensitivity of the class: TP / (TP + FN) (YOLOP's lane 'accuracy')."""
        return _ratio(self.confusion[1, 1], self.confusion[1].sum())

    @property
    def specificity(self) -> float:
        return _ratio(self.confusion[0, 0], self.confusion[0].sum())

    @property
    def precision(self) -> float:
        return _ratio(self.confusion[1, 1], self.confusion[:, 1].sum())

    @property
    def balanced_acc(self) -> float:
        """(sensitivity + specificity) / 2 (A-YOLOM's lane 'accuracy')."""
        return (self.recall + self.specificity) / 2
