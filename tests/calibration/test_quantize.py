"""INT8 quantization of a real (tiny) RoadNet export: TensorRT Q/DQ rules, CPU model runs, outputs track FP32."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from calibration.cache import CalibCache, calibrate, read_meta
from calibration.graph import Graph, check_trt_graph, head_nodes
from calibration.quantize import pick_backend, quantize
from engines.errors import RoadsightError


@pytest.fixture(scope="module")
def quantized(tiny_roadnet, tmp_path_factory):
    """(fp32 path, cache, {target: QuantResult}) for the tiny RoadNet, calibrated on 12 scene frames."""
    from calib_helpers import scene
    import cv2

    folder = tmp_path_factory.mktemp("frames")
    for i in range(12):
        cv2.imwrite(str(folder / f"{i}.png"), scene(i))
    _, onnx_path = tiny_roadnet
    _, cache = calibrate(onnx_path, [str(folder)], n=12, out=folder / "calib.npz")
    results = {t: quantize(onnx_path, cache, target=t, backend="ort") for t in ("trt", "cpu")}
    return onnx_path, cache, results


def _consts(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def test_trt_graph_follows_tensorrt_rules(quantized):
    _, _, results = quantized
    model = onnx.load(str(results["trt"].path))
    consts, nodes = _consts(model), list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    qs = [n for n in nodes if n.op_type == "QuantizeLinear"]
    dqs = [n for n in nodes if n.op_type == "DequantizeLinear"]
    assert len(qs) > 20 and len(dqs) > len(qs)  # activations (Q+DQ) and weights (DQ on int8 initializers)
    # 1. symmetric int8: every zero-point is an int8 zero
    for n in qs + dqs:
        zp = consts[n.input[2]]
        assert zp.dtype == np.int8 and not zp.any(), n.name
    # 2. conv weights: int8 initializers, per-channel (axis 0, one scale per output channel)
    weight_dqs = [n for n in dqs if n.input[0] in consts]
    assert weight_dqs
    for n in weight_dqs:
        w, scale = consts[n.input[0]], consts[n.input[1]]
        axis = next(a.i for a in n.attribute if a.name == "axis")
        assert w.dtype == np.int8 and axis == 0 and scale.shape == (w.shape[0],), n.name
    # 3. no Q/DQ on Sigmoid/Softmax/Shape/Gather: none of them reads a DQ output, no Q reads their output
    for n in nodes:
        if n.op_type in ("Sigmoid", "Softmax", "Shape", "Gather"):
            assert all(getattr(producer.get(i), "op_type", "") != "DequantizeLinear" for i in n.input), n.name
    for q in qs:
        assert getattr(producer.get(q.input[0]), "op_type", "") not in ("Sigmoid", "Softmax"), q.name
    # 4. head final convs (detect cv2/cv3 .2 and DFL) have float inputs and float weights
    heads = [n for n in nodes if n.op_type == "Conv" and ("/dfl/" in n.name or n.name.endswith(("cv2.0.2/Conv", "cv3.2.2/Conv")))]
    assert len(heads) == 3
    for n in heads:
        assert all(getattr(producer.get(i), "op_type", "") != "DequantizeLinear" for i in n.input), n.name
        assert consts[n.input[1]].dtype == np.float32
    # 5. boxes and scores are computed without any Q/DQ after the head convs
    graph = Graph(model)
    below = graph.descendants(head_nodes(graph))
    assert {"boxes", "scores"} <= {o for name in below for o in graph.by_name[name].output}
    assert not [name for name in below if graph.by_name[name].op_type.endswith("QuantizeLinear")]
    # the attention matmuls and residual Adds are quantized (the paper's point: attention in INT8)
    summary = results["trt"].summary
    assert summary["int8 MatMul"] == 2 and summary["int8 Add"] >= 6
    assert check_trt_graph(model) == []


def test_rule_checker_catches_onnxruntime_defaults(quantized, tmp_path):
    """ONNX Runtime's default quantize_static (asymmetric, everything quantized) must fail the rules."""
    from onnxruntime.quantization import quantize_static

    from calibration.quantize import _CacheReader

    onnx_path, cache, _ = quantized
    quantize_static(str(onnx_path), str(tmp_path / "naive.onnx"), _CacheReader(cache, "images", 1))
    errors = check_trt_graph(onnx.load(str(tmp_path / "naive.onnx")))
    text = "\n".join(errors)
    assert "zero-point" in text and "Sigmoid takes a dequantized input" in text and "head conv" in text


def _run(path, images):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [dict(zip([o.name for o in session.get_outputs()], session.run(None, {"images": x[None]}))) for x in images]


@pytest.mark.parametrize("target", ["trt", "cpu"])
def test_int8_tracks_fp32_and_metadata(quantized, target):
    onnx_path, cache, results = quantized
    images = cache.array()[:4]
    ref, got = _run(onnx_path, images), _run(results[target].path, images)
    for name in ("scores", "drivable", "lane"):
        a = np.concatenate([r[name].ravel() for r in ref])
        b = np.concatenate([g[name].ravel() for g in got])
        assert a.std() > 0.01, f"{name} does not depend on the input"
        assert np.corrcoef(a, b)[0, 1] > 0.9, name
        assert np.abs(a - b).mean() < 0.1 * a.std() + 0.01, name
    meta = read_meta(results[target].path)
    assert meta.precision == f"int8-{target}" and meta.imgsz == (64, 96)
    props = {p.key: p.value for p in onnx.load(str(results[target].path)).metadata_props}
    info = json.loads(props["roadsight_quant"])
    assert info["backend"] == "ort" and info["frames"] == 12 and info["calib_key"] == cache.key


def test_cpu_model_uses_uint8_activations(quantized):
    model = onnx.load(str(quantized[2]["cpu"].path))
    consts = _consts(model)
    act_zps = [consts[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert act_zps and all(z.dtype == np.uint8 for z in act_zps)


def test_refusals(quantized, tmp_path):
    onnx_path, cache, results = quantized
    with pytest.raises(RoadsightError, match="int8-trt"):
        quantize(results["trt"].path, cache)
    with pytest.raises(RoadsightError, match="--target"):
        pick_backend("gpu", "max")
    with pytest.raises(RoadsightError, match="--method"):
        pick_backend("trt", "mse")
    other = CalibCache(cache.images[:, :32], cache.meta.__class__(imgsz=(32, 96)))
    with pytest.raises(RoadsightError, match="recalibrate|roadsight calibrate"):
        quantize(onnx_path, other, out=tmp_path / "x.onnx")


def test_modelopt_backend(quantized, tmp_path):
    """ModelOpt (when installed, e.g. `roadsight[quant]`): fp32 kept as high precision, the same TRT rules, FP32 tracked."""
    pytest.importorskip("modelopt.onnx.quantization")
    onnx_path, cache, _ = quantized
    assert pick_backend("trt", "max") == "modelopt" and pick_backend("trt", "percentile") == "ort"
    result = quantize(onnx_path, cache, target="trt", backend="modelopt", out=tmp_path / "mo.onnx")
    model = onnx.load(str(result.path))
    assert result.backend == "modelopt" and check_trt_graph(model) == []
    floats = [i for i in model.graph.initializer if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert floats and all(i.data_type == onnx.TensorProto.FLOAT for i in floats)  # not converted to fp16
    assert result.summary["int8 Conv"] > 40  # (attention MatMuls: skipped by ModelOpt below 16 tokens, as here)
    images = cache.array()[:4]
    ref, got = _run(onnx_path, images), _run(result.path, images)
    for name in ("scores", "drivable", "lane"):
        a = np.concatenate([r[name].ravel() for r in ref])
        b = np.concatenate([g[name].ravel() for g in got])
        assert np.corrcoef(a, b)[0, 1] > 0.9, name
    # ModelOpt patches ONNX Runtime's calibrators when it runs; it runs in a child process, so ORT here is intact
    after = quantize(onnx_path, cache, target="trt", backend="ort", out=tmp_path / "after.onnx")
    assert check_trt_graph(onnx.load(str(after.path))) == []


def test_chunked_calibration_gives_the_same_ranges(quantized, tmp_path, monkeypatch):
    """ONNX Runtime calibrates in chunks of batches (bounded memory); max ranges equal the one-pass ranges."""
    import calibration.quantize as q

    onnx_path, cache, results = quantized
    assert q.chunk(12) == 12 and q.chunk(48) == 16 and q.chunk(17) == 1 and q.chunk(18, 4) == 3
    monkeypatch.setattr(q, "CALIB_CHUNK", 4)
    chunked = onnx.load(str(quantize(onnx_path, cache, target="trt", backend="ort", out=tmp_path / "c.onnx").path))
    whole = onnx.load(str(results["trt"].path))  # 12 frames in one chunk

    def scales(model):
        consts = _consts(model)
        return {n.input[0]: float(consts[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear"}

    a, b = scales(chunked), scales(whole)
    assert a.keys() == b.keys() and len(a) > 20
    np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-6)


@pytest.mark.parametrize("target", ["trt", "cpu"])
def test_float_attention_keeps_attention_matmuls_float(quantized, tmp_path, target):
    onnx_path, cache, results = quantized
    assert results[target].summary["int8 MatMul"] == 2
    result = quantize(onnx_path, cache, target=target, backend="ort", out=tmp_path / "fa.onnx", float_attention=True)
    model = onnx.load(str(result.path))
    graph = Graph(model)
    matmuls = [n for n in graph.nodes if n.op_type == "MatMul"]
    assert len(matmuls) == 2 and "int8 MatMul" not in result.summary
    assert all(graph.producer[i].op_type != "DequantizeLinear" for n in matmuls for i in n.input if i in graph.producer)
    assert result.summary["int8 Conv"] == results[target].summary["int8 Conv"]
    if target == "trt":
        assert check_trt_graph(model) == []


def test_a_model_with_fp16_stored_weights_quantizes_like_its_fp32_export(quantized, tmp_path):
    """`export --fp16-weights` (the shipped roadsight-n.onnx) feeds Conv weights through Casts; quantize restores them."""
    from model.onnx_weights import store_fp16

    onnx_path, cache, results = quantized
    packed = tmp_path / "packed.onnx"
    onnx.save(store_fp16(onnx.load(str(onnx_path))), str(packed))
    result = quantize(packed, cache, target="cpu", backend="ort", out=tmp_path / "packed.int8-cpu.onnx")
    assert result.summary["int8 Conv"] == results["cpu"].summary["int8 Conv"] > 40
    assert "Cast" not in {n.op_type for n in onnx.load(str(result.path)).graph.node}
