"""The accuracy gate passes a sane INT8 model and fails one that loses accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from tiny_model import make_tiny_model

from calibration.cache import calibrate
from calibration.gate import compare, gate
from calibration.quantize import quantize

H, W = 64, 96


@dataclass
class Sample:
    name: str
    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    drivable: np.ndarray
    lane: np.ndarray


class Scenes:
    """Frames the tiny model reads: red square = vehicle, G=0.7 bottom = drivable, B=1 column = lane."""

    names = ("vehicle",)

    def __init__(self, n: int = 6):
        self.samples = []
        rng = np.random.default_rng(0)
        for i in range(n):
            img = np.full((H, W, 3), 40, np.uint8)
            img[: H // 2] = cv2.GaussianBlur(rng.integers(0, 90, (H // 2, W, 3), dtype=np.uint8), (9, 9), 4)
            drivable = np.zeros((H, W), np.uint8)
            drivable[40:] = 1
            img[40:, :, 1] = 178  # G = 0.7: drivable for a threshold of 0.5, not for 0.8
            lane = np.zeros((H, W), np.uint8)
            x = 8 + 8 * i
            lane[40:, x : x + 4] = 1
            img[40:, x : x + 4, 0] = 255  # BGR: blue channel = lane
            cx, cy = 44 if i % 2 else 12, 20 if i % 2 else 12  # a fully red 8x8 cell -> exact 16x16 box
            img[cy - 8 : cy + 8, cx - 8 : cx + 8, 2] = 255
            box = np.array([[cx - 8, cy - 8, cx + 8, cy + 8]], np.float32)
            self.samples.append(Sample(f"s{i}", img, box, np.zeros(1, np.int64), drivable, lane))

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, i: int) -> Sample:
        return self.samples[i]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """FP32 tiny model, its real CPU INT8 quantization, and a broken copy (seg threshold moved to 0.8)."""
    folder = tmp_path_factory.mktemp("gate")
    proto = make_tiny_model((H, W))
    onnx.save(proto, folder / "fp32.onnx")
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.output[0] == "seg_offset":
            node.attribute[0].t.CopyFrom(numpy_helper.from_array(np.array(0.8, np.float32), "seg_offset"))
    onnx.save(proto, folder / "broken.onnx")
    frames = folder / "frames"
    frames.mkdir()
    for s in Scenes().samples:
        cv2.imwrite(str(frames / f"{s.name}.png"), s.image)
    _, cache = calibrate(folder / "fp32.onnx", [str(frames)], n=6, out=folder / "calib.npz")
    int8 = quantize(folder / "fp32.onnx", cache, target="cpu", out=folder / "int8.onnx").path
    return folder / "fp32.onnx", int8, folder / "broken.onnx"


def test_gate_passes_sane_int8(models):
    fp32, int8, _ = models
    result = gate(fp32, int8, Scenes(), max_drop=1.0)
    assert set(result.rows) == {"map50", "drivable_miou", "lane_iou"}
    assert result.rows["drivable_miou"][0] > 95 and result.rows["lane_iou"][0] > 95  # the FP32 model is right
    assert result.rows["map50"][0] > 50
    assert result.passed, result.to_json()


def test_gate_fails_a_model_that_loses_accuracy(models):
    fp32, _, broken = models
    result = gate(fp32, broken, Scenes(), max_drop=1.0)
    assert not result.passed
    assert "drivable_miou" in result.failures and result.rows["drivable_miou"][2] > 20
    assert "lane_iou" not in result.failures  # lane pixels are B=1.0: still above 0.8


def test_negative_max_drop_fails_even_identical_models():
    same = {"map50": 0.5, "drivable_miou": 0.9, "lane_iou": 0.4}
    assert compare(same, same, 0.0).passed
    assert compare(same, same, -0.5).failures == ["map50", "drivable_miou", "lane_iou"]
    drop = compare(same, {**same, "lane_iou": 0.37}, 2.5)
    assert drop.failures == ["lane_iou"] and drop.rows["lane_iou"][2] == pytest.approx(3.0)
