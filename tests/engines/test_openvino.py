"""OpenVINO backend against ONNX Runtime on the tiny model: FP32 tight, Q/DQ INT8 within a stated bound."""

import ctypes
import importlib.util
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from tiny_model import make_tiny_onnx, reference_outputs

import engines
from engines.errors import RoadsightError
from engines.openvino import OpenVinoEngine, core, parse_device, unsigned_activations

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed (an x86-64 runtime dependency)"
)

# INT8 bound, OpenVINO (integer convolution) vs ONNX Runtime (the same Q/DQ graph in float): the two may
# round a value to neighbouring steps of a quantizer; one step of the conv input (scale <= 1/127) moves a
# score (sigmoid(20 * (mean - 0.6)), slope <= 5) by <= 5/127 ~ 0.04.
INT8_SCORE_ATOL = 0.04
SHIPPED_TRT = Path(__file__).resolve().parents[2] / "app" / "models" / "roadsight-n.int8-trt.onnx"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_onnx(tmp_path_factory.mktemp("m") / "tiny.onnx", names=("car", "bus"))


@pytest.fixture(scope="module")
def tiny_int8(tmp_path_factory, tiny):
    """The tiny model with its conv quantized like the TensorRT target: symmetric int8 Q/DQ, per-channel weights."""
    quantization = pytest.importorskip("onnxruntime.quantization")

    class Frames(quantization.CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.frames = iter([{"images": rng.random((1, 3, 64, 96), dtype=np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.frames, None)

    out = tmp_path_factory.mktemp("m") / "tiny.int8-trt.onnx"
    quantization.quantize_static(
        str(tiny), str(out), Frames(), quant_format=quantization.QuantFormat.QDQ, op_types_to_quantize=["Conv"],
        activation_type=quantization.QuantType.QInt8, weight_type=quantization.QuantType.QInt8, per_channel=True,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
    return out


def _pair(path, feed, **options):
    """(ONNX Runtime outputs, OpenVINO outputs, OpenVINO engine) for one feed."""
    with engines.load(path, intra_op_threads=1) as ort_engine:
        expected = ort_engine.infer(feed)
    with engines.load(path, device="openvino", threads=1, **options) as ov_engine:
        got = ov_engine.infer(feed)
    return expected, got, ov_engine


@needs_openvino
def test_fp32_matches_onnxruntime_and_the_reference(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ROADSIGHT_CACHE", str(tmp_path))
    x = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
    expected, got, engine = _pair(tiny, {"images": x}, precision="f32")
    assert isinstance(engine, OpenVinoEngine) and engine.backend == "openvino" and not engine.is_open
    assert engine.meta.names == ("car", "bus") and engine.meta.imgsz == (64, 96)
    assert [(s.name, s.dtype, s.shape) for s in engine.inputs] == [("images", np.float32, (1, 3, 64, 96))]
    assert [s.name for s in engine.outputs] == ["boxes", "scores", "drivable", "lane"]
    assert engine.runtime_precision == "f32"
    reference = reference_outputs(x, ("car", "bus"))
    for name in expected:
        assert got[name].dtype == expected[name].dtype and got[name].shape == expected[name].shape, name
        assert np.abs(got[name] - expected[name]).max() < 1e-5, name
        assert np.abs(got[name] - reference[name]).max() < 1e-5, name
    assert any((tmp_path / "openvino").iterdir()), "the compiled model was not cached"


@needs_openvino
def test_int8_within_the_bound(tiny_int8, tmp_path, monkeypatch):
    monkeypatch.setenv("ROADSIGHT_CACHE", str(tmp_path))
    x = np.random.default_rng(2).random((1, 3, 64, 96), dtype=np.float32)
    expected, got, engine = _pair(tiny_int8, {"images": x}, precision="f32")
    # OpenVINO picks the kernel: this 3-channel conv with a uint8 zero point runs in f32 (the shipped model's
    # convs run in int8: test_shipped_symmetric_int8_model_agrees_with_onnxruntime)
    assert engine.runtime_precision in ("int8+f32", "f32")
    assert np.abs(got["scores"] - expected["scores"]).max() < INT8_SCORE_ATOL
    for name in ("boxes", "drivable", "lane"):  # not quantized
        assert np.abs(got[name] - expected[name]).max() < 1e-5, name
    import openvino

    model = openvino.Core().read_model(str(tiny_int8))
    assert unsigned_activations(model) > 0 and unsigned_activations(model) == 0  # int8 activations moved to uint8


@needs_openvino
@pytest.mark.skipif(not SHIPPED_TRT.is_file(), reason="app/models/roadsight-n.int8-trt.onnx is not in this checkout")
def test_shipped_symmetric_int8_model_agrees_with_onnxruntime(tmp_path, monkeypatch):
    # OpenVINO's signed-int8 path put 2.5% of these drivable pixels on the other side of 0.5 (uint8: 0.23%)
    monkeypatch.setenv("ROADSIGHT_CACHE", str(tmp_path))
    x = np.random.default_rng(0).random((1, 3, 384, 640), dtype=np.float32)
    expected, got, engine = _pair(SHIPPED_TRT, {"images": x})
    assert engine.runtime_precision.startswith("int8+")
    assert np.mean((got["drivable"] > 0.5) != (expected["drivable"] > 0.5)) < 0.01
    assert np.mean((got["lane"] > 0.5) != (expected["lane"] > 0.5)) < 0.01


@needs_openvino
def test_dynamic_batch_and_mask_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("ROADSIGHT_CACHE", str(tmp_path))
    path = make_tiny_onnx(tmp_path / "dyn.onnx", batch=None, seg_output="mask")
    x = np.random.default_rng(3).random((3, 3, 64, 96), dtype=np.float32)
    expected, got, engine = _pair(path, {"images": x}, precision="f32")
    assert engine.inputs[0].shape == (None, 3, 64, 96) and engine.max_batch is None
    assert got["lane"].dtype == np.uint8 and got["boxes"].shape == (3, 4, 96)
    for name in expected:
        assert np.mean(got[name] != expected[name]) < 1e-3 if name in ("drivable", "lane") else np.allclose(got[name], expected[name], atol=1e-5)


@needs_openvino
def test_outputs_are_not_overwritten_by_the_next_call(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ROADSIGHT_CACHE", str(tmp_path))
    with engines.load(tiny, device="openvino") as engine:
        first = engine.infer({"images": np.zeros((1, 3, 64, 96), np.float32)})
        kept = first["drivable"].copy()
        engine.infer({"images": np.ones((1, 3, 64, 96), np.float32)})
    assert np.array_equal(first["drivable"], kept)


@needs_openvino
def test_devices_and_bad_input(tiny):
    assert parse_device("openvino") == "CPU" and parse_device("openvino:gpu") == "GPU" and parse_device("openvino:GPU.1") == "GPU.1"
    with pytest.raises(RoadsightError, match="cannot read the index. Expected one of openvino"):
        parse_device("openvino:G/U")
    with pytest.raises(RoadsightError, match="--precision"):
        engines.load(tiny, device="openvino", precision="int4")
    if "NPU" not in core().available_devices:
        with pytest.raises(RoadsightError, match="no such device"):
            engines.load(tiny, device="openvino:NPU")


class _Stack(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _signal_stack_is_mapped() -> bool:
    """True when the calling thread has no signal stack (sigaltstack) or one inside a read-write mapping."""
    stack = _Stack()
    assert ctypes.CDLL(None, use_errno=True).sigaltstack(None, ctypes.byref(stack)) == 0
    if stack.ss_flags & 2:  # SS_DISABLE
        return True
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, perms = line.split()[:2]
        low, high = (int(end, 16) for end in span.split("-"))
        if low <= stack.ss_sp and stack.ss_sp + stack.ss_size <= high:
            return perms.startswith("rw")
    return False


@needs_openvino
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack and /proc/self/maps are Linux's")
def test_engines_ended_out_of_order_or_on_another_thread_leave_the_signal_stack_mapped(tiny):
    """OpenVINO's CPU plugin swaps the creating thread's signal stack (engines.openvino's docstring): with a Core per
    engine, these left it unmapped, and the next signal to a Python handler (SIGTERM to `roadsight run`) was SIGSEGV."""
    assert engines.fastest_cpu_device() == "openvino"
    first = engines.load(tiny, device="openvino", cache=False)
    second = engines.load(tiny, device="openvino", cache=False)
    first.close()  # before the second: not in reverse order
    second.close()
    assert _signal_stack_is_mapped()

    opened, closed, mapped = threading.Event(), threading.Event(), []

    def worker():
        engine = engines.load(tiny, device="openvino", cache=False)
        holder.append(engine)
        opened.set()
        closed.wait(10)
        mapped.append(_signal_stack_is_mapped())

    holder: list = []
    thread = threading.Thread(target=worker)
    thread.start()
    assert opened.wait(60)
    holder.pop().close()  # on this thread, not the one that opened it
    closed.set()
    thread.join(10)
    assert mapped == [True]


def test_missing_openvino_is_one_line(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(RoadsightError) as error:
        engines.load(tiny, device="openvino")
    assert "OpenVINO is not installed" in str(error.value) and "\n" not in str(error.value)
    assert engines.fastest_cpu_device() == "cpu"


@needs_openvino
def test_unreadable_model_and_missing_metadata_are_one_line(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(RoadsightError, match="OpenVINO cannot read it"):
        engines.load(broken, device="openvino", cache=False)
    import onnx

    bare = onnx.load(str(make_tiny_onnx(tmp_path / "bare.onnx")))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(RoadsightError, match="no roadsight metadata inside"):
        engines.load(tmp_path / "bare.onnx", device="openvino", cache=False)
