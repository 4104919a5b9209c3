"""Fixtures of the calibration tests: a folder of scene-like frames and a tiny exported RoadNet."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from calib_helpers import scene


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(12):
        cv2.imwrite(str(folder / f"f{i:02d}.png"), scene(i))
    return folder


@pytest.fixture(scope="session")
def tiny_roadnet(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, FP32 ONNX) of an n-size clipped+gated RoadNet at 64x96 with input-sensitive heads.

    Random-init heads are bias-dominated (outputs barely depend on the input), so the final head convs get
    larger weights: the outputs then vary with the image and INT8 errors show up in them.
    """
    import torch

    from model.config import ModelConfig
    from model.export import ExportOptions, export_onnx
    from model.network import RoadNet, save_checkpoint

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("roadnet")
    cfg = ModelConfig(size="n", attention="clipped+gated", imgsz=(64, 96))
    model = RoadNet(cfg)
    with torch.no_grad():
        for head in (*model.detect.cv3, *model.detect.cv2):
            head[-1].weight.normal_(0, 0.3)
        for seg in (model.drivable_head, model.lane_head):
            seg.pred.weight.normal_(0, 0.5)
    weights = save_checkpoint(folder / "tiny.pt", model, cfg)
    onnx_path = export_onnx(ExportOptions(weights=weights, out=folder / "tiny.onnx", parity_samples=1)).path
    return weights, onnx_path
