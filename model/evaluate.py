"""Evaluate any predictor (PyTorch, ONNX, TensorRT through `engines.Predictor`) on a labelled dataset.

Torch-free: `roadsight val` on an .onnx/.engine works in a runtime-only install. The protocol (what is
compared, at which size, how it is aggregated) is returned with the numbers and printed beside them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from engines.errors import RoadsightError
from model.metrics import DetectionMetrics, SegmentationMetrics, dilate

EVAL_CONF, EVAL_IOU = 0.001, 0.6  # the evaluation protocol's NMS settings (YOLOP's)


class LabelledDataset(Protocol):
    """What evaluate needs from `model.bdd.BDDDataset`."""

    names: Sequence[str]

    def __len__(self) -> int: ...

    def read(self, i: int) -> Any: ...  # Sample(name, image, boxes, classes, drivable, lane)


Predict = Callable[[list[np.ndarray]], list[Any]]  # frames (BGR) -> list[engines.perception.Perception]


def protocol(
    conf: float | None = None,
    iou: float | None = None,
    imgsz: tuple[int, int] | None = None,
    lane_dilate: int = 0,
    frame_sizes: Sequence[tuple[int, int]] = (),
) -> dict:
    """The evaluation protocol as text, per task (docs/ARCHITECTURE.md 'Evaluation protocol');
    sizes are (height, width)."""
    nms = f"NMS conf {conf:g} / IoU {iou:g}" if conf is not None and iou is not None else "NMS as configured in the predictor"
    size = f"{imgsz[1]}x{imgsz[0]}" if imgsz else "the model's input size"
    frames = ", ".join(f"{w}x{h}" for h, w in sorted(frame_sizes)) or "frames"
    out = {
        "input": f"{frames} letterboxed to {size} (pad 114); results mapped back to frame pixels",
        "detection": (
            f"{nms}; boxes in frame pixels; greedy matching per IoU threshold 0.50:0.95 (ultralytics); AP with "
            "101-point interpolation (ultralytics: a perfect detector scores 99.5); mAP = mean over classes with "
            "ground truth; recall = YOLOP rule (recall at the confidence maximising mean recall, ~ the NMS "
            "threshold); precision = at max mean F1"
        ),
        "drivable": "2-class mIoU = mean(IoU background, IoU drivable); IoU = drivable class; pixel accuracy",
        "lane": (
            "IoU = lane class; balanced_acc = (sensitivity + specificity) / 2 (A-YOLOM); recall = lane sensitivity "
            "(YOLOP's 'accuracy')"
        ),
        "masks": "masks compared at frame size after the letterbox padding is removed; any value > 0 is the class",
        "aggregation": "one confusion matrix per task over every pixel of the whole set (not per image or batch)",
    }
    if lane_dilate:
        out["lane"] += f"; IoU_dilated: ground truth dilated by {lane_dilate} px each side (square), train-width labels"
    return out


def _check_mask(name: str, pred: np.ndarray, gt: np.ndarray, sample_name: str) -> None:
    if pred.shape != gt.shape:
        raise RoadsightError(
            f"evaluate: {name} mask of {sample_name} is {pred.shape[1]}x{pred.shape[0]}. Expected the frame size "
            f"{gt.shape[1]}x{gt.shape[0]}, got {pred.shape[1]}x{pred.shape[0]}. The predictor must return masks at frame size."
        )


def _clean(value: Any) -> Any:
    """NaN -> None, numpy scalars -> Python, recursively (JSON-ready)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


class _Scores:
    """The metrics of one evaluation: detection, one confusion matrix per mask task (+ dilated lane)."""

    def __init__(self, names: Sequence[str], lane_dilate: int):
        self.det = DetectionMetrics(names)
        self.seg = {"drivable": SegmentationMetrics(), "lane": SegmentationMetrics()}
        self.seen = {"drivable": 0, "lane": 0}
        self.lane_dilate = lane_dilate
        self.lane_wide = SegmentationMetrics()
        self.frame_sizes: set[tuple[int, int]] = set()

    def add(self, sample: Any, result: Any) -> None:
        self.frame_sizes.add(tuple(sample.image.shape[:2]))
        self.det.update(result.boxes, result.scores, result.class_ids, sample.boxes, sample.classes)
        for name, metric in self.seg.items():
            pred, gt = getattr(result, name), getattr(sample, name)
            if pred is None or gt is None:
                continue
            _check_mask(name, pred, gt, sample.name)
            metric.update(pred, gt)
            self.seen[name] += 1
            if name == "lane" and self.lane_dilate > 0:
                self.lane_wide.update(pred, dilate(gt, self.lane_dilate))

    def results(self) -> dict[str, Any]:
        out: dict[str, Any] = {"detection": self.det.compute()}
        if self.seen["drivable"]:
            d = self.seg["drivable"]
            out["drivable"] = {"mIoU": d.miou, "IoU": d.iou(1), "pixel_acc": d.pixel_acc, "images": self.seen["drivable"]}
        if self.seen["lane"]:
            ln = self.seg["lane"]
            out["lane"] = {"IoU": ln.iou(1), "balanced_acc": ln.balanced_acc, "recall": ln.recall, "images": self.seen["lane"]}
            if self.lane_dilate > 0:
                out["lane"]["IoU_dilated"] = self.lane_wide.iou(1)
        return out


def evaluate(
    predict: Predict,
    dataset: LabelledDataset,
    batch: int = 8,
    progress: bool = True,
    limit: int | None = None,
    lane_dilate: int = 0,
) -> dict:
    """Run `predict` over `dataset` (first `limit` images) in batches and score it.

    Returns a JSON-ready dict: "detection" (mAP50, mAP50-95, recall, precision, ..., "classes"),
    "drivable" (mIoU, IoU, pixel_acc), "lane" (IoU, balanced_acc, recall[, IoU_dilated]), "protocol",
    "images", "instances", plus the flat headline numbers "map50", "drivable_miou", "lane_iou" (what
    training's fitness reads). A task whose masks the predictor never returns is left out.
    `lane_dilate` > 0 also scores lane IoU against ground truth dilated by that many px per side.
    The protocol text takes conf, iou, imgsz and the class names from the predictor's `conf`, `iou` and
    `meta` attributes when it has them (as `engines.Predictor` does).
    """
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise RoadsightError("evaluate: the dataset is empty. Expected at least one labelled image, got 0.")
    if batch < 1:
        raise RoadsightError(f"evaluate: batch must be at least 1, got {batch}.")
    meta = getattr(predict, "meta", None)
    model_names = getattr(meta, "names", None)
    if model_names is not None and tuple(model_names) != tuple(dataset.names):
        raise RoadsightError(
            f"evaluate: the model's classes differ from the dataset's. Expected {', '.join(dataset.names)}, got "
            f"{', '.join(model_names)}. Evaluate on data with the class mapping the model was trained with."
        )
    scores = _Scores(dataset.names, lane_dilate)
    starts = range(0, n, batch)

    def read_batch(start: int) -> list:
        return [dataset.read(i) for i in range(start, min(start + batch, n))]

    columns = (TextColumn("val"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True, disable=not progress) as bar, ThreadPoolExecutor(1) as pool:
        task = bar.add_task("val", total=n)
        pending = pool.submit(read_batch, starts[0])  # decode the next batch while this one is predicted
        for k in range(len(starts)):
            samples = pending.result()
            if k + 1 < len(starts):
                pending = pool.submit(read_batch, starts[k + 1])
            results = predict([s.image for s in samples])
            if len(results) != len(samples):
                raise RoadsightError(
                    f"evaluate: the predictor returned {len(results)} results for {len(samples)} frames. "
                    "Expected one Perception per frame."
                )
            for sample, result in zip(samples, results):
                scores.add(sample, result)
            bar.advance(task, len(samples))

    out = scores.results()
    conf, iou = getattr(predict, "conf", None), getattr(predict, "iou", None)
    out["protocol"] = protocol(conf, iou, getattr(meta, "imgsz", None), lane_dilate, sorted(scores.frame_sizes))
    out["images"] = n
    out["instances"] = scores.det.instances
    headline = {
        "map50": out["detection"]["mAP50"],
        "drivable_miou": out.get("drivable", {}).get("mIoU"),
        "lane_iou": out.get("lane", {}).get("IoU"),
    }
    out.update({k: v for k, v in headline.items() if v is not None and not math.isnan(v)})
    return _clean(out)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def format_report(results: dict) -> Table:
    """A rich table: one row per number, with the protocol that produced it beside it."""
    proto = results.get("protocol", {})
    table = Table(
        title=f"roadsight val: {results.get('images', 0)} images, {results.get('instances', 0)} instances",
        caption=f"{proto.get('input', '')}\n{proto.get('masks', '')}\n{proto.get('aggregation', '')}",
    )
    table.add_column("task")
    table.add_column("metric")
    table.add_column("%", justify="right")
    table.add_column("protocol", overflow="fold", ratio=1)
    det = results.get("detection", {})
    det_rows = [("mAP50", "mAP50"), ("mAP50-95", "mAP50-95"), ("recall (YOLOP)", "recall"), ("precision @max F1", "precision")]
    classes = det.get("classes", {})
    if len(classes) > 1:
        det_rows += [(f"{name} AP50 ({c['instances']})", (name, "AP50")) for name, c in classes.items()]
    for i, (label, key) in enumerate(det_rows):
        value = classes[key[0]][key[1]] if isinstance(key, tuple) else det.get(key)
        first, last = i == 0, i == len(det_rows) - 1
        table.add_row("detection" if first else "", label, _pct(value), proto.get("detection", "") if first else "", end_section=last)
    for task, rows in (
        ("drivable", (("mIoU", "mIoU"), ("IoU", "IoU"), ("pixel acc", "pixel_acc"))),
        ("lane", (("IoU", "IoU"), ("IoU dilated", "IoU_dilated"), ("balanced acc", "balanced_acc"), ("recall", "recall"))),
    ):
        if task not in results:
            continue
        present = [(label, key) for label, key in rows if key in results[task]]
        for i, (label, key) in enumerate(present):
            first, last = i == 0, i == len(present) - 1
            table.add_row(task if first else "", label, _pct(results[task][key]), proto.get(task, "") if first else "", end_section=last)
    return table
