"""model.evaluate end to end with an in-memory dataset and scripted predictors; the `val` command."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from engines.errors import RoadsightError
from engines.perception import Perception
from model.evaluate import evaluate, format_report

H, W = 24, 40
NAMES = ("vehicle", "person")


class MemoryDataset:
    """Stand-in for model.bdd.BDDDataset: random boxes and masks, counts how often read() is called."""

    def __init__(self, n: int = 7, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.names = NAMES
        self.samples = []
        self.reads = 0
        for i in range(n):
            k = int(rng.integers(0, 4))
            xy = rng.uniform(0, 25, (k, 2))
            boxes = np.concatenate([xy, xy + rng.uniform(4, 14, (k, 2))], 1).astype(np.float32)
            drivable = (rng.random((H, W)) < rng.uniform(0.1, 0.9)).astype(np.uint8)
            lane = np.zeros((H, W), np.uint8)
            lane[:, int(rng.integers(3, W - 3))] = 1  # one thin vertical line, away from the edges
            image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
            self.samples.append(
                SimpleNamespace(name=f"img{i}", image=image, boxes=boxes, classes=rng.integers(0, 2, k), drivable=drivable, lane=lane)
            )

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, i: int):
        self.reads += 1
        return self.samples[i]


class Oracle:
    """Returns the ground truth (looked up by frame identity), optionally transformed."""

    def __init__(self, dataset, masks=lambda s, name: getattr(s, name), boxes=True):
        self.by_id = {id(s.image): s for s in dataset.samples}
        self.masks, self.boxes, self.calls = masks, boxes, []
        self.conf, self.iou, self.meta = 0.001, 0.6, SimpleNamespace(imgsz=(384, 640))

    def __call__(self, frames):
        self.calls.append(len(frames))
        out = []
        for frame in frames:
            s = self.by_id[id(frame)]
            n = len(s.boxes) if self.boxes else 0
            out.append(
                Perception(
                    boxes=s.boxes[:n].copy(),
                    scores=np.linspace(0.9, 0.5, n).astype(np.float32),
                    class_ids=s.classes[:n].astype(np.int64),
                    names=NAMES,
                    drivable=self.masks(s, "drivable"),
                    lane=self.masks(s, "lane"),
                )
            )
        return out


def test_ground_truth_predictor_scores_perfectly():
    data = MemoryDataset()
    oracle = Oracle(data)
    out = evaluate(oracle, data, batch=3, progress=False)
    det = out["detection"]
    assert det["mAP50"] == pytest.approx(0.995) and det["mAP50-95"] == pytest.approx(0.995)  # ultralytics' ceiling
    assert det["recall"] == 1.0 and det["precision"] == pytest.approx(1.0)
    assert out["drivable"]["mIoU"] == 1.0 and out["drivable"]["IoU"] == 1.0 and out["drivable"]["pixel_acc"] == 1.0
    assert out["lane"]["IoU"] == 1.0 and out["lane"]["balanced_acc"] == 1.0 and out["lane"]["recall"] == 1.0
    assert out["images"] == 7 and out["instances"] == sum(len(s.boxes) for s in data.samples) > 0
    assert oracle.calls == [3, 3, 1] and data.reads == 7
    assert out["map50"] == det["mAP50"] and out["drivable_miou"] == 1.0 and out["lane_iou"] == 1.0  # training's fitness keys
    assert "NMS conf 0.001 / IoU 0.6" in out["protocol"]["detection"] and "40x24 letterboxed to 640x384" in out["protocol"]["input"]
    assert "whole set" in out["protocol"]["aggregation"]
    json.dumps(out, allow_nan=False)  # JSON-ready: no numpy types, no NaN


def test_empty_predictor_scores_zero():
    data = MemoryDataset()
    empty = Oracle(data, masks=lambda s, name: np.zeros_like(getattr(s, name)), boxes=False)
    out = evaluate(empty, data, batch=4, progress=False)
    assert out["detection"]["mAP50"] == 0.0 and out["detection"]["recall"] == 0.0
    assert out["drivable"]["IoU"] == 0.0 and out["lane"]["IoU"] == 0.0 and out["lane"]["recall"] == 0.0
    assert out["lane"]["balanced_acc"] == 0.5  # specificity 1, sensitivity 0
    # mIoU keeps the background term: mean(IoU_bg, 0) with IoU_bg = background share of all pixels
    drivable = np.stack([s.drivable for s in data.samples])
    assert out["drivable"]["mIoU"] == pytest.approx((1 - drivable.mean()) / 2)


def test_masks_accumulate_globally_and_batch_size_does_not_matter():
    data = MemoryDataset(n=5, seed=1)
    shifted = Oracle(data, masks=lambda s, name: np.roll(getattr(s, name), 3, axis=1))
    results = [evaluate(shifted, data, batch=b, progress=False) for b in (1, 2, 5)]
    assert results[0] == results[1] == results[2]
    pred = np.stack([np.roll(s.lane, 3, axis=1) for s in data.samples]) > 0
    gt = np.stack([s.lane for s in data.samples]) > 0
    tp, fp, fn, tn = (pred & gt).sum(), (pred & ~gt).sum(), (~pred & gt).sum(), (~pred & ~gt).sum()
    assert results[0]["lane"]["IoU"] == pytest.approx(tp / (tp + fp + fn))
    assert results[0]["lane"]["balanced_acc"] == pytest.approx((tp / (tp + fn) + tn / (tn + fp)) / 2)
    pred = np.stack([np.roll(s.drivable, 3, axis=1) for s in data.samples]) > 0
    gt = np.stack([s.drivable for s in data.samples]) > 0
    iou1 = (pred & gt).sum() / (pred | gt).sum()
    iou0 = (~pred & ~gt).sum() / (~pred | ~gt).sum()
    assert results[0]["drivable"]["mIoU"] == pytest.approx((iou0 + iou1) / 2)


def test_lane_dilation_and_limit():
    data = MemoryDataset(n=4, seed=2)
    from model.metrics import dilate

    wide = Oracle(data, masks=lambda s, name: dilate(getattr(s, name), 2).astype(np.uint8))
    out = evaluate(wide, data, progress=False, limit=3, lane_dilate=2)
    assert out["lane"]["IoU_dilated"] == 1.0 and out["lane"]["IoU"] == pytest.approx(1 / 5)  # 1-px line in a 5-px band
    assert out["images"] == 3 and data.reads == 3 and "dilated by 2 px" in out["protocol"]["lane"]
    assert "IoU_dilated" not in evaluate(wide, data, progress=False, limit=1)["lane"]


def test_missing_masks_skip_the_task_and_wrong_sizes_raise():
    data = MemoryDataset(n=2)
    out = evaluate(Oracle(data, masks=lambda s, name: None), data, progress=False)
    assert "drivable" not in out and "lane" not in out and "drivable_miou" not in out and "map50" in out
    small = Oracle(data, masks=lambda s, name: np.zeros((H // 2, W // 2), np.uint8))
    with pytest.raises(RoadsightError, match="frame size"):
        evaluate(small, data, progress=False)
    with pytest.raises(RoadsightError, match="one Perception per frame"):
        evaluate(lambda frames: [], data, progress=False)
    other = Oracle(data)
    other.meta = SimpleNamespace(imgsz=(384, 640), names=("vehicle",))
    with pytest.raises(RoadsightError, match="classes differ"):
        evaluate(other, data, progress=False)
    with pytest.raises(RoadsightError, match="empty"):
        evaluate(Oracle(data), MemoryDataset(n=0), progress=False)


def test_report_shows_numbers_beside_protocol():
    data = MemoryDataset()
    out = evaluate(Oracle(data), data, progress=False, lane_dilate=1)
    console = Console(record=True, width=160)
    console.print(format_report(out))
    text = console.export_text()
    for expected in ("mAP50", "99.5", "recall (YOLOP)", "mIoU", "100.0", "balanced acc", "IoU dilated", "NMS conf 0.001", "whole set"):
        assert expected in text, expected
    assert "vehicle AP50" in text  # two classes: per-class rows


def _val_app() -> typer.Typer:
    from model import cli

    app = typer.Typer()
    cli.register(app)
    return app


def test_val_command_clear_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(_val_app(), ["val", "--weights", str(tmp_path / "nope.onnx"), "--data", str(tmp_path)])
    assert isinstance(result.exception, RoadsightError) and "nope.onnx does not exist" in str(result.exception)
    weights = tmp_path / "m.onnx"
    weights.write_bytes(b"")
    result = runner.invoke(_val_app(), ["val", "--weights", str(weights), "--data", str(tmp_path / "data")])
    assert isinstance(result.exception, RoadsightError) and "images/val" in str(result.exception)
    assert "\n" not in str(result.exception)


def test_val_command_end_to_end_on_tiny_onnx(tmp_path):
    """Real files in the BDD100K layout, the tiny ONNX model (white 8x8 cell -> a 16x16 box; G -> drivable,
    B -> lane), engines.Predictor and the CLI: a perfect model by construction."""
    import cv2
    from tiny_model import make_tiny_onnx

    root = tmp_path / "data"
    for sub in ("images", "det_annotations", "da_seg_annotations", "ll_seg_annotations"):
        (root / sub / "val").mkdir(parents=True)
    for i, (cx, cy) in enumerate(((2, 2), (9, 5), (5, 3))):
        image = np.zeros((64, 128, 3), np.uint8)
        image[:, 64:, 1] = 255  # right half green: drivable
        image[:, 40:48, 0] = 255  # a blue column: lane
        image[cy * 8 : cy * 8 + 8, cx * 8 : cx * 8 + 8] = 255  # a white cell: vehicle (and drivable, lane)
        cv2.imwrite(str(root / "images/val" / f"f{i}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 100])
        x, y = cx * 8 + 4, cy * 8 + 4
        objects = [{"category": "car", "box2d": {"x1": x - 8, "y1": y - 8, "x2": x + 8, "y2": y + 8}}]
        (root / "det_annotations/val" / f"f{i}.json").write_text(json.dumps({"name": f"f{i}", "frames": [{"objects": objects}]}))
        cv2.imwrite(str(root / "da_seg_annotations/val" / f"f{i}.png"), (image[:, :, 1] > 127).astype(np.uint8) * 255)
        cv2.imwrite(str(root / "ll_seg_annotations/val" / f"f{i}.png"), (image[:, :, 0] > 127).astype(np.uint8) * 255)
    weights = make_tiny_onnx(tmp_path / "tiny.onnx", imgsz=(64, 128), batch=None)
    out_json = tmp_path / "val.json"
    result = CliRunner().invoke(
        _val_app(), ["val", "--weights", str(weights), "--data", str(root), "--batch", "2", "--json", str(out_json)]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = json.loads(out_json.read_text())
    assert out["images"] == 3 and out["instances"] == 3
    assert out["detection"]["mAP50"] == pytest.approx(0.995) and out["detection"]["recall"] == 1.0
    assert out["drivable"]["mIoU"] > 0.99 and out["lane"]["IoU"] > 0.99
    assert "mAP50" in result.output and "128x64 letterboxed to 128x64" in out["protocol"]["input"]


def test_metrics_and_evaluate_import_without_torch():
    """`roadsight val` on an .onnx must work in a runtime-only install: no torch/ultralytics imports."""
    import subprocess

    import torch_free

    code = "import model.evaluate, model.metrics\nassert not training_stack_loaded(), training_stack_loaded()"
    result = subprocess.run(torch_free.script(code), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
