"""FP32 ONNX + calibration cache -> INT8 ONNX for TensorRT (symmetric Q/DQ) or ONNX Runtime on x86.

`quantize(model, calib, target)` is the one entry point. For `trt` it uses NVIDIA ModelOpt
(`modelopt.onnx.quantization.quantize`, CPU calibration, fp32 kept as the high-precision type) when it
is installed and the method is max/entropy, else ONNX Runtime's `quantize_static` with TensorRT's option
set; both keep the heads float (calibration/graph.py) and the result is checked against the TensorRT
rules (`check_trt_graph`) before it is written. `cpu` always uses ONNX Runtime (uint8 activations, int8
per-channel weights). The ONNX metadata records precision int8-trt / int8-cpu; the key `roadsight_quant`
records the backend, method, calibration set and settings.
"""

from __future__ import annotations

import importlib.util
import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from calibration.cache import CalibCache, read_meta
from calibration.graph import Graph, check_trt_graph, float_nodes, qdq_summary, quantizable_nodes, residual_adds
from engines.errors import MissingDependency, RoadsightError

TARGETS = ("trt", "cpu")
METHODS = ("max", "entropy", "percentile")
BACKENDS = ("auto", "modelopt", "ort")
PERCENTILE = 99.999  # the paper's best activation-range percentile for OPT
CALIB_CHUNK = 16  # batches whose activations ONNX Runtime holds at once while calibrating
# CPU: ONNX Runtime fuses DQ->op->Q into QLinear* kernels for these types; the float heads stay out
CPU_OP_TYPES = ("Conv", "MatMul", "Add", "Mul", "Sigmoid", "Concat", "MaxPool", "Resize", "Split")


@dataclass
class QuantResult:
    """What quantize() wrote: path, target, backend used, method, frames, Q/DQ counts, seconds."""

    path: Path
    target: str
    backend: str
    method: str
    frames: int
    summary: dict
    seconds: float

    def to_json(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


def default_out(model: Path, target: str) -> Path:
    return model.with_name(f"{model.stem}.int8-{target}.onnx")


def modelopt_available() -> bool:
    return importlib.util.find_spec("modelopt") is not None and importlib.util.find_spec("modelopt.onnx") is not None


def pick_backend(target: str, method: str, backend: str = "auto") -> str:
    """Which quantizer runs: ModelOpt for trt when installed (max/entropy), ONNX Runtime otherwise."""
    if target not in TARGETS:
        raise RoadsightError(f"--target: {target!r}. Expected one of {', '.join(TARGETS)}, got {target!r}.")
    if method not in METHODS:
        raise RoadsightError(f"--method: {method!r}. Expected one of {', '.join(METHODS)}, got {method!r}.")
    if backend not in BACKENDS:
        raise RoadsightError(f"--backend: {backend!r}. Expected one of {', '.join(BACKENDS)}, got {backend!r}.")
    if backend == "modelopt":
        if target != "trt" or method == "percentile":
            raise RoadsightError(
                f"--backend modelopt: supports --target trt with --method max or entropy. Expected those, got "
                f"--target {target} --method {method}. Use --backend ort."
            )
        if not modelopt_available():
            raise MissingDependency("nvidia-modelopt", "--backend modelopt", "pip install 'roadsight[quant]'")
        return "modelopt"
    if backend == "auto" and target == "trt" and method != "percentile" and modelopt_available():
        return "modelopt"
    return "ort"


class _CacheReader:
    """onnxruntime CalibrationDataReader over a CalibCache (batch 1 or the model's fixed batch).

    Supports `len()` and `set_range()`, so ONNX Runtime calibrates in chunks (`CalibStridedMinMax`) and
    holds the intermediate activations of one chunk at a time, not of the whole set.
    """

    def __init__(self, cache: CalibCache, input_name: str, batch: int):
        self.cache, self.input_name, self.batch = cache, input_name, batch
        self.set_range(0, len(self))

    def __len__(self) -> int:
        return len(self.cache) // self.batch

    def set_range(self, start_index: int, end_index: int) -> None:
        self.next, self.end = start_index, end_index

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.next >= self.end:
            return None
        start = self.next * self.batch
        self.next += 1
        return {self.input_name: next(self.cache.subset(start, start + self.batch).batches(self.batch))}


def chunk(batches: int, most: int = CALIB_CHUNK) -> int:
    """The largest divisor of `batches` up to `most` (ONNX Runtime needs equal chunks)."""
    return max(d for d in range(1, min(most, max(batches, 1)) + 1) if batches % d == 0)


def _input(model: onnx.ModelProto) -> tuple[str, int]:
    inp = model.graph.input[0]
    dim = inp.type.tensor_type.shape.dim[0]
    return inp.name, dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else 1


def _ort_quantize(src: Path, out: Path, cache: CalibCache, target: str, method: str, reduce_range: bool,
                  float_attention: bool = False) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calib = {"max": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_optimization=True, skip_symbolic_shape=False)
        model = onnx.load(str(pre))
        graph = Graph(model)
        name, batch = _input(model)
        reader = _CacheReader(cache, name, batch)
        if not len(reader):
            raise RoadsightError(
                f"quantize: the cache has {len(cache)} frames for a model with a fixed batch of {batch}. "
                f"Expected at least {batch}, got {len(cache)}. Calibrate with more frames."
            )
        extra = {
            "ActivationSymmetric": target == "trt",
            "WeightSymmetric": True,
            "QuantizeBias": target == "cpu",
            "AddQDQPairToWeight": False,
            "DedicatedQDQPair": False,
            "QDQOpTypePerChannelSupportToAxis": {"Conv": 0},
            "CalibPercentile": PERCENTILE,
            "CalibStridedMinMax": chunk(len(reader)),
            "CalibTensorRangeSymmetric": target == "trt",
            # trt: Q/DQ only on inputs (TensorRT fuses Conv+SiLU+Add in float epilogues after INT8 math)
            "OpTypesToExcludeOutputQuantization": ["Conv", "MatMul", "Add"] if target == "trt" else [],
        }
        if target == "trt":
            nodes = quantizable_nodes(graph, float_attention)
            kwargs = dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, op_types_to_quantize=["Conv", "MatMul", "Add"])
        else:
            keep = float_nodes(graph, float_attention)
            nodes = [n.name for n in graph.nodes if n.op_type in CPU_OP_TYPES and n.name not in keep]
            kwargs = dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, op_types_to_quantize=list(CPU_OP_TYPES))
        try:
            quantize_static(
                model,
                str(out),
                reader,
                per_channel=True,
                reduce_range=reduce_range,
                weight_type=QuantType.QInt8,
                nodes_to_quantize=nodes,
                calibrate_method=calib[method],
                extra_options=extra,
                **kwargs,
            )
        except ValueError as error:  # ORT's histogram calibrators on degenerate (near-constant) activations
            if "bins" not in str(error):
                raise
            raise RoadsightError(
                f"quantize: {method} calibration failed in ONNX Runtime ({error}). Expected every activation to have a "
                "usable range, got a (near-)constant one (untrained layers, or attention probabilities clipped to 0 "
                "everywhere; `roadsight outliers` shows them). Try --method max."
            ) from None
    quantized = onnx.load(str(out))
    prune_qdq(quantized, set(nodes), residual_adds(graph) if target == "trt" else {})
    onnx.save(quantized, str(out))


def prune_qdq(model: onnx.ModelProto, quantized: set[str], branches: dict[str, str]) -> int:
    """Keep activation Q/DQ only where it is meant to be; returns how many inputs went back to float.

    ONNX Runtime shares one DQ output among all consumers of a quantized tensor, so a Concat or a residual
    Add's branch can end up reading dequantized values with their own scale. Every consumer that is not in
    `quantized`, and each residual Add's branch input (`branches`: Add name -> tensor), is fed the float
    tensor again; Q/DQ nodes left without consumers are removed.
    """
    graph = Graph(model)
    rewired = 0
    for node in list(graph.nodes):
        for k, name in enumerate(node.input):
            dq = graph.producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = graph.producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue  # a weight (int8 initializer -> DQ): stays
            if node.name in quantized and branches.get(node.name) != q.input[0]:
                continue
            node.input[k] = q.input[0]
            graph.consumers[name].remove(node)
            rewired += 1
    for node in list(model.graph.node):
        if node.op_type == "DequantizeLinear" and not graph.consumers.get(node.output[0]) and node.output[0] not in _outputs(model):
            model.graph.node.remove(node)
            if node.input[0] in graph.consumers:
                graph.consumers[node.input[0]].remove(node)
    for node in list(model.graph.node):
        if node.op_type == "QuantizeLinear" and not graph.consumers.get(node.output[0]):
            model.graph.node.remove(node)
    used = {i for node in model.graph.node for i in node.input}
    for init in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(init)
    return rewired


def _outputs(model: onnx.ModelProto) -> set[str]:
    return {o.name for o in model.graph.output}


def _modelopt_quantize(src: Path, out: Path, cache: CalibCache, method: str, float_attention: bool = False) -> None:
    """ModelOpt INT8 in a spawned process: ModelOpt patches ONNX Runtime's calibrators globally on use,
    which would change later ORT quantizations (e.g. the cpu target) in this process."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "calib.npy"
        model = onnx.load(str(src), load_external_data=False)
        np.save(data, cache.array())
        exclude = sorted(float_nodes(Graph(model), float_attention))
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            pool.submit(_modelopt_worker, str(src), str(out), _input(model)[0], str(data), method, exclude).result()


def _modelopt_worker(src: str, out: str, input_name: str, data: str, method: str, exclude: list[str]) -> None:
    from modelopt.onnx.quantization import quantize as mo_quantize

    mo_quantize(
        src,
        quantize_mode="int8",
        calibration_data={input_name: np.load(data)},
        calibration_method=method,
        calibration_eps=["cpu"],
        nodes_to_exclude=[f"^{re.escape(n)}$" for n in exclude],
        high_precision_dtype="fp32",
        output_path=out,
        log_level="WARNING",
    )


def _fp32_weights(src: Path, tmp: Path) -> Path:
    """src, or a copy in tmp with plain float32 weights when src stores them as FP16 (`export --fp16-weights`)."""
    from model.onnx_weights import has_fp16_storage, load_fp32

    model = onnx.load(str(src))
    if not has_fp16_storage(model):
        return src
    plain = tmp / src.name
    onnx.save(load_fp32(model), str(plain))
    return plain


def quantize(
    model: str | Path,
    calib: str | Path | CalibCache,
    target: str = "trt",
    method: str = "max",
    out: str | Path | None = None,
    backend: str = "auto",
    reduce_range: bool = False,
    float_attention: bool = False,
) -> QuantResult:
    """Quantize an FP32 roadsight ONNX with a calibration cache; see the module docstring.

    reduce_range (cpu only): 7-bit weights, for x86 CPUs without VNNI where u8s8 products can saturate.
    float_attention: keep the attention's Q.K^T and P.V MatMuls float. INT8 probabilities (max-calibrated,
    scale ~1/127) round everything below ~0.004 to 0, which near-uniform vanilla attention over 240 tokens hits.
    """
    start = time.perf_counter()
    src = Path(model)
    meta = read_meta(src)
    if meta.precision != "fp32":
        raise RoadsightError(
            f"--model: {src} is {meta.precision}. Expected an FP32 export, got {meta.precision}. "
            "Quantize the plain `roadsight export` output (without --half)."
        )
    used = pick_backend(target, method, backend)
    cache = calib if isinstance(calib, CalibCache) else CalibCache.load(calib)
    cache.check_fits(meta, calib if not isinstance(calib, CalibCache) else "cache")
    dst = Path(out) if out else default_out(src, target)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        plain = _fp32_weights(src, Path(tmp))
        if used == "modelopt":
            _modelopt_quantize(plain, dst, cache, method, float_attention)
        else:
            _ort_quantize(plain, dst, cache, target, method, reduce_range and target == "cpu", float_attention)
    result = onnx.load(str(dst))
    if target == "trt":
        errors = check_trt_graph(result)
        if errors:
            raise RoadsightError(
                f"quantize: the {used} Q/DQ graph breaks {len(errors)} TensorRT rule(s), first: {errors[0]}. "
                "Expected none. Report this with the model; try --backend ort."
            )
    info = {"target": target, "backend": used, "method": method, "frames": len(cache), "calib_key": cache.key,
            "calib_seed": cache.seed, "source": src.name, "reduce_range": reduce_range and target == "cpu", "float_attention": float_attention}
    replace(meta, precision=f"int8-{target}").write_onnx(result, roadsight_quant=json.dumps(info))
    onnx.save(result, str(dst))
    return QuantResult(dst, target, used, method, len(cache), qdq_summary(result), time.perf_counter() - start)
