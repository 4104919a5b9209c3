"""Multi-task loss: ultralytics' v8DetectionLoss + BCE/Dice (drivable) + focal/Tversky (lane).

Segmentation logits (stride 4 or 2) are upsampled bilinearly to the target size before the loss, i.e. the
loss sees exactly what the eval forward outputs; thin lane labels are never down-sampled away.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import SimpleNamespace

from model.ultra import torch
import torch.nn.functional as F
from ultralytics.utils.loss import v8DetectionLoss

from model.network import RoadNet


ITEMS = ("box", "cls", "dfl", "drivable", "lane", "total")


@dataclass
class LossWeights:
    """Gains. box/cls/dfl are ultralytics' defaults (cfg/default.yaml); drivable/lane scale BCE+Dice and
    focal+Tversky (each term is ~[0, 1]). tversky_alpha weighs false positives, tversky_beta false negatives."""

    box: float = 7.5
    cls: float = 0.5
    dfl: float = 1.5
    drivable: float = 1.0
    lane: float = 2.0
    focal_gamma: float = 2.0
    tversky_alpha: float = 0.3
    tversky_beta: float = 0.7

    def to_dict(self) -> dict:
        return asdict(self)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the whole batch (one number; robust when an image has no positives)."""
    p = logits.sigmoid()
    inter = (p * target).sum()
    return 1.0 - (2.0 * inter + eps) / (p.sum() + target.sum() + eps)


def tversky_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float, beta: float, eps: float = 1.0) -> torch.Tensor:
    """1 - Tversky index TP / (TP + alpha FP + beta FN); beta > alpha favours recall of thin structures."""
    p = logits.sigmoid()
    tp = (p * target).sum()
    fp = (p * (1.0 - target)).sum()
    fn = ((1.0 - p) * target).sum()
    return 1.0 - (tp + eps) / (tp + alpha * fp + beta * fn + eps)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean binary focal loss (Lin et al. 2017) without class weighting: BCE * (1 - p_t)^gamma."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)
    return ((1.0 - p_t) ** gamma * bce).mean()


class RoadLoss:
    """Callable (model outputs in train mode, batch) -> (total, items).

    batch: ultralytics-style dict from model.dataset.collate: img, batch_idx, cls, bboxes (normalised xywh),
    drivable/lane (B, h, w) uint8 0/1. total is the per-image loss times the batch size (ultralytics'
    convention, so SGD learning rates carry over); items hold the per-image terms, detached.
    """

    def __init__(self, model: RoadNet, weights: LossWeights | None = None):
        self.w = weights or LossWeights()
        # v8DetectionLoss reads model.parameters(), model.args.{box,cls,dfl} and model.model[-1] (the Detect head)
        shim = SimpleNamespace(
            parameters=model.parameters,
            args=SimpleNamespace(box=self.w.box, cls=self.w.cls, dfl=self.w.dfl),
            model=[model.detect],
        )
        self.det = v8DetectionLoss(shim)

    def __call__(self, preds: dict, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        bs = preds["drivable"].shape[0]
        det_loss, _ = self.det(preds["det"], batch)  # (3,) box, cls, dfl with gains, times batch size
        det_loss = det_loss / bs
        da_logits, da_target = _match(preds["drivable"], batch["drivable"])
        ll_logits, ll_target = _match(preds["lane"], batch["lane"])
        drivable = F.binary_cross_entropy_with_logits(da_logits, da_target) + dice_loss(da_logits, da_target)
        lane = focal_loss(ll_logits, ll_target, self.w.focal_gamma) + tversky_loss(
            ll_logits, ll_target, self.w.tversky_alpha, self.w.tversky_beta
        )
        total = det_loss.sum() + self.w.drivable * drivable + self.w.lane * lane
        values = torch.stack([*det_loss, drivable, lane, total]).detach().tolist()  # one device sync
        return total * bs, dict(zip(ITEMS, values))


def _match(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,1,h',w') logits, (B,h,w) 0/1 target -> float logits and target at (B,h,w), same device."""
    target = (target.to(logits.device) > 0).float()
    logits = F.interpolate(logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return logits, target
