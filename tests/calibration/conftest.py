"""Fixtures of the calibration tests: a folder of scene-like frames and a tiny exported RoadNet."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
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
    finals = [h[-1] for h in (*model.detect.cv3, *model.detect.cv2)] + [model.drivable_head.pred, model.lane_head.pred]
    inputs = {}
    hooks = [m.register_forward_hook(lambda m, i, o: inputs.__setitem__(m, i[0])) for m in finals]
    images = torch.from_numpy(np.stack([scene(i, 64, 96)[..., ::-1].transpose(2, 0, 1) for i in range(4)]) / 255.0).float()
    with torch.no_grad():
        model.eval()(images)
        for m in finals:  # unit-variance logits: weight std 1 / (input std * sqrt(fan_in)), no bias
            x = inputs[m] - inputs[m].mean(dim=(0, 2, 3), keepdim=True)
            m.weight.normal_(0, 1.0 / (float(x.std()) * m.weight[0].numel() ** 0.5))
            m.bias.zero_()
    for hook in hooks:
        hook.remove()
    weights = save_checkpoint(folder / "tiny.pt", model, cfg)
    onnx_path = export_onnx(ExportOptions(weights=weights, out=folder / "tiny.onnx", parity_samples=1)).path
    return weights, onnx_path
