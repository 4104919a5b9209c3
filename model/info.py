"""`roadsight model info`: parameters and GFLOPs of every size and attention variant."""

from __future__ import annotations

from model.ultra import torch
from rich.table import Table
from ultralytics.utils.torch_utils import get_flops

from model.attention import GatedAttention
from model.config import ATTENTION_STRIDE, ModelConfig
from model.network import RoadNet


def attention_matmul_gflops(model: RoadNet, imgsz: tuple[int, int]) -> float:
    """FLOPs of the QK^T and PV matmuls (functional ops that thop does not see), in GFLOPs."""
    tokens = (imgsz[0] // ATTENTION_STRIDE) * (imgsz[1] // ATTENTION_STRIDE)
    macs = sum(
        m.num_heads * tokens * tokens * (m.key_dim + m.head_dim) for m in model.modules() if isinstance(m, GatedAttention)
    )
    return 2 * macs / 1e9


def model_stats(cfg: ModelConfig) -> dict[str, float]:
    """Parameters (total, attention stage, segmentation heads) and GFLOPs at cfg.imgsz for one configuration."""
    model = RoadNet(cfg).eval()

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    return {
        "params": count(model),
        "attention_params": count(model.attn),
        "seg_params": count(model.drivable_head) + count(model.lane_head),
        "gflops": get_flops(model, list(cfg.imgsz)) + attention_matmul_gflops(model, cfg.imgsz),
    }


def info_table(sizes: list[str], attentions: list[str], imgsz: tuple[int, int]) -> Table:
    """One row per (size, attention) with parameters and GFLOPs at imgsz (h, w)."""
    table = Table(title=f"RoadNet at {imgsz[1]}x{imgsz[0]} (WxH), batch 1")
    for column in ("size", "attention", "params", "attention stage", "seg heads", "GFLOPs"):
        table.add_column(column, justify="left" if column in ("size", "attention") else "right")
    for size in sizes:
        for attention in attentions:
            s = model_stats(ModelConfig(size=size, attention=attention, imgsz=imgsz))
            table.add_row(
                size,
                attention,
                f"{s['params'] / 1e6:.3f} M",
                f"{s['attention_params'] / 1e3:.1f} k",
                f"{s['seg_params'] / 1e3:.1f} k",
                f"{s['gflops']:.2f}",
            )
    default = ModelConfig(imgsz=imgsz)
    table.caption = (
        f"GFLOPs = 2 x MACs (thop: convolutions) + attention matmuls; Detect and both seg heads included.\n"
        f"Attention tokens at stride 32: {default.tokens}; clipped gamma = -alpha/tokens = {default.gamma:.4f} (alpha {default.alpha:g})."
    )
    return table
