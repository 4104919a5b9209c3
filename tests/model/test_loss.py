"""Multi-task loss: segmentation terms against hand computations, and overfitting one synthetic batch."""

import pytest

from model.ultra import torch
import torch.nn.functional as F
from model.config import ModelConfig
from model.loss import RoadLoss, dice_loss, focal_loss, tversky_loss
from model.network import RoadNet

H, W = 128, 192


def synthetic_batch(bs: int = 2) -> dict:
    """A bright rectangle (the vehicle), a painted band (drivable) and a thin line (lane) per image."""
    img = torch.full((bs, 3, H, W), 0.2)
    drivable = torch.zeros(bs, H, W, dtype=torch.uint8)
    lane = torch.zeros(bs, H, W, dtype=torch.uint8)
    boxes = []
    for i in range(bs):
        x1, y1, x2, y2 = 40 + 30 * i, 30, 100 + 30 * i, 70
        img[i, :, y1:y2, x1:x2] = 0.9
        drivable[i, 90:, :] = 1
        img[i, 1, 90:, :] = 0.5
        lane[i, 90:, 60 + 20 * i : 63 + 20 * i] = 1  # 3 px wide
        img[i, :, 90:, 60 + 20 * i : 63 + 20 * i] = 1.0
        boxes.append([(x1 + x2) / 2 / W, (y1 + y2) / 2 / H, (x2 - x1) / W, (y2 - y1) / H])
    return {
        "img": img,
        "batch_idx": torch.arange(bs, dtype=torch.float32),
        "cls": torch.zeros(bs, 1),
        "bboxes": torch.tensor(boxes),
        "drivable": drivable,
        "lane": lane,
    }


def test_segmentation_terms_match_hand_computation():
    logits = torch.tensor([[2.0, -1.0], [0.5, -3.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = logits.sigmoid()
    tp, fp, fn = (p * target).sum(), (p * (1 - target)).sum(), ((1 - p) * target).sum()
    torch.testing.assert_close(dice_loss(logits, target, eps=0.0), 1 - 2 * tp / (p.sum() + target.sum()))
    torch.testing.assert_close(tversky_loss(logits, target, 0.3, 0.7, eps=0.0), 1 - tp / (tp + 0.3 * fp + 0.7 * fn))
    p_t = torch.where(target > 0, p, 1 - p)
    torch.testing.assert_close(focal_loss(logits, target, 2.0), (-(1 - p_t) ** 2 * p_t.log()).mean())
    torch.testing.assert_close(focal_loss(logits, target, 0.0), F.binary_cross_entropy_with_logits(logits, target))
    perfect = torch.where(target > 0, 20.0, -20.0)
    assert dice_loss(perfect, target) < 1e-6 and tversky_loss(perfect, target, 0.3, 0.7) < 1e-6


def test_loss_items_and_scale():
    torch.manual_seed(0)
    model = RoadNet(ModelConfig(imgsz=(H, W))).train()
    batch = synthetic_batch()
    total, items = RoadLoss(model)(model(batch["img"]), batch)
    assert set(items) == {"box", "cls", "dfl", "drivable", "lane", "total"}
    assert all(v > 0 for v in items.values())
    parts = items["box"] + items["cls"] + items["dfl"] + 1.0 * items["drivable"] + 2.0 * items["lane"]
    assert items["total"] == pytest.approx(parts, rel=1e-5)
    assert total.item() == pytest.approx(2 * items["total"], rel=1e-5)  # times batch size


def test_loss_decreases_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = RoadNet(ModelConfig(size="n", attention="clipped+gated", imgsz=(H, W))).train()
    batch = synthetic_batch()
    criterion = RoadLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(30):
        total, items = criterion(model(batch["img"]), batch)
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(items)
    first, last = history[0], history[-1]
    assert last["total"] < 0.5 * first["total"]
    for key in ("cls", "drivable", "lane"):
        assert last[key] < first[key], key
