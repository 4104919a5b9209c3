"""Clipped softmax and gated attention: the formulas of Bondarenko et al. (2023), checked numerically."""

import math

import pytest

from model.ultra import torch
from model.attention import GatedAttention, GatedC2PSA, clipped_softmax
from model.config import ModelConfig


def test_clipped_softmax_is_softmax_when_gamma_0_zeta_1():
    x = torch.randn(3, 5, 17) * 4
    assert torch.equal(clipped_softmax(x, -1, gamma=0.0, zeta=1.0), torch.clamp(x.softmax(-1), 0, 1))
    torch.testing.assert_close(clipped_softmax(x, -1, gamma=0.0), x.softmax(-1), rtol=0, atol=0)


def test_clipped_softmax_range_and_exact_zeros_and_ones():
    gamma, zeta = -0.05, 1.05
    x = torch.tensor([[10.0, 0.0, -1.0, -2.0], [0.0, 0.1, 0.2, 0.3]])
    out = clipped_softmax(x, -1, gamma=gamma, zeta=zeta)
    assert out.min() >= 0 and out.max() <= 1
    assert (out[0, 0] == 1.0) and (out[0, 1:] == 0.0).all()  # dominant token -> exactly 1, rest exactly 0
    # unclipped entries follow the affine formula
    p = x[1].softmax(-1)
    torch.testing.assert_close(out[1], (zeta - gamma) * p + gamma)
    # threshold: p below -gamma / (zeta - gamma) is zeroed
    thr = -gamma / (zeta - gamma)
    probs = x.softmax(-1)
    assert torch.equal(out == 0, probs <= thr)


def test_clipped_softmax_gradient_zero_where_clipped():
    x = torch.tensor([[8.0, 0.0, 0.0, 0.0]], requires_grad=True)
    out = clipped_softmax(x, -1, gamma=-0.1)
    out[0, 1].backward()
    assert out[0, 1] == 0 and torch.all(x.grad == 0)


def test_gamma_derived_from_tokens():
    cfg = ModelConfig(imgsz=(384, 640), alpha=4.0)
    assert cfg.tokens == 12 * 20
    assert math.isclose(cfg.gamma, -4.0 / 240)
    assert math.isclose(ModelConfig(imgsz=(192, 320), alpha=2.0).gamma, -2.0 / 60)
    assert math.isclose(ModelConfig(gate_init=0.25).gate_bias, math.log(0.25 / 0.75))


def _manual_attention(m: GatedAttention, x: torch.Tensor, head_scale: torch.Tensor) -> torch.Tensor:
    """Independent re-computation: per-head loop, plain softmax, heads scaled by head_scale (B, heads, N)."""
    B, C, H, W = x.shape
    N = H * W
    qkv = m.qkv(x).view(B, m.num_heads, m.key_dim * 2 + m.head_dim, N)
    outs = []
    for h in range(m.num_heads):
        q, k, v = qkv[:, h, : m.key_dim], qkv[:, h, m.key_dim : 2 * m.key_dim], qkv[:, h, 2 * m.key_dim :]
        a = torch.einsum("bdn,bdm->bnm", q, k) * m.key_dim**-0.5
        outs.append(torch.einsum("bnm,bdm->bdn", a.softmax(-1), v) * head_scale[:, h, None, :])
    v_all = qkv[:, :, 2 * m.key_dim :].reshape(B, C, H, W)
    return m.proj(torch.cat(outs, 1).view(B, C, H, W) + m.pe(v_all))


def test_vanilla_attention_matches_independent_computation():
    torch.manual_seed(0)
    m = GatedAttention(128, num_heads=2).eval()
    x = torch.randn(2, 128, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _manual_attention(m, x, torch.ones(2, 2, 15)), rtol=1e-4, atol=1e-5)


def test_gate_is_per_head_linear_on_head_slice_of_input():
    torch.manual_seed(0)
    m = GatedAttention(128, num_heads=2, gated=True, gate_bias=0.3).eval()
    torch.testing.assert_close(m.gate.bias, torch.full((2,), 0.3))
    x = torch.randn(2, 128, 3, 5)
    w = m.gate.weight.view(2, 64)
    xs = x.flatten(2).view(2, 2, 64, 15)  # (B, heads, d_head, N)
    gates = torch.sigmoid(torch.einsum("hd,bhdn->bhn", w, xs) + m.gate.bias.view(1, 2, 1))
    with torch.no_grad():
        torch.testing.assert_close(m(x), _manual_attention(m, x, gates), rtol=1e-4, atol=1e-5)


def test_gate_with_very_negative_bias_turns_head_off_exactly():
    torch.manual_seed(0)
    m = GatedAttention(128, num_heads=2, gated=True).eval()
    with torch.no_grad():
        m.gate.bias[1] = -1e4
    captured = {}
    m.head_out.register_forward_hook(lambda mod, inp, out: captured.update(heads=out))
    x = torch.randn(2, 128, 4, 4)
    with torch.no_grad():
        y = m(x)
    heads = captured["heads"]
    assert heads.shape == (2, 2, 64, 16)
    assert torch.all(heads[:, 1] == 0) and heads[:, 0].abs().sum() > 0
    # head 1 contributes nothing: changing its queries/keys (qkv rows of head 1) does not change the output
    with torch.no_grad():
        per_head = m.key_dim * 2 + m.head_dim
        m.qkv.conv.weight[per_head : per_head + 2 * m.key_dim] *= -3.0
        torch.testing.assert_close(m(x), y, rtol=0, atol=0)


@pytest.mark.parametrize("gamma", [0.0, -0.02])
def test_block_shapes_and_softmax_selection(gamma):
    block = GatedC2PSA(256, 256, gamma=gamma, gated=False)
    attn = block.m[0].attn
    assert type(attn.softmax).__name__ == ("Softmax" if gamma == 0 else "ClippedSoftmax")
    assert attn.num_heads == 2 and attn.gate is None
    assert block(torch.randn(1, 256, 2, 3)).shape == (1, 256, 2, 3)



def _zero_share_at_init(cfg: ModelConfig) -> float:
    """Share of attention probabilities that a fresh network's clipped softmax sets to exactly 0."""
    from model.network import RoadNet

    torch.manual_seed(0)
    net = RoadNet(cfg).eval()
    probs = []
    attn = next(m for m in net.modules() if isinstance(m, GatedAttention))
    attn.softmax.register_forward_hook(lambda _m, _i, out: probs.append(out))
    with torch.no_grad():
        net(torch.rand(2, 3, *cfg.imgsz))
    return (probs[0] == 0).float().mean().item()


def test_default_alpha_leaves_fresh_attention_trainable():
    """A fresh network attends almost uniformly (1/T): alpha 4 clips nearly all of it (no gradient), 0.5 does not."""
    assert _zero_share_at_init(ModelConfig(attention="clipped", imgsz=(192, 320))) < 0.5
    assert _zero_share_at_init(ModelConfig(attention="clipped", imgsz=(192, 320), alpha=4.0)) > 0.9
