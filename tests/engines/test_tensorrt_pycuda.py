"""The pycuda half on a real GPU: TensorRTEngine's contexts, pinned buffers, streams, events and threads
with the real pycuda, and the stand-in `tensorrt` (fake_tensorrt.py) in place of TensorRT.

For GPU machines without TensorRT (pycuda needs only a GPU, a driver and nvcc to build); marked `gpu`.
"""

import sys
import threading
import warnings

import numpy as np
import pytest
from fake_tensorrt import add_builder, make_plan, make_tensorrt
from tiny_model import make_tiny_onnx

import engines
from engines.build import build_engine
from engines.meta import ModelMeta
from engines.trt_plan import EngineInfo, write_sidecar


def _driver():
    try:
        import pycuda.driver as cuda

        cuda.init()
        return cuda if cuda.Device.count() > 0 else None
    except Exception:  # not installed, no driver or no GPU
        return None


CUDA = _driver()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(CUDA is None, reason="pycuda not installed or no NVIDIA GPU and driver"),
]
NAMES = ("car", "bus")


@pytest.fixture
def trt(monkeypatch):
    trt = make_tensorrt(CUDA, "10.3.0.26")
    add_builder(trt)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return trt


def fake_plan(folder, profile=(2, 2, 4)):
    onnx_path = make_tiny_onnx(folder / "tiny.onnx", names=NAMES, batch=None)
    plan = folder / "tiny.engine"
    plan.write_bytes(make_plan(onnx_path.read_bytes(), [[n, 3, 64, 96] for n in profile]))
    device = CUDA.Device(0)
    meta = ModelMeta(names=NAMES, imgsz=(64, 96), batch=None)
    write_sidecar(plan, EngineInfo(meta, "10.3.0.26", device.name(), tuple(device.compute_capability()), onnx=onnx_path.name))
    return onnx_path, plan


def test_real_pycuda_buffers_streams_and_events(trt, tmp_path):
    onnx_path, plan = fake_plan(tmp_path)
    x = np.random.default_rng(0).random((4, 3, 64, 96), dtype=np.float32)
    with engines.load(plan, timing=True) as engine, engines.load(onnx_path) as reference:
        assert (engine.min_batch, engine.max_batch) == (2, 4) and "pycuda" in engine.versions
        for batch in (1, 3, 4):  # 1 is padded up to the profile's minimum
            out, expected = engine.infer({"images": x[:batch]}), reference.infer({"images": x[:batch]})
            assert all(out[k].shape == expected[k].shape and np.allclose(out[k], expected[k]) for k in expected)
        assert all(engine.last_timing[k] >= 0 for k in ("h2d", "compute", "d2h"))
    assert CUDA.Context.get_current() is None  # every push popped
    assert all(np.isfinite(v).all() for v in out.values() if v.dtype == np.float32)  # copies outlive the engine


def test_real_pycuda_open_here_infer_and_close_there(trt, tmp_path):
    _, plan = fake_plan(tmp_path)
    x = np.ones((2, 3, 64, 96), np.float32)
    caught, results = [], []
    for _ in range(3):
        engine = engines.load(plan)

        def work(engine=engine):
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")  # pycuda warns when it cannot free from this thread
                results.append(engine.infer({"images": x}))
                engine.close()
                results.append(CUDA.Context.get_current())
            caught.extend(str(w.message) for w in seen)

        worker = threading.Thread(target=work)
        worker.start()
        worker.join(timeout=60)
        assert not engine.is_open
    assert caught == [] and results[1::2] == [None] * 3
    assert all(np.array_equal(results[0][k], results[-2][k]) for k in results[0])


def test_fake_build_then_real_pycuda_run_below_the_profile_minimum(trt, tmp_path):
    onnx_path = make_tiny_onnx(tmp_path / "tiny.onnx", names=NAMES, batch=None)
    plan = build_engine(onnx_path, tmp_path / "b4.engine", batch="4", log=lambda *a: None)
    x = np.random.default_rng(1).random((1, 3, 64, 96), dtype=np.float32)
    with engines.load(plan) as engine, engines.load(onnx_path) as reference:
        out, expected = engine.infer({"images": x}), reference.infer({"images": x})
    assert all(np.allclose(out[k], expected[k]) for k in expected)
