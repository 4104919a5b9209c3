"""--pretrained: ultralytics detection checkpoints built here (nothing downloads) transfer into RoadNet."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from model.ultra import torch
from ultralytics.nn.tasks import DetectionModel

from engines.errors import RoadsightError
from model.config import ModelConfig
from model.network import RoadNet, save_checkpoint
from model.pretrained import transfer


def roadnet(size: str = "n") -> RoadNet:
    return RoadNet(ModelConfig(size=size, attention="gated", names=("vehicle",), imgsz=(192, 320)))


def save_ultralytics(path, yaml: str):
    """A checkpoint as ultralytics writes it (the pickled model object, FP16, under "model"); random values
    everywhere, so every copied tensor differs from a fresh RoadNet's."""
    model = DetectionModel(yaml, nc=80, verbose=False)
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.rand_like(value) + 0.5)
    torch.save({"model": model.half(), "ema": None, "train_args": {}}, path)
    return model.float().state_dict()


def test_yolov8n_fills_backbone_neck_and_box_head(tmp_path):
    source = save_ultralytics(tmp_path / "yolov8n.pt", "yolov8n.yaml")
    net = roadnet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    copied, total = transfer(net, tmp_path / "yolov8n.pt")
    after = net.state_dict()
    for ours, theirs in [("stem.conv.weight", "model.0.conv.weight"), ("stage3.1.m.1.cv2.bn.bias", "model.4.m.1.cv2.bn.bias"),
                         ("bottom5.cv2.conv.weight", "model.21.cv2.conv.weight"), ("detect.cv2.2.2.weight", "model.22.cv2.2.2.weight")]:
        assert torch.equal(after[ours], source[theirs].half().float()), ours
    # the 80-class branch's last conv cannot go into a 1-class head, the segmentation heads have no counterpart
    assert torch.equal(after["detect.cv3.0.2.weight"], before["detect.cv3.0.2.weight"])
    assert torch.equal(after["lane_head.pred.weight"], before["lane_head.pred.weight"])
    changed = sum(not torch.equal(after[k], before[k]) for k in before if not k.endswith("num_batches_tracked"))
    assert copied > 250 and changed == copied
    assert total > copied


def test_yolo11n_transfers_what_matches(tmp_path):
    save_ultralytics(tmp_path / "yolo11n.pt", "yolo11n.yaml")
    copied, total = transfer(roadnet(), tmp_path / "yolo11n.pt")
    assert 0 < copied < total


def test_train_prints_the_transfer(tmp_path):
    from model.train import train
    from model.train_utils import TrainOptions
    from model.synth import generate

    save_ultralytics(tmp_path / "yolov8n.pt", "yolov8n.yaml")
    generate(tmp_path / "data", n=4, seed=0, val_fraction=0.0, width=320, height=192, workers=0)
    console = Console(file=io.StringIO(), width=200)
    opts = TrainOptions(data=tmp_path / "data", out=tmp_path / "run", imgsz=(96, 160), epochs=1, batch=2, workers=0,
                        pretrained=tmp_path / "yolov8n.pt")
    train(opts, console=console)
    printed = console.file.getvalue()
    assert re.search(r"^pretrained: transferred \d+ of \d+ tensors from .*yolov8n\.pt$", printed, re.M), printed


@pytest.mark.parametrize("case", ["text", "roadsight", "other_width", "missing"])
def test_not_a_usable_checkpoint_is_one_clear_error(tmp_path, case):
    path = tmp_path / "x.pt"
    if case == "text":
        path.write_text("not a checkpoint")
    elif case == "roadsight":
        save_checkpoint(path, roadnet(), roadnet().cfg)
    elif case == "other_width":
        save_ultralytics(path, "yolov8s.yaml")
    with pytest.raises(RoadsightError, match="--pretrained: .*ultralytics detection checkpoint") as error:
        transfer(roadnet(), path)
    assert "\n" not in str(error.value)
