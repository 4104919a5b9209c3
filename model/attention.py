"""Outlier-aware attention for the stride-32 stage: clipped softmax and gated heads.

Bondarenko, Nagel, Blankevoort, "Quantizable Transformers" (NeurIPS 2023):
- clipped softmax: clip((zeta - gamma) * softmax(x) + gamma, 0, 1), gamma = -alpha / T, zeta = 1. A head can
  give some tokens exactly zero weight (and one token exactly one) without pushing logits to huge values.
- gated attention: each head's output softmax(QK^T)V is multiplied per token by sigmoid(G_h(x_h)), G_h a
  Linear(d_head -> 1) on that head's slice of the attention input; a head can switch itself off.

The structure mirrors ultralytics' `Attention`/`PSABlock`/`C2PSA` (qkv 1x1 conv, depthwise `pe` conv on V,
`proj` 1x1 conv, FFN), so parameter names and costs match YOLO11's C2PSA.

Hook points for outlier statistics (forward hooks; all are identities or tiny modules):
- `GatedAttention` itself: input = attention input x (B,C,H,W), output = attention output after `proj`.
- `GatedAttention.softmax`: the attention probabilities (B, heads, N, N).
- `GatedAttention.gate_prob` (gated only): gate probabilities (B, heads, H, W).
- `GatedAttention.head_out`: per-head outputs after gating (B, heads, d_head, N).
"""

from __future__ import annotations

from model.ultra import torch
from torch import nn
from ultralytics.nn.modules import C2PSA
from ultralytics.nn.modules.block import Attention, PSABlock


def clipped_softmax(x: torch.Tensor, dim: int, gamma: float, zeta: float = 1.0) -> torch.Tensor:
    """clip((zeta - gamma) * softmax(x) + gamma, 0, 1); gamma=0, zeta=1 is the plain softmax."""
    return torch.clamp((zeta - gamma) * x.softmax(dim=dim) + gamma, 0.0, 1.0)


class ClippedSoftmax(nn.Module):
    """Module form of clipped_softmax (exports as Softmax -> Mul -> Add -> Clip)."""

    def __init__(self, dim: int = -1, gamma: float = 0.0, zeta: float = 1.0):
        super().__init__()
        self.dim, self.gamma, self.zeta = dim, float(gamma), float(zeta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return clipped_softmax(x, self.dim, self.gamma, self.zeta)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, gamma={self.gamma:.6g}, zeta={self.zeta:g}"


class GatedAttention(Attention):
    """ultralytics `Attention` with a selectable softmax and optional per-head output gates.

    gamma/zeta: clipped-softmax parameters (gamma=0, zeta=1 -> nn.Softmax, the vanilla attention).
    gated: add `gate`, a grouped 1x1 conv = one Linear(d_head -> 1) per head on the attention input,
    bias initialised to gate_bias = logit(pi_init).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        attn_ratio: float = 0.5,
        gamma: float = 0.0,
        zeta: float = 1.0,
        gated: bool = False,
        gate_bias: float = 0.0,
    ):
        super().__init__(dim, num_heads=num_heads, attn_ratio=attn_ratio)
        clipped = gamma != 0.0 or zeta != 1.0
        self.softmax = ClippedSoftmax(-1, gamma, zeta) if clipped else nn.Softmax(dim=-1)
        self.gate = nn.Conv2d(dim, num_heads, 1, groups=num_heads, bias=True) if gated else None
        if self.gate is not None:
            nn.init.constant_(self.gate.bias, gate_bias)
        self.gate_prob = nn.Sigmoid() if gated else None
        self.head_out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> (B, C, H, W): proj(heads(x) + pe(V))."""
        B, C, H, W = x.shape
        N = H * W
        q, k, v = self.qkv(x).view(B, self.num_heads, self.key_dim * 2 + self.head_dim, N).split(
            [self.key_dim, self.key_dim, self.head_dim], dim=2
        )
        attn = self.softmax((q * self.scale).transpose(-2, -1) @ k)  # (B, heads, N, N)
        heads = v @ attn.transpose(-2, -1)  # (B, heads, d_head, N)
        if self.gate is not None:
            heads = heads * self.gate_prob(self.gate(x)).view(B, self.num_heads, 1, N)
        heads = self.head_out(heads)
        return self.proj(heads.reshape(B, C, H, W) + self.pe(v.reshape(B, C, H, W)))


class GatedPSABlock(PSABlock):
    """ultralytics `PSABlock` (attention + FFN, residuals) with `GatedAttention` inside."""

    def __init__(self, c: int, num_heads: int, attn_ratio: float = 0.5, shortcut: bool = True, **attn_kwargs):
        super().__init__(c, attn_ratio=attn_ratio, num_heads=num_heads, shortcut=shortcut)
        self.attn = GatedAttention(c, num_heads=num_heads, attn_ratio=attn_ratio, **attn_kwargs)


class GatedC2PSA(C2PSA):
    """ultralytics `C2PSA` (split, n attention blocks on one half, concat, 1x1 conv) with gated blocks.

    Heads: max(c // 64, 1) with c = c1 * e, as in C2PSA (d_head 64 when there is more than one head).
    """

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5, **attn_kwargs):
        super().__init__(c1, c2, n=n, e=e)
        heads = max(self.c // 64, 1)
        self.m = nn.Sequential(*(GatedPSABlock(self.c, num_heads=heads, **attn_kwargs) for _ in range(n)))
