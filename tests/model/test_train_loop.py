"""model.train.train end to end on a hand-made in-memory dataset: logs, checkpoints, best.pt, --resume."""

import json
import sys
import types

import pytest

from engines.errors import RoadsightError

from model.ultra import torch
from model.network import load_checkpoint, read_checkpoint
from model.train import train
from model.classes import class_map
from model.train_utils import TrainOptions, fine_tune_config, lr_at
from tests.model.test_loss import H, W, synthetic_batch


class TinySet(torch.utils.data.Dataset):
    """Items in the TrainDataset format of ARCHITECTURE.md, from the loss test's synthetic batch."""

    names = ("vehicle",)

    def __init__(self, root, split, imgsz, augment=True, class_map=None):
        assert imgsz == (H, W) and class_map.names == self.names
        self.batch = synthetic_batch(2)

    def summary(self):
        return "tiny set: 4 items"

    def __len__(self):
        return 4

    def __getitem__(self, i):
        b, j = self.batch, i % 2
        return {
            "img": (b["img"][j] * 255).to(torch.uint8),
            "cls": b["cls"][j : j + 1],
            "bboxes": b["bboxes"][j : j + 1],
            "drivable": b["drivable"][j],
            "lane": b["lane"][j],
        }


def collate(items):
    return {
        "img": torch.stack([it["img"] for it in items]),
        "batch_idx": torch.cat([torch.full((len(it["cls"]),), float(i)) for i, it in enumerate(items)]),
        "cls": torch.cat([it["cls"] for it in items]),
        "bboxes": torch.cat([it["bboxes"] for it in items]),
        "drivable": torch.stack([it["drivable"] for it in items]),
        "lane": torch.stack([it["lane"] for it in items]),
    }


@pytest.fixture
def fake_dataset(monkeypatch):
    module = types.ModuleType("model.dataset")
    module.TrainDataset, module.collate = TinySet, collate
    monkeypatch.setitem(sys.modules, "model.dataset", module)


def test_lr_schedule_warmup_then_cosine():
    assert lr_at(0, 100, 10, 1.0, 0.01) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0, 0.01) == pytest.approx(1.0)
    assert lr_at(10, 100, 10, 1.0, 0.01) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0, 0.01) == pytest.approx(0.505)
    assert lr_at(100, 100, 10, 1.0, 0.01) == pytest.approx(0.01)


def test_train_logs_checkpoints_and_resume(tmp_path, fake_dataset):
    out = tmp_path / "run"
    opts = dict(data=tmp_path / "data", out=out, imgsz=(H, W), batch=2, workers=0, warmup_epochs=1, attention="clipped")
    best = train(TrainOptions(epochs=2, **opts), validate=None)
    rows = json.loads((out / "results.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2]
    assert (out / "results.csv").read_text().splitlines()[0].startswith("epoch,lr,time_s,train_box")
    last = read_checkpoint(out / "last.pt")
    assert last["epoch"] == 1 and {"optimizer", "train_model", "ema_updates", "scaler"} <= set(last)
    assert last["ema_updates"] == 4  # 2 epochs x 2 steps
    assert last["best_fitness"] == pytest.approx(max(-r["train_total"] for r in rows))
    model = load_checkpoint(best)
    assert model.cfg.attention == "clipped" and not model.training

    calls = []

    def validate(ema_model):
        calls.append(ema_model.training)
        return {"map50": 0.5, "fitness": 0.5}

    train(TrainOptions(epochs=5, resume=True, val_every=3, **opts), validate=validate)
    rows = json.loads((out / "results.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5] and rows[2]["val_map50"] == 0.5 and "val_map50" not in rows[3]
    assert calls == [False, False]  # epochs 3 (val_every) and 5 (last), on the EMA model in eval mode
    lines = (out / "results.csv").read_text().splitlines()
    assert "val_map50" in lines[0].split(",") and len(lines) == 6  # header + 5 epochs, mixed columns
    last = read_checkpoint(out / "last.pt")
    assert last["epoch"] == 4 and last["ema_updates"] == 10
    with pytest.raises(RoadsightError, match="already finished"):
        train(TrainOptions(epochs=5, resume=True, **opts))


def test_weights_start_a_new_run_from_a_checkpoint(tmp_path, fake_dataset):
    opts = dict(data=tmp_path / "data", imgsz=(H, W), batch=2, workers=0, warmup_epochs=1, epochs=1)
    first = train(TrainOptions(out=tmp_path / "a", attention="clipped", **opts), validate=None)
    # lr 0: the weights stay where --weights put them; a fresh run (another seed) would start elsewhere
    tuned = train(TrainOptions(out=tmp_path / "b", weights=first, lr=0.0, seed=1, **opts), validate=None)
    start, after = read_checkpoint(first), read_checkpoint(tuned)
    assert after["config"]["attention"] == "clipped"  # the architecture comes from the checkpoint, not --attention
    conv = [k for k in start["model"] if k.endswith("conv.weight")]
    assert all(torch.equal(start["model"][k].float(), after["model"][k].float()) for k in conv)
    fresh = read_checkpoint(train(TrainOptions(out=tmp_path / "c", lr=0.0, seed=1, **opts), validate=None))
    assert not torch.equal(fresh["model"][conv[0]].float(), start["model"][conv[0]].float())
    with pytest.raises(RoadsightError, match="more than one of --weights, --pretrained and --resume"):
        TrainOptions(out=tmp_path / "b", weights=first, resume=True, **opts)


def test_fine_tune_config_moves_to_the_new_size_and_checks_classes(tmp_path):
    from model.config import ModelConfig

    stored = ModelConfig(attention="clipped", imgsz=(192, 320), names=("vehicle",)).to_dict()
    merged = class_map({"car": "vehicle", "bus": "vehicle"})  # same name, other categories: the run's map is kept
    cfg = fine_tune_config(stored, TrainOptions(data=tmp_path, imgsz=(384, 640)), merged)
    assert cfg.imgsz == (384, 640) and cfg.gamma == pytest.approx(-0.5 / 240) and cfg.attention == "clipped"
    assert cfg.class_map == {"car": "vehicle", "bus": "vehicle"} and stored["class_map"]["truck"] == "vehicle"
    with pytest.raises(RoadsightError, match="checkpoint detects"):
        fine_tune_config(stored, TrainOptions(data=tmp_path, classes="car,bus"), class_map("car,bus"))
    with pytest.raises(RoadsightError, match="--classes: unknown BDD100K category 'cars'"):
        TrainOptions(data=tmp_path, classes="cars,bus")


def test_default_validator_scores_ema_model_on_val_split(tmp_path):
    from model.config import ModelConfig
    from model.network import RoadNet
    from model.synth import synth_command
    from model.train_utils import default_validator

    synth_command(out=tmp_path, n=2, seed=0, val_fraction=1.0, video=None, frames=1)
    validate = default_validator(tmp_path)
    assert validate is not None and default_validator(tmp_path / "missing") is None
    model = RoadNet(ModelConfig(imgsz=(H, W))).train()
    metrics = validate(model)
    assert model.training  # the caller's mode is restored
    assert {"map50", "drivable_miou", "lane_iou", "fitness"} <= set(metrics)
    mean = (metrics["map50"] + metrics["drivable_miou"] + metrics["lane_iou"]) / 3
    assert metrics["fitness"] == pytest.approx(mean)
    assert 0 <= metrics["drivable_miou"] <= 1
