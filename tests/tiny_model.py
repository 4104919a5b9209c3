"""A tiny ONNX model with roadsight's exact raw-output contract, built with onnx.helper (no torch).

What it computes, for an input `images` (B, 3, h, w) float32 RGB in [0, 1] (h, w multiples of 8):

- anchors: one per 8x8 cell, row-major over (y, x) like ultralytics `make_anchors`, A = (h/8) * (w/8);
- `boxes` (B, 4, A): constant xyxy boxes 16x16 centred on each cell, clipped to the image
  (the same for every image of the batch);
- `scores` (B, nc, A): class c = sigmoid(20 * (mean of input channel c % 3 over the cell - 0.6)),
  so a white cell scores ~1, letterbox grey (114/255) ~0.045, black ~0;
- `drivable` (B, h, w): sigmoid(20 * (G - 0.5)); `lane` (B, h, w): sigmoid(20 * (B - 0.5))
  (RGB channels 1 and 2), or uint8 (prob > 0.5) when seg_output == "mask".

`reference_outputs(images, ...)` computes the same in numpy, independently of ONNX.
The roadsight `ModelMeta` is stored in `metadata_props` like `roadsight export` does.
Tests import it as `from tiny_model import make_tiny_onnx` (tests/ is on sys.path via tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engines.meta import ModelMeta

CELL = 8  # anchor stride of the tiny model
BOX = 16  # box side in network-input pixels
SCORE_GAIN, SCORE_OFFSET = 20.0, 0.6
SEG_GAIN, SEG_OFFSET = 20.0, 0.5
OPSET = 17


def anchor_boxes(imgsz: tuple[int, int]) -> np.ndarray:
    """(4, A) float32 xyxy boxes of the tiny model, A = (h/8)*(w/8), row-major over cells."""
    h, w = imgsz
    ys, xs = np.meshgrid(np.arange(h // CELL), np.arange(w // CELL), indexing="ij")
    cx = (xs.ravel() + 0.5) * CELL
    cy = (ys.ravel() + 0.5) * CELL
    half = BOX / 2
    boxes = np.stack([cx - half, cy - half, cx + half, cy + half])
    boxes[[0, 2]] = boxes[[0, 2]].clip(0, w)
    boxes[[1, 3]] = boxes[[1, 3]].clip(0, h)
    return boxes.astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def reference_outputs(
    images: np.ndarray, names: tuple[str, ...] = ("vehicle",), seg_output: str = "prob"
) -> dict[str, np.ndarray]:
    """What the tiny model outputs for `images` (B, 3, h, w), computed with numpy only."""
    b, _, h, w = images.shape
    cells = images.reshape(b, 3, h // CELL, CELL, w // CELL, CELL).mean(axis=(3, 5))  # (B,3,h/8,w/8)
    channels = [c % 3 for c in range(len(names))]
    scores = _sigmoid(SCORE_GAIN * (cells[:, channels] - SCORE_OFFSET)).reshape(b, len(names), -1)
    drivable = _sigmoid(SEG_GAIN * (images[:, 1] - SEG_OFFSET))
    lane = _sigmoid(SEG_GAIN * (images[:, 2] - SEG_OFFSET))
    if seg_output == "mask":
        drivable, lane = (drivable > 0.5).astype(np.uint8), (lane > 0.5).astype(np.uint8)
    boxes = np.broadcast_to(anchor_boxes((h, w)), (b, 4, scores.shape[-1]))
    return {
        "boxes": boxes.astype(np.float32),
        "scores": scores.astype(np.float32),
        "drivable": drivable if seg_output == "mask" else drivable.astype(np.float32),
        "lane": lane if seg_output == "mask" else lane.astype(np.float32),
    }


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))


def _seg_nodes(out: str, channel: int, seg_output: str) -> list[onnx.NodeProto]:
    """images[:, channel] -> sigmoid(gain * (x - offset)) [-> uint8 mask]."""
    prob = out if seg_output == "prob" else f"{out}_prob"
    nodes = [
        _const(f"{out}_idx", np.array(channel, dtype=np.int64)),
        helper.make_node("Gather", ["images", f"{out}_idx"], [f"{out}_ch"], axis=1),
        helper.make_node("Sub", [f"{out}_ch", "seg_offset"], [f"{out}_c"]),
        helper.make_node("Mul", [f"{out}_c", "seg_gain"], [f"{out}_z"]),
        helper.make_node("Sigmoid", [f"{out}_z"], [prob]),
    ]
    if seg_output == "mask":
        nodes += [
            _const(f"{out}_half", np.array(0.5, dtype=np.float32)),
            helper.make_node("Greater", [prob, f"{out}_half"], [f"{out}_bool"]),
            helper.make_node("Cast", [f"{out}_bool"], [out], to=TensorProto.UINT8),
        ]
    return nodes


def make_tiny_model(
    imgsz: tuple[int, int] = (64, 96),
    names: tuple[str, ...] = ("vehicle",),
    seg_output: str = "prob",
    batch: int | None = 1,
) -> onnx.ModelProto:
    """The tiny model as an in-memory ModelProto (see the module docstring)."""
    h, w = imgsz
    if h % CELL or w % CELL:
        raise ValueError(f"imgsz {imgsz} must be a multiple of {CELL}")
    if seg_output not in ("prob", "mask"):
        raise ValueError(f"seg_output must be 'prob' or 'mask', got {seg_output!r}")
    nc, anchors = len(names), (h // CELL) * (w // CELL)
    weight = np.zeros((nc, 3, 1, 1), dtype=np.float32)
    weight[np.arange(nc), np.arange(nc) % 3] = SCORE_GAIN
    bias = np.full(nc, -SCORE_GAIN * SCORE_OFFSET, dtype=np.float32)
    seg_dtype = TensorProto.FLOAT if seg_output == "prob" else TensorProto.UINT8
    dim_b = batch if batch is not None else "batch"

    nodes = [
        _const("anchors", anchor_boxes(imgsz)[None]),  # (1,4,A)
        _const("score_w", weight),
        _const("score_b", bias),
        _const("score_shape", np.array([0, nc, anchors], dtype=np.int64)),
        _const("tail_shape", np.array([4, anchors], dtype=np.int64)),
        _const("seg_gain", np.array(SEG_GAIN, dtype=np.float32)),
        _const("seg_offset", np.array(SEG_OFFSET, dtype=np.float32)),
        # boxes: the anchors' constant boxes expanded to the batch size
        helper.make_node("Shape", ["images"], ["batch_dim"], start=0, end=1),
        helper.make_node("Concat", ["batch_dim", "tail_shape"], ["boxes_shape"], axis=0),
        helper.make_node("Expand", ["anchors", "boxes_shape"], ["boxes"]),
        # scores: cell means -> 1x1 conv -> sigmoid -> (B, nc, A)
        helper.make_node("AveragePool", ["images"], ["cells"], kernel_shape=[CELL, CELL], strides=[CELL, CELL]),
        helper.make_node("Conv", ["cells", "score_w", "score_b"], ["logits"], kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["logits"], ["score_map"]),
        helper.make_node("Reshape", ["score_map", "score_shape"], ["scores"]),
        *_seg_nodes("drivable", 1, seg_output),
        *_seg_nodes("lane", 2, seg_output),
    ]
    graph = helper.make_graph(
        nodes,
        "roadsight_tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [dim_b, 3, h, w])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [dim_b, 4, anchors]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [dim_b, nc, anchors]),
            helper.make_tensor_value_info("drivable", seg_dtype, [dim_b, h, w]),
            helper.make_tensor_value_info("lane", seg_dtype, [dim_b, h, w]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="roadsight-tests")
    model.ir_version = 8  # readable by every ONNX Runtime / TensorRT parser we support
    meta = ModelMeta(names=tuple(names), imgsz=(h, w), seg_output=seg_output, batch=batch, size="n")
    helper.set_model_props(model, meta.to_props())
    onnx.checker.check_model(model, full_check=True)
    return model


def make_tiny_onnx(
    path: str | Path,
    imgsz: tuple[int, int] = (64, 96),
    names: tuple[str, ...] = ("vehicle",),
    seg_output: str = "prob",
    batch: int | None = 1,
) -> Path:
    """Write the tiny model to `path` (batch=None: dynamic batch) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(make_tiny_model(imgsz, names, seg_output, batch), path)
    return path
