"""Export (checkpoint -> ONNX) and the PyTorch engine, on a tiny random RoadNet at 128x192.

The model is random but not degenerate: BatchNorm statistics are calibrated on random batches and the
prior biases of the class/segmentation heads are zeroed, so scores and probabilities spread over (0, 1)
and masks, detections and NMS all have something to get wrong.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import cv2  # noqa: E402

import engines  # noqa: E402
from engines.errors import RoadsightError  # noqa: E402
from engines.meta import ModelMeta  # noqa: E402
from engines.preprocess import letterbox  # noqa: E402
from model.torch_engine import TorchEngine  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.export import ExportOptions, compare, export_onnx, model_meta  # noqa: E402
from model.network import RoadNet, load_checkpoint, save_checkpoint  # noqa: E402

IMGSZ = (128, 192)
ANCHORS = sum((IMGSZ[0] // s) * (IMGSZ[1] // s) for s in (8, 16, 32))
OUTPUTS = ("boxes", "scores", "drivable", "lane")
TOL = {"scores": 1e-4, "drivable": 4e-4, "lane": 4e-4}  # masks are logits: sigmoid's slope is at most 1/4


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """BGR 180x320 frames with bright rectangles and lines on noise (not the network's aspect ratio)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        frame = rng.integers(0, 120, (180, 320, 3), dtype=np.uint8)
        for _ in range(4):
            x, y = int(rng.integers(0, 260)), int(rng.integers(0, 130))
            cv2.rectangle(frame, (x, y), (x + 50, y + 40), tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
        cv2.line(frame, (0, 179), (160, 60), (255, 255, 255), 3)
        frames.append(frame)
    return frames


def _tiny_model(seed: int) -> tuple[RoadNet, ModelConfig]:
    torch.manual_seed(seed)
    cfg = ModelConfig(size="n", attention="clipped+gated", imgsz=IMGSZ)
    model = RoadNet(cfg)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in norms:
        bn.momentum = None  # cumulative average over the calibration batches
        bn.reset_running_stats()
    frames = torch.from_numpy(letterbox(_frames(8, seed=99), IMGSZ)[0])
    model.train()
    with torch.no_grad():
        for half in (frames[:4], frames[4:]):  # both kinds of test input: letterboxed frames and noise
            model(torch.cat([half, torch.rand(2, 3, *IMGSZ)]))
        for bn in norms:
            bn.momentum = 0.03
        for conv in model.detect.cv3:
            conv[-1].bias.zero_()
        model.drivable_head.pred.bias.zero_()
        model.lane_head.pred.bias.zero_()
    return model.eval(), cfg


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def ckpt(workdir) -> Path:
    model, cfg = _tiny_model(0)
    return save_checkpoint(workdir / "tiny.pt", model, cfg)


@pytest.fixture(scope="module")
def dynamic_fp32(ckpt, workdir):
    return export_onnx(ExportOptions(weights=ckpt, dynamic=True, out=workdir / "dynamic.onnx"))


@pytest.fixture(scope="module")
def dynamic_prob(ckpt, workdir):
    """The same model with probabilities at input size (`--seg-output prob`, the layout before logits)."""
    return export_onnx(ExportOptions(weights=ckpt, dynamic=True, seg_output="prob", out=workdir / "prob.onnx"))


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _torch_outputs(ckpt: Path, images: np.ndarray, seg_output: str = "logits") -> dict[str, np.ndarray]:
    model = load_checkpoint(ckpt)
    model.seg_output = seg_output
    with torch.no_grad():
        return {k: v.numpy() for k, v in model(torch.from_numpy(images)).items()}


def _meta(path: Path) -> ModelMeta:
    graph = onnx.load(str(path))
    return ModelMeta.from_props({p.key: p.value for p in graph.metadata_props})


def test_dynamic_batch_runs_batches_1_and_3_and_matches_pytorch(ckpt, dynamic_fp32):
    session = _session(dynamic_fp32.path)
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == list(OUTPUTS)
    assert session.get_inputs()[0].shape[0] == "batch"
    rng = np.random.default_rng(1)
    for batch in (1, 3):
        images = rng.random((batch, 3, *IMGSZ), dtype=np.float32)
        got = dict(zip(OUTPUTS, session.run(list(OUTPUTS), {"images": images})))
        want = _torch_outputs(ckpt, images)
        assert got["boxes"].shape == (batch, 4, ANCHORS) and got["scores"].shape == (batch, 1, ANCHORS)
        assert got["drivable"].shape == (batch, IMGSZ[0] // 4, IMGSZ[1] // 4)  # logits at the heads' strides
        assert got["lane"].shape == (batch, IMGSZ[0] // 2, IMGSZ[1] // 2)
        assert np.abs(got["boxes"] - want["boxes"]).max() < 1e-2  # pixels
        for name in ("scores", "drivable", "lane"):
            assert got[name].dtype == np.float32
            assert np.abs(got[name] - want[name]).max() < TOL[name], name
        assert want["scores"].std() > 0.02 and want["drivable"].std() > 0.02  # the model is not degenerate


def test_reported_parity_is_within_bounds_and_can_fail(ckpt, dynamic_fp32):
    parity = dynamic_fp32.parity
    assert set(parity) == set(OUTPUTS) and dynamic_fp32.parity_source == "random"
    assert parity["boxes"][0] < 1e-2
    assert all(parity[name][0] < TOL[name] for name in ("scores", "drivable", "lane"))
    assert all(mean <= worst for worst, mean in parity.values())
    other, _ = _tiny_model(1)  # different weights: the comparison must notice
    other.seg_output = "logits"
    images = np.random.default_rng(2).random((2, 3, *IMGSZ), dtype=np.float32)
    wrong = compare(other, dynamic_fp32.path, images)
    assert wrong["boxes"][0] > 1.0 and wrong["scores"][0] > 0.01


def test_metadata_round_trip(ckpt, dynamic_fp32):
    meta = _meta(dynamic_fp32.path)
    assert meta == dynamic_fp32.meta
    assert meta.names == ("vehicle",) and meta.imgsz == IMGSZ and meta.attention == "clipped+gated"
    assert (meta.size, meta.precision, meta.seg_output, meta.batch, meta.stride) == ("n", "fp32", "logits", None, 32)
    assert "float32" in meta.preprocess
    with engines.load(dynamic_fp32.path) as engine:
        assert engine.meta == meta


def test_boxes_and_probabilities_never_share_a_tensor(dynamic_fp32):
    """Box-branch convs (Detect.cv2) feed only `boxes`, class convs (cv3) only `scores`; no Concat joins them."""
    graph = onnx.load(str(dynamic_fp32.path)).graph
    producers = {out: node for node in graph.node for out in node.output}

    def ancestors(tensor: str) -> set[str]:
        seen, stack = set(), [tensor]
        while stack:
            node = producers.get(stack.pop())
            if node is not None and node.name not in seen:
                seen.add(node.name)
                stack.extend(node.input)
        return seen

    up = {name: ancestors(name) for name in OUTPUTS}
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    box_convs = {name for name in convs if name.startswith("/model/cv2.")}  # Detect.cv2: box (DFL) branch
    cls_convs = {name for name in convs if name.startswith("/model/cv3.")}  # Detect.cv3: class branch
    assert len(box_convs) == len(cls_convs) == 9  # 3 levels x (Conv3x3, Conv3x3, Conv2d 1x1)
    assert box_convs <= up["boxes"] and not box_convs & up["scores"]
    assert cls_convs <= up["scores"] and not cls_convs & up["boxes"]
    for node in graph.node:  # nothing, Concat or otherwise, consumes both branches
        above = set().union(*(ancestors(t) for t in node.input)) | {node.name}
        assert not (above & box_convs and above & cls_convs), node.name


def test_static_batch_without_simplify(ckpt, workdir, dynamic_fp32):
    result = export_onnx(ExportOptions(weights=ckpt, batch=2, simplify=False, out=workdir / "static.onnx"))
    session = _session(result.path)
    assert session.get_inputs()[0].shape == [2, 3, *IMGSZ]
    assert _meta(result.path).batch == 2
    images = np.random.default_rng(3).random((2, 3, *IMGSZ), dtype=np.float32)
    static = session.run(list(OUTPUTS), {"images": images})
    dynamic = _session(dynamic_fp32.path).run(list(OUTPUTS), {"images": images})
    for a, b in zip(static, dynamic):
        np.testing.assert_allclose(a, b, atol=1e-4)
    with pytest.raises(Exception):
        session.run(list(OUTPUTS), {"images": images[:1]})
    slim, plain = (len(onnx.load(str(p)).graph.node) for p in (dynamic_fp32.path, result.path))
    assert slim < plain  # onnxslim folded something


def test_mask_output_bakes_the_threshold(ckpt, workdir, dynamic_prob):
    result = export_onnx(ExportOptions(weights=ckpt, seg_output="mask", out=workdir / "mask.onnx"))
    assert _meta(result.path).seg_output == "mask"
    session = _session(result.path)
    types = {o.name: o.type for o in session.get_outputs()}
    assert types["drivable"] == types["lane"] == "tensor(uint8)" and types["boxes"] == "tensor(float)"
    images = np.random.default_rng(4).random((1, 3, *IMGSZ), dtype=np.float32)
    masks = dict(zip(OUTPUTS, session.run(list(OUTPUTS), {"images": images})))
    probs = dict(zip(OUTPUTS, _session(dynamic_prob.path).run(list(OUTPUTS), {"images": images})))
    for name in ("drivable", "lane"):
        assert set(np.unique(masks[name])) <= {0, 1}
        expected = (probs[name] > 0.5).astype(np.uint8)
        assert 0 < expected.mean() < 1
        assert (masks[name] != expected).mean() < 1e-3
    assert result.parity["lane"][1] < 1e-3  # fraction of pixels where PyTorch and ONNX disagree


def test_logits_and_probabilities_give_the_same_frame_masks(dynamic_fp32, dynamic_prob):
    """Logits resized once to the frame vs probabilities resized in the graph and again to the frame."""
    frames = _frames(3, seed=0)  # masks neither empty nor full on each
    with engines.load(dynamic_fp32.path) as fast, engines.load(dynamic_prob.path) as slow:
        assert (fast.meta.seg_output, slow.meta.seg_output) == ("logits", "prob")
        for got, want in zip(engines.Predictor(fast)(frames), engines.Predictor(slow)(frames)):
            for name in ("drivable", "lane"):
                new, old = getattr(got, name), getattr(want, name)
                assert new.shape == old.shape == (180, 320) and 0.05 < old.mean() < 0.95
                assert (new != old).mean() < 0.02, name  # boundary pixels only (a random model's masks are mostly boundary)
            np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)


def test_seg_logits_rewrites_a_probability_export_into_the_logits_export(dynamic_fp32, dynamic_prob, workdir):
    from model import seg_logits

    path = workdir / "migrated.onnx"
    path.write_bytes(dynamic_prob.path.read_bytes())
    assert seg_logits.main([str(path)]) == 0
    assert _meta(path).seg_output == "logits"
    images = np.random.default_rng(8).random((2, 3, *IMGSZ), dtype=np.float32)
    got = dict(zip(OUTPUTS, _session(path).run(list(OUTPUTS), {"images": images})))
    want = dict(zip(OUTPUTS, _session(dynamic_fp32.path).run(list(OUTPUTS), {"images": images})))
    for name in OUTPUTS:
        assert got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], atol=1e-4, err_msg=name)
    assert seg_logits.main([str(path)]) == 0  # already logits: left alone
    with pytest.raises(RoadsightError, match="Resize -> Gather -> Sigmoid"):
        seg_logits.to_logits(onnx.load(str(workdir / "mask.onnx")))


def test_half_export_runs_in_onnxruntime_cpu(ckpt, workdir, dynamic_fp32):
    result = export_onnx(ExportOptions(weights=ckpt, half=True, out=workdir / "half.onnx"))
    meta = _meta(result.path)
    assert meta.precision == "fp16" and "float16" in meta.preprocess
    session = _session(result.path)
    assert session.get_inputs()[0].type == "tensor(float16)"
    assert all(o.type == "tensor(float16)" for o in session.get_outputs())
    images = np.random.default_rng(5).random((1, 3, *IMGSZ), dtype=np.float32)
    got = dict(zip(OUTPUTS, session.run(list(OUTPUTS), {"images": images.astype(np.float16)})))
    want = _torch_outputs(ckpt, images)
    model16 = load_checkpoint(ckpt).half()
    model16.seg_output = "logits"
    with torch.no_grad():
        torch16 = {k: v.float().numpy() for k, v in model16(torch.from_numpy(images).half()).items()}
    for name in OUTPUTS:
        error = np.abs(got[name].astype(np.float32) - want[name])
        own = np.abs(torch16[name] - want[name])  # the network's own FP16 sensitivity (PyTorch FP16)
        assert error.max() <= 2 * own.max() + 1e-3 and error.mean() <= 2 * own.mean() + 1e-4, name
    # DFL multiplies a logit error by up to ~15 bins x stride: a few px at stride 32 on this random net
    box_error = np.abs(got["boxes"].astype(np.float32) - want["boxes"])
    assert box_error.mean() < 0.5 and box_error.max() < 8.0
    # absolute sanity bound; the real check is the one against PyTorch's own FP16 error above (a random net with
    # live attention, alpha 0.5, moves a score by ~0.05 in FP16)
    assert all(np.abs(got[n].astype(np.float32) - want[n]).max() < 1000 * TOL[n] for n in ("scores", "drivable", "lane"))
    assert result.parity["boxes"][1] < 0.5 and result.parity["scores"][0] < 0.05
    fp32_size = dynamic_fp32.size_bytes
    assert result.size_bytes < 0.6 * fp32_size
    frames = _frames(2)
    with engines.load(result.path) as half, engines.load(ckpt) as full:
        assert half.inputs[0].dtype == np.float16
        for a, b in zip(engines.Predictor(half, conf=0.5)(frames), engines.Predictor(full, conf=0.5)(frames)):
            assert len(b.boxes) > 0 and abs(len(a.boxes) - len(b.boxes)) <= 1
            assert (a.drivable != b.drivable).mean() < 0.01 and (a.lane != b.lane).mean() < 0.01


def test_fp16_weights_halve_the_file_and_keep_fp32_arithmetic(ckpt, workdir, dynamic_fp32):
    from model.onnx_weights import has_fp16_storage, load_fp32

    result = export_onnx(ExportOptions(weights=ckpt, fp16_weights=True, dynamic=True, out=workdir / "w16.onnx"))
    assert result.size_bytes < 0.6 * dynamic_fp32.size_bytes and result.meta.precision == "fp32"
    packed = onnx.load(str(result.path))
    assert has_fp16_storage(packed)
    plain = load_fp32(onnx.load(str(result.path)))  # float32 initializers holding the FP16-rounded values
    assert not has_fp16_storage(plain) and "Cast" not in {n.op_type for n in plain.graph.node}
    original = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(dynamic_fp32.path)).graph.initializer}
    restored = {i.name: onnx.numpy_helper.to_array(i) for i in plain.graph.initializer}
    assert set(restored) == set(original)
    big = max(original, key=lambda k: original[k].size)
    assert restored[big].dtype == np.float32
    np.testing.assert_array_equal(restored[big], original[big].astype(np.float16).astype(np.float32))

    images = np.random.default_rng(3).random((2, 3, *IMGSZ), dtype=np.float32)
    session = _session(result.path)
    assert session.get_inputs()[0].type == "tensor(float)"
    got = session.run(list(OUTPUTS), {"images": images})
    same_math = ort.InferenceSession(plain.SerializeToString(), providers=["CPUExecutionProvider"])
    for a, b in zip(got, same_math.run(list(OUTPUTS), {"images": images})):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)  # FP32 arithmetic: only the weights were rounded
    full = _session(dynamic_fp32.path).run(list(OUTPUTS), {"images": images})
    assert all(np.abs(a - b).max() < 0.05 for a, b, name in zip(got, full, OUTPUTS) if name != "boxes")


def test_predictor_parity_onnx_vs_pt(ckpt, dynamic_fp32):
    frames = _frames(3)
    with engines.load(ckpt) as pt_engine, engines.load(dynamic_fp32.path) as onnx_engine:
        assert pt_engine.meta.imgsz == onnx_engine.meta.imgsz
        from_pt = engines.Predictor(pt_engine, conf=0.5)(frames)
        from_onnx = engines.Predictor(onnx_engine, conf=0.5)(frames)
    assert sum(len(p.boxes) for p in from_pt) > 3
    for a, b in zip(from_pt, from_onnx):
        assert abs(len(a.boxes) - len(b.boxes)) <= 1  # a score within rounding of conf may flip
        matched = 0
        for box, score, cls in zip(a.boxes, a.scores, a.class_ids):
            iou = _iou(box, b.boxes)
            best = int(iou.argmax()) if len(iou) else -1
            if best >= 0 and iou[best] > 0.999 and b.class_ids[best] == cls and abs(b.scores[best] - score) < 1e-4:
                matched += 1
        assert matched >= len(a.boxes) - 1
        for name in ("drivable", "lane"):
            mask_a, mask_b = getattr(a, name), getattr(b, name)
            assert mask_a.shape == (180, 320) and 0 < mask_a.mean() < 1
            assert (mask_a != mask_b).mean() < 1e-3


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod((rb - lt).clip(0), axis=1)
    area = lambda b: np.prod(b[..., 2:] - b[..., :2], axis=-1)  # noqa: E731
    return inter / (area(box) + area(boxes) - inter + 1e-9)


def test_parity_on_a_folder_of_frames(ckpt, workdir):
    folder = workdir / "frames" / "val"
    folder.mkdir(parents=True)
    for i, frame in enumerate(_frames(2, seed=7)):
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    result = export_onnx(ExportOptions(weights=ckpt, batch=2, out=workdir / "data.onnx", data=workdir / "frames"))
    assert "2 image(s)" in result.parity_source
    # DFL turns a logit error e into up to ~15 bins x stride 32 x e px; on these high-contrast frames the
    # random net's own float32 rounding (fp32 vs fp64 PyTorch) is already ~1e-2 px, hence the looser bound
    assert result.parity["boxes"][0] < 5e-2
    assert all(result.parity[name][0] < 5e-4 for name in ("scores", "drivable", "lane"))


def test_torch_engine_from_model_matches_the_model_and_restores_its_mode(ckpt):
    model = load_checkpoint(ckpt).train()
    engine = TorchEngine.from_model(model)
    assert engine.meta == model_meta(model.cfg, batch=None)
    images = np.random.default_rng(6).random((2, 3, *IMGSZ), dtype=np.float32)
    got = engine.infer({"images": images})
    assert model.training and model.seg_output == "logits"
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(images))
    for name in OUTPUTS:
        np.testing.assert_array_equal(got[name], want[name].numpy())
    with pytest.raises(RoadsightError, match="expected shape"):
        engine.infer({"images": images[:, :, :64]})
    engine.close()


def test_torch_engine_mask_and_bad_options(ckpt):
    with engines.load(ckpt, seg_output="mask") as engine:
        assert engine.meta.seg_output == "mask" and engine.outputs[2].dtype == np.uint8
        images = np.random.default_rng(8).random((1, 3, *IMGSZ), dtype=np.float32)
        out = engine.infer({"images": images})
    probs = _torch_outputs(ckpt, images, "prob")
    assert out["lane"].dtype == np.uint8
    assert (out["lane"] != (probs["lane"] > 0.5)).mean() < 1e-3
    bad = [({"device": "tpu"}, "unknown device"), ({"half": True}, "FP16 on the CPU")]
    bad.append(({"seg_output": "x"}, "logits, prob or mask"))
    if not torch.cuda.is_available():
        bad.append(({"device": "cuda"}, "no CUDA GPU"))
    for kwargs, message in bad:
        with pytest.raises(RoadsightError, match=message):
            engines.load(ckpt, **kwargs)


def test_bad_checkpoints_and_options_are_one_line_errors(ckpt, workdir):
    not_roadsight = workdir / "yolo.pt"
    torch.save({"model": {}, "train_args": {}}, not_roadsight)
    garbage = workdir / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    for weights, message in (
        (workdir / "missing.pt", "does not exist"),
        (not_roadsight, "no roadsight config"),
        (garbage, "cannot read"),
    ):
        with pytest.raises(RoadsightError, match=message) as info:
            export_onnx(ExportOptions(weights=weights, out=workdir / "never.onnx"))
        assert "\n" not in str(info.value)
        if weights.exists():
            with pytest.raises(RoadsightError, match=message):
                engines.load(weights)  # the PyTorch engine reports the same
    assert not (workdir / "never.onnx").exists()
    for opts, message in (
        (ExportOptions(weights=not_roadsight, seg_output="probs"), "--seg-output"),
        (ExportOptions(weights=not_roadsight, opset=21), "--opset"),
        (ExportOptions(weights=not_roadsight, batch=4, dynamic=True), "--batch/--dynamic"),
        (ExportOptions(weights=not_roadsight, out=workdir / "model.engine"), "--out"),
        (ExportOptions(weights=ckpt, data=workdir / "no-frames", out=workdir / "never.onnx"), "--data"),
    ):
        with pytest.raises(RoadsightError, match=message):
            export_onnx(opts)
    assert not (workdir / "never.onnx").exists()


def test_cli_prints_one_line_for_missing_weights(workdir):
    run = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "export", "--weights", str(workdir / "none.pt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "does not exist" in lines[0]
