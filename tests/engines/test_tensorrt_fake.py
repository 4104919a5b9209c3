"""The TensorRT backend's own logic on the CPU, against stand-ins for tensorrt/pycuda (fake_tensorrt.py).

Checks buffer planning for the profile's max batch, batch slicing, context push/pop balance (also from
a worker thread), event timing, sidecar checks and output reuse. Real TensorRT: test_tensorrt.py.
"""

import sys
import threading
import types

import numpy as np
import pytest
from fake_tensorrt import Context, _stack, make_pycuda_driver, make_tensorrt
from tiny_model import make_tiny_onnx

import engines
from engines.errors import RoadsightError
from engines.meta import ModelMeta
from engines.tensorrt import TensorRTEngine
from engines.trt_plan import EngineInfo, write_sidecar


@pytest.fixture
def fake_gpu(monkeypatch):
    driver = make_pycuda_driver()
    monkeypatch.setitem(sys.modules, "pycuda", types.SimpleNamespace(driver=driver))
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.setitem(sys.modules, "tensorrt", make_tensorrt("10.3.0.26", max_batch=4))
    Context.retained = 0
    yield
    assert Context.retained == 0, "the primary context was retained and never released"


def make_engine(folder, batch=None, seg_output="prob", tensorrt="10.3.0.26"):
    onnx = make_tiny_onnx(folder / f"tiny{batch}{seg_output}.onnx", names=("car", "bus"), batch=batch, seg_output=seg_output)
    plan = folder / f"tiny{batch}{seg_output}.engine"
    plan.write_bytes(onnx.read_bytes())  # the fake runtime "deserializes" ONNX bytes
    meta = ModelMeta(names=("car", "bus"), imgsz=(64, 96), batch=batch, seg_output=seg_output)
    write_sidecar(plan, EngineInfo(meta, tensorrt, "Fake GPU", (8, 9), onnx=onnx.name))
    return onnx, plan


def test_dynamic_batch_matches_onnxruntime_and_releases_everything(fake_gpu, tmp_path):
    onnx, plan = make_engine(tmp_path)
    x = np.random.default_rng(0).random((4, 3, 64, 96), dtype=np.float32)
    with engines.load(plan, timing=True) as engine, engines.load(onnx) as reference:
        assert isinstance(engine, TensorRTEngine) and engine.max_batch == 4 and engine.reuses_outputs
        assert [(s.name, s.dtype, s.shape) for s in engine.inputs] == [("images", np.float32, (None, 3, 64, 96))]
        for batch in (1, 4, 3):
            out = engine.infer({"images": x[:batch]})
            expected = reference.infer({"images": x[:batch]})
            for name in expected:
                assert out[name].shape == expected[name].shape and np.allclose(out[name], expected[name]), name
        assert engine.last_timing.keys() >= {"h2d", "compute", "d2h", "infer"}
        assert _stack() == []  # every push was popped
        with pytest.raises(RoadsightError, match=r"batch 5 is too large. Expected at most 4"):
            engine.infer({"images": np.zeros((5, 3, 64, 96), np.float32)})
    assert not engine.is_open and _stack() == []


def test_outputs_are_reused_and_the_predictor_copies_them(fake_gpu, tmp_path):
    onnx, plan = make_engine(tmp_path)
    a, b = np.zeros((1, 3, 64, 96), np.float32), np.ones((1, 3, 64, 96), np.float32)
    with engines.load(plan) as engine:
        first = engine.infer({"images": a})["lane"]
        engine.infer({"images": b})
        assert first.max() > 0.99  # overwritten by the second call: "copy to keep"
        predictor = engines.Predictor(engine)
        kept = predictor.infer(a)
        predictor.infer(b)
        assert kept["lane"].max() < 0.01


def test_open_on_one_thread_infer_on_another(fake_gpu, tmp_path):
    onnx, plan = make_engine(tmp_path, batch=1, seg_output="mask")
    frame = np.full((128, 192, 3), 20, np.uint8)
    frame[32:64, 64:96] = 255
    engine = engines.load(plan)
    assert engine.max_batch == 1 and engine.outputs[2].dtype == np.uint8
    results, errors = {}, []

    def work():
        try:
            results["p"] = engines.Predictor(engine)([frame, frame])
        except Exception as error:  # surfaced below
            errors.append(error)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=30)
    engine.close()
    assert not errors, errors
    with engines.load(onnx) as reference:
        expected = engines.Predictor(reference)([frame])[0]
    for p in results["p"]:
        assert np.array_equal(p.boxes, expected.boxes) and np.array_equal(p.lane, expected.lane)


def test_sidecar_from_another_tensorrt_or_gpu_is_refused(fake_gpu, tmp_path):
    _, plan = make_engine(tmp_path, tensorrt="11.4.0.106")
    with pytest.raises(RoadsightError, match=r"built with TensorRT 11.4.0.106. Expected TensorRT 10.3.0.26"):
        engines.load(plan)
    meta = ModelMeta(names=("car", "bus"), imgsz=(64, 96), batch=None)
    write_sidecar(plan, EngineInfo(meta, "10.3.0.26", "Orin", (8, 7)))
    with pytest.raises(RoadsightError, match=r"compute capability 8.7 \(Orin\). Expected 8.9 \(Fake GPU\)"):
        engines.load(plan)


def test_a_plan_tensorrt_cannot_read_is_one_line(fake_gpu, tmp_path):
    _, plan = make_engine(tmp_path)
    plan.write_bytes(b"garbage")
    with pytest.raises(RoadsightError, match=r"TensorRT cannot deserialize it"):
        engines.load(plan)
    assert _stack() == []


def test_device_must_be_a_gpu(fake_gpu, tmp_path):
    _, plan = make_engine(tmp_path)
    with pytest.raises(RoadsightError, match=r"Expected cuda or cuda:N, got 'tensorrt'"):
        engines.load(plan, device="tensorrt")
    with pytest.raises(RoadsightError, match=r"device cuda:3: no such GPU"):
        engines.load(plan, device="cuda:3")


@pytest.mark.parametrize("strongly_typed_flag", [True, False], ids=["trt10", "trt11"])
def test_build_plans_the_profile_flags_cache_and_sidecar(fake_gpu, tmp_path, strongly_typed_flag):
    import json

    from fake_tensorrt import add_builder

    from engines.build import build_engine

    calls = add_builder(sys.modules["tensorrt"], strongly_typed_flag)
    onnx = make_tiny_onnx(tmp_path / "tiny.onnx", names=("car", "bus"), batch=None)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"old")
    out = build_engine(onnx, tmp_path / "out" / "tiny.engine", batch="1,2,4", workspace_gib=0.5, timing_cache=cache, log=lambda *a: None)
    assert calls["flags"] == (1 << 5 if strongly_typed_flag else 0)
    assert calls["workspace"] == (0, 1 << 29) and calls["cache_in"] == b"old" and cache.read_bytes() == b"old+timings"
    assert calls["profiles"] == [{"images": ((1, 3, 64, 96), (2, 3, 64, 96), (4, 3, 64, 96))}]
    info = json.loads((tmp_path / "out" / "tiny.engine.json").read_text())
    assert info["tensorrt"] == "10.3.0.26" and info["gpu"] == "Fake GPU" and info["compute_capability"] == [8, 9]
    assert info["meta"]["batch"] is None and info["profile"]["images"][2] == [4, 3, 64, 96]
    with engines.load(out) as engine:  # the fake runtime runs the "plan"
        assert engine.meta.names == ("car", "bus") and engine.max_batch == 4


def test_build_static_onnx_and_refusals(fake_gpu, tmp_path):
    from fake_tensorrt import add_builder

    from engines.build import build_engine

    calls = add_builder(sys.modules["tensorrt"])
    onnx = make_tiny_onnx(tmp_path / "static.onnx", batch=1)
    build_engine(onnx, tmp_path / "static.engine", log=lambda *a: None)
    assert calls["profiles"] == [] and calls["cache_in"] == b""
    with pytest.raises(RoadsightError, match=r"fixed batch of 1. Expected --batch 1 for it, got 1,4,8"):
        build_engine(onnx, tmp_path / "x.engine", batch=(1, 4, 8), log=lambda *a: None)
    with pytest.raises(RoadsightError, match=r"no such ONNX file"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "x.engine")
