"""OpenVINO backend: any roadsight ONNX (FP32, FP16 weights, Q/DQ INT8) on Intel CPUs and GPUs.

OpenVINO runs a Q/DQ model's quantized convolutions in u8/i8 and, by default on CPUs with AMX or
AVX-512 BF16, the float part in bf16. `precision` sets `INFERENCE_PRECISION_HINT` ('f32' forces
FP32 arithmetic); `runtime_precision` reports what the compiled model actually runs, read from the
runtime graph (`runtimePrecision` of its convolutions and matrix products), e.g. 'int8+bf16'.
Compiled models are cached (`CACHE_DIR`) so a second start skips compilation.

One `ov.Core` serves the whole process (`core()`), kept until exit. Every Core makes its own CPU plugin, and
the plugin (`ov::intel_cpu::SigAltStackSetup`, for AMX's larger signal frames) installs a signal stack of
its own (sigaltstack) on the thread that creates it, remembering the one before; on destruction it unmaps its
stack and restores the remembered one. Two plugins on one thread that do not end in reverse order, or one
that ends on another thread, leave the creating thread's signal stack unmapped (OpenVINO 2026.4), and the
next signal with a Python handler on that thread (Python installs handlers SA_ONSTACK) kills the process with
SIGSEGV and no traceback: SIGTERM to `roadsight run` once two Cores had come and gone. A single Core makes
a single plugin, whose stack stays valid for the life of the process.

Signed int8 activations (the symmetric Q/DQ model made for TensorRT) are moved to uint8 with zero point
+128 before compiling (`unsigned_activations`): the same grid of values, but OpenVINO 2025.4 and 2026.4
computed the signed path wrongly on an AVX-512-VNNI CPU (drivable mask 5.7% off ONNX Runtime's on held-out
frames, 0.2% after the shift; docs/CPU_SPEED.md).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import numpy as np

from engines.base import Engine, TensorSpec
from engines.device import parse_device as parse_any_device
from engines.errors import RoadsightError
from engines.meta import ModelMeta

PRECISIONS = ("auto", "f32", "bf16", "f16")
COMPUTE_TYPES = {"Convolution", "FullyConnected", "MatMul", "GroupConvolution"}
INT8_TYPES = {"u8", "i8"}


def parse_device(device: str) -> str:
    """'openvino' -> 'CPU'; 'openvino:GPU' (or :gpu, :GPU.1, :NPU) -> OpenVINO's device name."""
    return str(parse_any_device(device, ("openvino",), "OpenVINO").index or "CPU")


def cache_dir() -> Path:
    """Where compiled models are cached: $ROADSIGHT_CACHE/openvino, else the user cache folder."""
    root = os.environ.get("ROADSIGHT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "roadsight"
    return Path(root) / "openvino"


def import_openvino():
    """The `openvino` module, or a one-line error saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise RoadsightError(
            "device openvino: OpenVINO is not installed. Expected the openvino package (part of the x86-64 "
            "install), got none. pip install openvino, or use --device cpu (ONNX Runtime)."
        ) from None
    return openvino


_core = None
_core_lock = threading.Lock()


def core():
    """The process's one `ov.Core`, made at the first call and never released (see the module docstring);
    a one-line error when OpenVINO is not installed."""
    global _core
    ov = import_openvino()
    with _core_lock:
        if _core is None:
            _core = ov.Core()
        return _core


def openvino_available() -> bool:
    """True when OpenVINO can be imported and sees a CPU."""
    try:
        return "CPU" in core().available_devices
    except (RoadsightError, RuntimeError):
        return False


def _spec(port) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorSpec(port.get_any_name(), port.get_element_type().to_dtype(), shape)


def _read_meta(model, source: str) -> ModelMeta:
    """The roadsight metadata, which the ONNX frontend keeps in the model's rt_info (`framework` section)."""
    key = ["framework", "roadsight"]
    props = {"roadsight": model.get_rt_info(key).astype(str)} if model.has_rt_info(key) else {}
    return ModelMeta.from_props(props, source=source)


def unsigned_activations(model) -> int:
    """Turn each int8 activation quantizer (FakeQuantize -> Convert i8 -> Convert f32 -> Subtract zp) into uint8
    with zero point + 128, in place; returns how many. Weights and uint8 quantizers are left alone."""
    import openvino as ov
    import openvino.opset13 as ops

    count = 0
    for fq in model.get_ordered_ops():
        narrow = [t.get_node() for t in fq.output(0).get_target_inputs()] if fq.get_type_name() == "FakeQuantize" else []
        if len(narrow) != 1 or narrow[0].get_type_name() != "Convert" or narrow[0].get_output_element_type(0) != ov.Type.i8:
            continue
        widen = [t.get_node() for t in narrow[0].output(0).get_target_inputs()]
        subtracts = [t.get_node() for w in widen for t in w.output(0).get_target_inputs()]
        zero_points = [_constant(s.input_value(1).get_node()) for s in subtracts]
        if any(w.get_type_name() != "Convert" for w in widen) or any(s.get_type_name() != "Subtract" for s in subtracts) \
                or any(zp is None for zp in zero_points):
            continue
        for port in (3, 4):  # output low/high: [-128, 127] -> [0, 255]
            fq.input(port).replace_source_output(ops.constant(_constant(fq.input_value(port).get_node()) + 128).output(0))
        unsigned = ops.convert(fq.output(0), "u8")
        for node in widen:
            node.input(0).replace_source_output(unsigned.output(0))
        for node, zero_point in zip(subtracts, zero_points):
            node.input(1).replace_source_output(ops.constant(zero_point + 128).output(0))
        count += 1
    model.validate_nodes_and_infer_types()
    return count


def _constant(node) -> np.ndarray | None:
    """The float32 value of a Constant, possibly behind Converts; None for anything else."""
    while node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    return node.get_data().astype(np.float32) if node.get_type_name() == "Constant" else None


def runtime_precision(compiled) -> str:
    """'int8+bf16', 'int8+f32', 'bf16', 'f32' or 'f16': what the compiled model's compute nodes run in."""
    counts: Counter = Counter()
    for node in compiled.get_runtime_model().get_ordered_ops():
        info = node.get_rt_info()
        if "runtimePrecision" in info and info["layerType"].astype(str) in COMPUTE_TYPES:
            counts[info["runtimePrecision"].astype(str).lower()] += 1
    floats = [p for p, _ in counts.most_common() if p not in INT8_TYPES]
    float_part = floats[0] if floats else compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    float_part = {"fp32": "f32", "fp16": "f16"}.get(float_part, float_part)
    return f"int8+{float_part}" if any(counts[t] for t in INT8_TYPES) else float_part


class OpenVinoEngine(Engine):
    """An `.onnx` model run by OpenVINO.

    Args:
        path: the .onnx file (with roadsight metadata).
        device: 'openvino' (the CPU) or 'openvino:GPU' (an Intel GPU; any OpenVINO device name works).
        precision: 'auto' (OpenVINO's default: bf16 on CPUs that have it), 'f32', 'bf16' or 'f16'.
        threads: inference threads; 0 lets OpenVINO choose.
        cache: cache compiled models in `cache_dir()`.
    """

    backend = "openvino"

    def __init__(self, path: str | Path, device: str = "openvino", precision: str = "auto", threads: int = 0, cache: bool = True):
        super().__init__(path)
        self.device_name = parse_device(device)
        self.device = f"openvino:{self.device_name}"
        if precision not in PRECISIONS:
            raise RoadsightError(f"--precision: unknown value {precision!r}. Expected one of {', '.join(PRECISIONS)}, got {precision!r}.")
        self.precision, self.threads, self.cache = precision, threads, cache
        self.runtime_precision: str | None = None
        self.request = None

    def _open(self) -> None:
        ov_core = core()
        devices = ov_core.available_devices
        if self.device_name.split(".")[0] not in {d.split(".")[0] for d in devices}:
            raise RoadsightError(
                f"device openvino:{self.device_name}: OpenVINO has no such device. Expected one of "
                f"{devices}, got {self.device_name}. Use --device openvino for the CPU."
            )
        try:
            model = ov_core.read_model(str(self.path))
        except RuntimeError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RoadsightError(
                f"{self.path.name}: OpenVINO cannot read it. Expected a valid ONNX model, got: {first_line}. "
                "Re-export it with `roadsight export`."
            ) from error
        self.meta = _read_meta(model, self.path.name)
        unsigned_activations(model)
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if self.cache:  # per compilation: the Core is shared, a property set on it would hold for every model
            config["CACHE_DIR"] = str(cache_dir())
        if self.precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = self.precision
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            compiled = ov_core.compile_model(model, self.device_name, config)
        except RuntimeError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RoadsightError(
                f"{self.path.name}: OpenVINO cannot compile it for {self.device_name}. Expected a supported model and "
                f"precision, got: {first_line}. Try --precision f32 or --device cpu."
            ) from error
        # the source model's ports carry the ONNX names alone (compiled ports add fused tensors' names)
        self.inputs = [_spec(port) for port in model.inputs]
        self.outputs = [_spec(port) for port in model.outputs]
        self.max_batch = self.inputs[0].shape[0] if self.inputs and self.inputs[0].shape else None
        self.check_meta()
        self.runtime_precision = runtime_precision(compiled)
        self.request = compiled.create_infer_request()

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.request.infer(feed, share_inputs=True, share_outputs=False)
        return {spec.name: results[index] for index, spec in enumerate(self.outputs)}

    def _close(self) -> None:
        self.request = None
