"""Build a TensorRT plan from a roadsight ONNX (TensorRT 10 and 11), with its JSON sidecar.

Strongly typed (the ONNX decides every precision: FP32, FP16 or INT8 Q/DQ); TensorRT 11 is always
strongly typed and has no precision flags, TensorRT 10 needs NetworkDefinitionCreationFlag.STRONGLY_TYPED.
TF32 is on by default in both: it is cleared for an FP32 model, so FP32 means FP32.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from engines.errors import RoadsightError
from engines.onnxrt import OnnxRuntimeEngine
from engines.tensorrt import found_versions, gpu_identity, import_pycuda, import_tensorrt, primary_context, pushed, trt_logger
from engines.trt_plan import EngineInfo, meta_batch, parse_batch, plan_profile, write_sidecar


def network_flags(trt) -> int:
    """Creation flags: STRONGLY_TYPED where the enum has it (TRT 10; accepted and implied on 11)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def _parse(trt, network, logger, onnx_path: Path):
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "no details"
        raise RoadsightError(
            f"{onnx_path.name}: TensorRT's ONNX parser failed ({errors}). Expected an ONNX TensorRT can parse, "
            "got errors. Re-export with `roadsight export` (opset 17-18)."
        )
    return parser


def build_engine(
    onnx_path: str | Path,
    out: str | Path,
    batch: str | int | tuple[int, int, int] | None = None,
    workspace_gib: float = 4.0,
    timing_cache: str | Path | None = None,
    device: int = 0,
    log=print,
) -> Path:
    """Build `onnx_path` into the plan `out` and write `out` + '.json' (EngineInfo). Returns `out`.

    Args:
        batch: None (the ONNX's static batch, or 1 for a dynamic one), N, or (min, opt, max) for a
            dynamic-batch ONNX.
        workspace_gib: TensorRT workspace memory pool limit.
        timing_cache: file to load tactic timings from (if it exists) and save them to.
        device: GPU index.
    """
    onnx_path, out = Path(onnx_path), Path(out)
    if not onnx_path.is_file():
        raise RoadsightError(f"{onnx_path}: no such ONNX file. Expected an existing .onnx, got none. Check --onnx.")
    with OnnxRuntimeEngine(onnx_path) as reference:  # reads and checks the roadsight metadata
        meta = reference.meta
    if meta.precision == "int8-cpu":
        raise RoadsightError(
            f"{onnx_path.name}: an int8-cpu model (uint8 activations, for ONNX Runtime on CPUs). Expected an FP32, "
            "FP16 or int8-trt ONNX for TensorRT, got int8-cpu. Quantize with `roadsight quantize --target trt`."
        )
    trt = import_tensorrt("roadsight build")
    cuda = import_pycuda("roadsight build")
    log(f"found {found_versions(trt, cuda)}")
    gpu, capability = gpu_identity(cuda, device)
    with pushed(primary_context(cuda, device)):
        plan, profile, cache = _build(trt, onnx_path, batch, workspace_gib, timing_cache, meta.precision, log)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as file:
        file.write(plan)
    if cache is not None:
        Path(timing_cache).write_bytes(bytes(cache))
    shapes = {name: [list(s) for s in shapes] for name, shapes in profile.items()}
    info = EngineInfo(
        meta=replace(meta, batch=meta_batch(next(iter(profile.values()), None), meta.batch or 1)),
        tensorrt=trt.__version__,
        gpu=gpu,
        compute_capability=capability,
        profile=shapes,
        onnx=onnx_path.name,
    )
    write_sidecar(out, info)
    return out


def _timing_cache(config, path: Path, log):
    """The builder's timing cache: `path`'s when TensorRT accepts it, else a fresh one (one warning line)."""
    blob = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(blob) if blob else None
    if cache is not None and config.set_timing_cache(cache, False):  # False: refuse another GPU's or version's
        return cache
    if blob:
        log(f"warning: {path.name}: TensorRT refused this timing cache (another GPU or TensorRT version, or damaged); starting a fresh one")
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, False):
        raise RoadsightError(f"{path.name}: TensorRT could not create a timing cache. Expected a cache, got none. Build without --timing-cache.")
    return cache


def _build(trt, onnx_path: Path, batch, workspace_gib: float, timing_cache, precision: str, log):
    """The TensorRT part: parse, profile, timing cache, build. Returns (plan, {input: shapes}, cache or None)."""
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = _parse(trt, network, logger, onnx_path)  # noqa: F841  (the parser must outlive the build)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)

    wanted = None if batch is None else parse_batch(batch)
    profiles = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shapes = plan_profile(tensor.name, tuple(tensor.shape), wanted)
        if shapes is not None:
            profiles[tensor.name] = shapes
    if profiles:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profiles.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)

    cache = None if timing_cache is None else _timing_cache(config, Path(timing_cache), log)
    tf32 = "TF32 off" if precision == "fp32" else "TF32 allowed"
    log(f"building {onnx_path.name} ({precision}, strongly typed, {tf32}), profiles {profiles or 'static'}...")
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RoadsightError(
            f"{onnx_path.name}: TensorRT could not build an engine (see its log above). Expected a plan, got None. "
            "Try a larger --workspace or check the ONNX with `roadsight predict --model` on the CPU."
        )
    log(f"built in {time.perf_counter() - start:.1f} s")
    return plan, profiles, None if cache is None else config.get_timing_cache().serialize()  # with the new timings
