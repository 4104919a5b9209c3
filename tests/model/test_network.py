"""RoadNet forward contracts (ARCHITECTURE.md) for both sizes and all attention variants, checkpoints."""

import pytest

from engines.errors import RoadsightError
from engines.meta import ATTENTION_VARIANTS
from model.ultra import torch
from model.attention import GatedAttention
from model.config import ModelConfig
from model.network import RoadNet, load_checkpoint, save_checkpoint
from ultralytics.utils.tal import make_anchors

H, W = 128, 192
A = (H // 8) * (W // 8) + (H // 16) * (W // 16) + (H // 32) * (W // 32)


@pytest.mark.parametrize("size", ["n", "s"])
@pytest.mark.parametrize("attention", ATTENTION_VARIANTS)
def test_forward_shapes_train_and_eval(size, attention):
    torch.manual_seed(0)
    model = RoadNet(ModelConfig(size=size, attention=attention, imgsz=(H, W), names=("car", "bus")))
    x = torch.rand(2, 3, H, W)
    out = model.train()(x)
    assert set(out) == {"det", "drivable", "lane"}
    assert out["det"]["boxes"].shape == (2, 4 * 16, A) and out["det"]["scores"].shape == (2, 2, A)
    assert out["drivable"].shape == (2, 1, H // 4, W // 4) and out["lane"].shape == (2, 1, H // 2, W // 2)
    with torch.no_grad():
        ev = model.eval()(x)
    assert list(ev) == ["boxes", "scores", "drivable", "lane"]
    assert ev["boxes"].shape == (2, 4, A) and ev["scores"].shape == (2, 2, A)
    for key, stride in (("drivable", 4), ("lane", 2)):
        assert ev[key].shape == (2, H // stride, W // stride) and ev[key].dtype == torch.float32  # logits
    attn = model.attn.m[0].attn
    assert (attn.gate is not None) == ("gated" in attention)
    assert (type(attn.softmax).__name__ == "ClippedSoftmax") == ("clipped" in attention)


def test_eval_boxes_are_decoded_xyxy_inside_the_image():
    torch.manual_seed(0)
    model = RoadNet(ModelConfig(imgsz=(H, W))).eval()
    x = torch.rand(1, 3, H, W)
    captured, forward_head = {}, model.detect.forward_head

    def spy(*args, **kwargs):
        captured["raw"] = forward_head(*args, **kwargs)
        return captured["raw"]

    model.detect.forward_head = spy
    with torch.no_grad():
        out = model(x)
    raw = captured["raw"]
    boxes = out["boxes"][0]
    assert (boxes[0] >= 0).all() and (boxes[2] <= W).all() and (boxes[1] >= 0).all() and (boxes[3] <= H).all()
    assert (boxes[2] >= boxes[0]).all() and (boxes[3] >= boxes[1]).all()
    # independent decode: softmax-expectation over the DFL bins, anchors at cell centres, clip to the image
    anchors, strides = make_anchors(raw["feats"], torch.tensor([8.0, 16.0, 32.0]), 0.5)
    dist = raw["boxes"][0].view(4, 16, A).softmax(1).mul(torch.arange(16.0).view(1, 16, 1)).sum(1)  # (4, A)
    xy = anchors.T * strides.T  # (2, A) pixels
    ref = torch.cat([xy - dist[:2] * strides.T, xy + dist[2:] * strides.T])
    ref = torch.stack([ref[0].clamp(0, W), ref[1].clamp(0, H), ref[2].clamp(0, W), ref[3].clamp(0, H)])
    torch.testing.assert_close(boxes, ref, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(out["scores"][0], raw["scores"][0].sigmoid())


def test_segmentation_output_is_bilinear_upsample_of_logits():
    torch.manual_seed(0)
    model = RoadNet(ModelConfig(imgsz=(H, W))).eval()
    logits = {}

    def replace(key):  # the hook's return value replaces the head's logits with a random map, kept for reference
        def hook(module, inputs, output):
            logits.setdefault(key, torch.randn_like(output) * 3)
            return logits[key]

        return hook

    model.lane_head.register_forward_hook(replace("lane"))
    model.drivable_head.register_forward_hook(replace("drivable"))
    x = torch.rand(1, 3, H, W)
    with torch.no_grad():
        raw = model(x)
        model.seg_output = "prob"
        ev = model(x)
        model.seg_output = "mask"
        mask = model(x)
    for key in ("lane", "drivable"):
        torch.testing.assert_close(raw[key], logits[key][:, 0])  # the default: logits at the head's stride
        up = torch.nn.functional.interpolate(logits[key], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
        torch.testing.assert_close(ev[key], up.sigmoid())
        assert mask[key].dtype == torch.uint8 and torch.equal(mask[key], (up > 0).to(torch.uint8))


def test_prepare_export_keeps_outputs():
    torch.manual_seed(0)
    model = RoadNet(ModelConfig(imgsz=(H, W), attention="clipped+gated")).eval()
    x = torch.rand(1, 3, H, W)
    with torch.no_grad():
        ref = model(x)
        out = model.prepare_export()(x)
    for key in ref:
        torch.testing.assert_close(out[key], ref[key], rtol=1e-3, atol=1e-3)


def test_checkpoint_roundtrip(tmp_path):
    cfg = ModelConfig(size="n", attention="clipped", imgsz=(H, W), alpha=3.0, names=("car",))
    model = RoadNet(cfg).eval()
    path = save_checkpoint(tmp_path / "w.pt", model, cfg, epoch=3)
    loaded = load_checkpoint(path)
    assert loaded.cfg == cfg and not loaded.training
    x = torch.rand(1, 3, H, W)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["boxes"], model(x)["boxes"])
    assert torch.load(path, weights_only=True)["epoch"] == 3


def test_checkpoint_errors(tmp_path):
    with pytest.raises(RoadsightError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(RoadsightError, match="no roadsight config"):
        load_checkpoint(tmp_path / "other.pt")


def test_config_dict_roundtrip_and_unknown_keys():
    cfg = ModelConfig(size="s", attention="gated", gate_init=0.25)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(RoadsightError, match="unknown keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "depth": 3})
    with pytest.raises(RoadsightError, match="attention"):
        ModelConfig(attention="flash")
    with pytest.raises(RoadsightError, match="imgsz"):
        ModelConfig(imgsz=(100, 640))


def test_attention_heads_per_size():
    heads = {size: RoadNet(ModelConfig(size=size, attention="gated")).attn.m[0].attn for size in "ns"}
    assert isinstance(heads["n"], GatedAttention)
    assert (heads["n"].num_heads, heads["n"].head_dim) == (2, 64)
    assert (heads["s"].num_heads, heads["s"].head_dim) == (4, 64)
