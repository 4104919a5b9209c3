"""TensorRT backend and builder: real builds of the tiny model, compared with ONNX Runtime.

Needs an NVIDIA GPU with TensorRT and pycuda (marked `gpu`); without them only the missing-dependency
errors are checked.
"""

import importlib.util
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from tiny_model import make_tiny_onnx, reference_outputs

import engines
from engines.errors import RoadsightError
from engines.trt_plan import sidecar_path


def _gpu_ready() -> bool:
    if not (importlib.util.find_spec("tensorrt") and importlib.util.find_spec("pycuda")):
        return False
    try:
        import pycuda.driver as cuda

        cuda.init()
        return cuda.Device.count() > 0
    except Exception:
        return False


HAVE_GPU = _gpu_ready()
gpu = pytest.mark.skipif(not HAVE_GPU, reason="TensorRT and pycuda not installed; run on a machine with an NVIDIA GPU")
NAMES = ("car", "bus")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_without_tensorrt_build_and_load_say_what_to_install(tmp_path):
    onnx = make_tiny_onnx(tmp_path / "tiny.onnx")
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "build", "--onnx", str(onnx)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1
    assert "TensorRT is not installed" in run.stderr and "on a machine with an NVIDIA GPU" in run.stderr
    assert "Traceback" not in run.stderr
    (tmp_path / "m.engine").write_bytes(b"plan")
    with pytest.raises(RoadsightError, match=r"TensorRT is not installed: running a .engine needs it"):
        engines.load(tmp_path / "m.engine")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The tiny dynamic-batch model built for batches 1..4 (opt 2), with a timing cache."""
    from engines.build import build_engine

    folder = tmp_path_factory.mktemp("trt")
    onnx = make_tiny_onnx(folder / "tiny.onnx", names=NAMES, batch=None)
    engine = build_engine(onnx, folder / "tiny.engine", batch=(1, 2, 4), workspace_gib=0.5, timing_cache=folder / "timing.cache")
    return onnx, engine, folder


@gpu
@pytest.mark.gpu
def test_build_writes_plan_sidecar_and_timing_cache(built):
    import tensorrt as trt

    onnx, engine, folder = built
    assert engine.stat().st_size > 0 and (folder / "timing.cache").stat().st_size > 0
    info = json.loads(sidecar_path(engine).read_text())
    assert info["tensorrt"] == trt.__version__ and info["onnx"] == "tiny.onnx"
    assert info["meta"]["names"] == list(NAMES) and info["meta"]["batch"] is None
    assert info["profile"]["images"] == [[1, 3, 64, 96], [2, 3, 64, 96], [4, 3, 64, 96]]


@gpu
@pytest.mark.gpu
def test_tensorrt_matches_onnxruntime_and_the_reference(built):
    onnx, engine_path, _ = built
    x = np.random.default_rng(0).random((3, 3, 64, 96), dtype=np.float32)
    with engines.load(engine_path, timing=True) as engine, engines.load(onnx) as ort:
        assert engine.backend == "tensorrt" and engine.max_batch == 4
        assert [(s.name, s.shape) for s in engine.inputs] == [("images", (None, 3, 64, 96))]
        assert {s.name for s in engine.outputs} == {"boxes", "scores", "drivable", "lane"}
        for batch in (1, 3, 2):
            out = {k: v.copy() for k, v in engine.infer({"images": x[:batch]}).items()}
            expected = ort.infer({"images": x[:batch]})
            for name in expected:
                assert out[name].shape == expected[name].shape
                assert np.allclose(out[name], expected[name], atol=1e-4), name
        assert set(engine.last_timing) >= {"h2d", "compute", "d2h", "infer"}
        assert all(v >= 0 for v in engine.last_timing.values())
        with pytest.raises(RoadsightError, match=r"batch 5 is too large. Expected at most 4"):
            engine.infer({"images": np.zeros((5, 3, 64, 96), np.float32)})
    assert np.allclose(out["scores"], reference_outputs(x[:2], NAMES)["scores"], atol=1e-4)


@gpu
@pytest.mark.gpu
def test_open_on_one_thread_run_on_another(built):
    _, engine_path, _ = built
    frame = np.full((128, 192, 3), 20, np.uint8)
    frame[32:64, 64:96] = 255
    results = {}
    with engines.load(engine_path) as engine:
        predictor = engines.Predictor(engine)
        worker = threading.Thread(target=lambda: results.update(p=predictor([frame, frame])))
        worker.start()
        worker.join(timeout=60)
        here = predictor([frame])
    with engines.load(built[0]) as ort:
        reference = engines.Predictor(ort)([frame])
    assert len(results["p"]) == 2 and np.allclose(results["p"][1].boxes, here[0].boxes)
    assert np.allclose(here[0].boxes, reference[0].boxes, atol=1e-3) and np.array_equal(here[0].lane, reference[0].lane)


@gpu
@pytest.mark.gpu
def test_static_mask_model_and_cli_build(tmp_path):
    onnx = make_tiny_onnx(tmp_path / "mask.onnx", seg_output="mask", batch=1)
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "build", "--onnx", str(onnx), "--workspace", "0.5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    x = np.random.default_rng(1).random((1, 3, 64, 96), dtype=np.float32)
    with engines.load(tmp_path / "mask.engine") as engine:
        assert engine.max_batch == 1 and engine.meta.batch == 1
        out = engine.infer({"images": x})
        assert out["lane"].dtype == np.uint8
        assert np.array_equal(out["lane"], reference_outputs(x, seg_output="mask")["lane"])


@gpu
@pytest.mark.gpu
def test_sidecar_from_another_tensorrt_is_refused(built, tmp_path):
    _, engine_path, _ = built
    copy = tmp_path / "other.engine"
    copy.write_bytes(engine_path.read_bytes())
    info = json.loads(sidecar_path(engine_path).read_text())
    sidecar_path(copy).write_text(json.dumps({**info, "tensorrt": "9.0.0.1"}))
    with pytest.raises(RoadsightError, match=r"other.engine: built with TensorRT 9.0.0.1"):
        engines.load(copy)
    sidecar_path(copy).unlink()
    with pytest.raises(RoadsightError, match=r"no sidecar other.engine.json"):
        engines.load(copy)


@gpu
@pytest.mark.gpu
def test_a_profile_minimum_above_one_still_runs_batch_one(tmp_path):
    """`--batch 4` on a dynamic ONNX: real TensorRT reports -1 for the batch; batch 1 is padded up to 4."""
    from engines.build import build_engine

    onnx = make_tiny_onnx(tmp_path / "tiny.onnx", names=NAMES, batch=None)
    engine_path = build_engine(onnx, tmp_path / "b4.engine", batch="4", workspace_gib=0.5, log=lambda *a: None)
    x = np.random.default_rng(2).random((1, 3, 64, 96), dtype=np.float32)
    with engines.load(engine_path) as engine, engines.load(onnx) as ort:
        assert (engine.min_batch, engine.max_batch) == (4, 4)
        out, expected = engine.infer({"images": x}), ort.infer({"images": x})
    assert all(out[k].shape == expected[k].shape and np.allclose(out[k], expected[k], atol=1e-4) for k in expected)


@gpu
@pytest.mark.gpu
def test_infer_and_close_on_another_thread_then_reopen(built):
    _, engine_path, _ = built
    x = np.zeros((2, 3, 64, 96), np.float32)
    kept = {}
    for _ in range(2):
        engine = engines.load(engine_path)
        worker = threading.Thread(target=lambda: (kept.update(engine.infer({"images": x})), engine.close()))
        worker.start()
        worker.join(timeout=60)
        assert not engine.is_open
    assert kept["boxes"].shape[0] == 2 and np.isfinite(kept["boxes"]).all()  # copies outlive the engine

