"""The TensorRT backend and builder on the CPU, against stand-ins that behave like tensorrt/pycuda (fake_tensorrt.py).

Checks buffer planning and padding for the profile's limits, the primary context's lifetime across
threads, asynchronous copies, event timing, the timing cache, TF32, the logger, sidecar checks and
copies of the outputs. Real TensorRT: test_tensorrt.py.
"""

import sys
import threading
import types
import warnings
from dataclasses import replace

import numpy as np
import onnx
import pytest
from fake_tensorrt import GPU, add_builder, cache_blob, make_plan, make_pycuda_driver, make_tensorrt
from tiny_model import make_tiny_model, make_tiny_onnx

import engines
from engines.build import build_engine
from engines.errors import RoadsightError
from engines.meta import ModelMeta
from engines.tensorrt import TensorRTEngine
from engines.trt_plan import EngineInfo, write_sidecar

NAMES = ("car", "bus")


def install_fakes(monkeypatch, version: str = "10.3.0.26") -> types.SimpleNamespace:
    cuda = make_pycuda_driver()
    trt = make_tensorrt(cuda, version)
    monkeypatch.setitem(sys.modules, "pycuda", types.SimpleNamespace(driver=cuda, VERSION_TEXT="2025.1.2"))
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return types.SimpleNamespace(cuda=cuda, trt=trt, calls=add_builder(trt))


@pytest.fixture
def fake(monkeypatch):
    fakes = install_fakes(monkeypatch)
    yield fakes
    assert fakes.cuda.stack() == [], "a context was pushed and never popped"
    assert fakes.cuda.state.refs[0] <= 1, "the primary context was retained more than once"
    assert not [line for line in fakes.trt.log if "Logger" in line]


def make_engine(folder, batch=None, seg_output="prob", tensorrt="10.3.0.26", profile=(1, 2, 4)):
    """A fake plan of the tiny model with its sidecar (dynamic batch: `profile` = min, opt, max)."""
    onnx_path = make_tiny_onnx(folder / f"tiny{batch}{seg_output}.onnx", names=NAMES, batch=batch, seg_output=seg_output)
    shapes = None if batch else [[n, 3, 64, 96] for n in profile]
    plan = folder / f"tiny{batch}{seg_output}.engine"
    plan.write_bytes(make_plan(onnx_path.read_bytes(), shapes))
    meta = ModelMeta(names=NAMES, imgsz=(64, 96), batch=batch, seg_output=seg_output)
    write_sidecar(plan, EngineInfo(meta, tensorrt, GPU, (8, 9), onnx=onnx_path.name))
    return onnx_path, plan


def tiny_as(path, precision: str):
    """The tiny model with `precision` in its metadata."""
    model = make_tiny_model(names=NAMES, batch=1)
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props}, source=path.name)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, replace(meta, precision=precision).to_props())
    onnx.save(model, path)
    return path


def frames(n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        frame = np.full((128, 192, 3), 20, np.uint8)
        frame[32 + 4 * i : 64, 64:96] = 255
        out.append(frame)
    return out


def test_dynamic_batch_matches_onnxruntime_and_releases_everything(fake, tmp_path):
    onnx_path, plan = make_engine(tmp_path)
    x = np.random.default_rng(0).random((4, 3, 64, 96), dtype=np.float32)
    with engines.load(plan, timing=True) as engine, engines.load(onnx_path) as reference:
        assert isinstance(engine, TensorRTEngine) and (engine.min_batch, engine.max_batch) == (1, 4)
        assert [(s.name, s.dtype, s.shape) for s in engine.inputs] == [("images", np.float32, (None, 3, 64, 96))]
        assert engine.versions == "TensorRT 10.3.0.26, CUDA driver 12.6, pycuda 2025.1.2 (built for CUDA 12.6)"
        for batch in (1, 4, 3):
            out = engine.infer({"images": x[:batch]})
            expected = reference.infer({"images": x[:batch]})
            for name in expected:
                assert out[name].shape == expected[name].shape and np.allclose(out[name], expected[name]), name
        assert engine.last_timing.keys() >= {"h2d", "compute", "d2h", "infer"}
        assert engine.last_timing["h2d"] > 0 and engine.last_timing["compute"] == 1.0
        with pytest.raises(RoadsightError, match=r"batch 5 is too large. Expected at most 4"):
            engine.infer({"images": np.zeros((5, 3, 64, 96), np.float32)})
    assert not engine.is_open and fake.cuda.state.memory == {}  # device and pinned memory freed


def test_a_profile_minimum_above_one_pads_smaller_batches(fake, tmp_path):
    """`roadsight build --batch 4` on a dynamic ONNX: profile (4, 4, 4); batch 1 and a last chunk of 1 still run."""
    onnx_path = make_tiny_onnx(tmp_path / "tiny.onnx", names=NAMES, batch=None)
    plan = build_engine(onnx_path, tmp_path / "tiny.engine", batch="4", log=lambda *a: None)
    x = np.random.default_rng(1).random((4, 3, 64, 96), dtype=np.float32)
    with engines.load(plan) as engine, engines.load(onnx_path) as reference:
        for batch in (1, 3, 4):
            out, expected = engine.infer({"images": x[:batch]}), reference.infer({"images": x[:batch]})
            assert all(out[k].shape == expected[k].shape and np.allclose(out[k], expected[k]) for k in expected)
        got = engines.Predictor(engine)(frames(5))  # chunks of 4 and 1
        want = engines.Predictor(reference)(frames(5))
        assert (engine.min_batch, engine.max_batch) == (4, 4) and engine.inputs[0].shape[0] is None
    assert [p.frame_index for p in got] == list(range(5))
    assert all(np.allclose(g.boxes, w.boxes) and np.array_equal(g.lane, w.lane) for g, w in zip(got, want))


def test_outputs_are_copies_that_outlive_the_call_and_the_engine(fake, tmp_path):
    onnx_path, plan = make_engine(tmp_path)
    a, b = np.zeros((1, 3, 64, 96), np.float32), np.ones((1, 3, 64, 96), np.float32)
    engine = engines.load(plan)
    assert not engine.reuses_outputs
    first = engine.infer({"images": a})
    engine.infer({"images": b})
    engine.close()
    with engines.load(onnx_path) as reference:
        expected = reference.infer({"images": a})
    assert all(np.array_equal(first[k], expected[k]) for k in expected)


def test_open_on_one_thread_infer_and_close_on_another(fake, tmp_path):
    onnx_path, plan = make_engine(tmp_path, batch=1, seg_output="mask")
    engine = engines.load(plan)
    assert engine.max_batch == 1 and engine.outputs[2].dtype == np.uint8
    results, errors = {}, []

    def work():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # pycuda warns when it cannot free from this thread
                results["p"] = engines.Predictor(engine)(frames(2))
                engine.close()
            results["stack"] = list(fake.cuda.stack())
        except Exception as error:  # surfaced below
            errors.append(error)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=30)
    assert not errors, errors
    assert results["stack"] == [] and fake.cuda.state.memory == {}
    with engines.load(onnx_path) as reference:
        expected = engines.Predictor(reference)(frames(2))
    for got, want in zip(results["p"], expected):
        assert np.array_equal(got.boxes, want.boxes) and np.array_equal(got.lane, want.lane)
    for _ in range(2):  # opened here, closed there: no reference to the primary context piles up
        engine = engines.load(plan)
        closer = threading.Thread(target=engine.close)
        closer.start()
        closer.join(timeout=30)
    assert fake.cuda.state.refs[0] == 1 and fake.cuda.state.memory == {}


def test_one_logger_for_all_engines_and_builds(fake, tmp_path):
    """Several engines at once (as `roadsight bench` opens them) and a build: TensorRT sees one logger."""
    onnx_path, plan = make_engine(tmp_path)
    with engines.load(plan), engines.load(plan):
        build_engine(onnx_path, tmp_path / "again.engine", log=lambda *a: None)
    assert [line for line in fake.trt.log if "Logger" in line] == []


def test_one_primary_context_retained_for_the_process(fake, tmp_path):
    _, plan = make_engine(tmp_path)
    with engines.load(plan) as first, engines.load(plan) as second:
        assert first._context is second._context
    with engines.load(plan) as third:
        third.infer({"images": np.zeros((2, 3, 64, 96), np.float32)})
    assert fake.cuda.state.refs[0] == 1 and fake.cuda.stack() == []


def test_timings_are_read_and_stored_inside_the_lock(fake, tmp_path):
    _, plan = make_engine(tmp_path)
    with engines.load(plan, timing=True) as engine:
        seen = []

        class Watched:
            """The engine's lock, noting what `last_timing` holds when a call lets the next one in."""

            lock = threading.Lock()

            def __enter__(self):
                self.lock.acquire()

            def __exit__(self, *exc):
                seen.append(dict(engine.last_timing))
                self.lock.release()

        engine._lock = Watched()
        engine.infer({"images": np.zeros((2, 3, 64, 96), np.float32)})
    assert seen[0].keys() >= {"h2d", "compute", "d2h"} and seen[0]["h2d"] > 0


def test_sidecar_from_another_tensorrt_or_gpu_is_refused(fake, tmp_path):
    _, plan = make_engine(tmp_path, tensorrt="11.4.0.106")
    with pytest.raises(RoadsightError, match=r"built with TensorRT 11.4.0.106. Expected TensorRT 10.3.0.26"):
        engines.load(plan)
    meta = ModelMeta(names=NAMES, imgsz=(64, 96), batch=None)
    write_sidecar(plan, EngineInfo(meta, "10.3.0.26", "Orin", (8, 7)))
    with pytest.raises(RoadsightError, match=r"compute capability 8.7 \(Orin\). Expected 8.9 \(Fake GPU\)"):
        engines.load(plan)


def test_a_plan_tensorrt_cannot_read_is_one_line(fake, tmp_path):
    _, plan = make_engine(tmp_path)
    plan.write_bytes(b"garbage")
    with pytest.raises(RoadsightError, match=r"TensorRT cannot deserialize it"):
        engines.load(plan)
    assert fake.cuda.state.memory == {}


def test_device_must_be_a_gpu(fake, tmp_path):
    _, plan = make_engine(tmp_path)
    with pytest.raises(RoadsightError, match=r"unknown device for a TensorRT engine.*Expected one of cuda\[:N\], got 'tensorrt'"):
        engines.load(plan, device="tensorrt")
    with pytest.raises(RoadsightError, match=r"device cuda:3: no such GPU"):
        engines.load(plan, device="cuda:3")


@pytest.mark.parametrize("version", ["10.3.0.26", "11.4.0.106"], ids=["trt10", "trt11"])
def test_build_plans_profile_flags_tf32_cache_and_sidecar(monkeypatch, tmp_path, version):
    import json

    fake = install_fakes(monkeypatch, version)
    onnx_path = make_tiny_onnx(tmp_path / "tiny.onnx", names=NAMES, batch=None)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(cache_blob(f"{GPU}/{version}", b"old"))
    lines = []
    out = build_engine(onnx_path, tmp_path / "out" / "tiny.engine", batch="1,2,4", workspace_gib=0.5, timing_cache=cache, log=lines.append)
    assert fake.calls["flags"] == 1 << 5 and fake.calls["tf32"] is False  # FP32 means FP32
    assert fake.calls["workspace"] == (0, 1 << 29) and cache.read_bytes() == cache_blob(f"{GPU}/{version}", b"old+timings")
    assert lines[0] == f"found TensorRT {version}, CUDA driver 12.6, pycuda 2025.1.2 (built for CUDA 12.6)"
    assert fake.calls["profiles"] == [{"images": ((1, 3, 64, 96), (2, 3, 64, 96), (4, 3, 64, 96))}]
    info = json.loads((tmp_path / "out" / "tiny.engine.json").read_text())
    assert info["tensorrt"] == version and info["gpu"] == GPU and info["compute_capability"] == [8, 9]
    assert info["meta"]["batch"] is None and info["profile"]["images"][2] == [4, 3, 64, 96]
    with engines.load(out) as engine:  # the fake runtime runs the "plan"
        assert engine.meta.names == NAMES and engine.max_batch == 4
    assert fake.cuda.stack() == []


@pytest.mark.parametrize("blob", [cache_blob("Orin/10.3.0.26", b"old"), b"damaged"], ids=["foreign", "damaged"])
def test_a_refused_timing_cache_is_replaced_by_a_fresh_one(fake, tmp_path, blob):
    onnx_path = make_tiny_onnx(tmp_path / "tiny.onnx", names=NAMES, batch=1)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(blob)
    lines = []
    build_engine(onnx_path, tmp_path / "tiny.engine", timing_cache=cache, log=lines.append)
    assert [line for line in lines if "warning" in line] == [
        "warning: timing.cache: TensorRT refused this timing cache (another GPU or TensorRT version, or damaged); starting a fresh one"
    ]
    assert cache.read_bytes() == cache_blob(f"{GPU}/10.3.0.26", b"+timings")


def test_tf32_stays_allowed_for_fp16_and_int8_models(fake, tmp_path):
    build_engine(tiny_as(tmp_path / "int8.onnx", "int8-trt"), tmp_path / "int8.engine", log=lambda *a: None)
    assert fake.calls["tf32"] is True


def test_build_refuses_an_int8_cpu_model_before_importing_tensorrt(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` fails
    onnx_path = tiny_as(tmp_path / "m.int8-cpu.onnx", "int8-cpu")
    with pytest.raises(RoadsightError, match=r"m.int8-cpu.onnx: an int8-cpu model .* Quantize with `roadsight quantize --target trt`"):
        build_engine(onnx_path, tmp_path / "m.engine")


def test_build_static_onnx_and_refusals(fake, tmp_path):
    onnx_path = make_tiny_onnx(tmp_path / "static.onnx", batch=1)
    build_engine(onnx_path, tmp_path / "static.engine", log=lambda *a: None)
    assert fake.calls["profiles"] == []
    with pytest.raises(RoadsightError, match=r"fixed batch of 1. Expected --batch 1 for it, got 1,4,8"):
        build_engine(onnx_path, tmp_path / "x.engine", batch=(1, 4, 8), log=lambda *a: None)
    with pytest.raises(RoadsightError, match=r"no such ONNX file"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "x.engine")


def test_roadsight_run_says_what_it_found_and_runs_the_engine(fake, tmp_path):
    """`roadsight run` on a .engine: the versions line first, then the whole pipeline on the fake GPU."""
    import io
    import json

    import cv2
    from rich.console import Console

    from app.run import RunOptions, run

    _, plan = make_engine(tmp_path, profile=(2, 2, 4))
    (tmp_path / "frames").mkdir()
    for i, frame in enumerate(frames(3)):
        cv2.imwrite(str(tmp_path / "frames" / f"{i}.png"), frame)
    text = io.StringIO()
    stats = run(RunOptions(plan, [str(tmp_path / "frames")], jsonl=tmp_path / "out.jsonl"), Console(file=text, width=200))
    assert text.getvalue().splitlines()[0] == "found TensorRT 10.3.0.26, CUDA driver 12.6, pycuda 2025.1.2 (built for CUDA 12.6)"
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all("detections" in json.loads(line) for line in lines), stats



def test_cli_build_refuses_an_int8_cpu_model_in_one_line(tmp_path):
    import subprocess

    onnx_path = tiny_as(tmp_path / "m.int8-cpu.onnx", "int8-cpu")
    run = subprocess.run([sys.executable, "-m", "app.cli", "build", "--onnx", str(onnx_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "roadsight quantize --target trt" in run.stderr
