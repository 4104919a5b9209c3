"""Run a roadsight model: load an artifact, pre/post-process, and the `Perception` results type.

    import engines
    with engines.load("model.onnx") as engine:
        perceptions = engines.Predictor(engine)(frames)
"""

from __future__ import annotations

from pathlib import Path

from engines.base import Engine, TensorSpec
from engines.errors import RoadsightError
from engines.perception import Perception
from engines.predictor import Predictor

SUFFIXES = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".pt": "torch"}

__all__ = ["Engine", "Perception", "Predictor", "TensorSpec", "fastest_cpu_device", "load"]


def _backend(kind: str):
    if kind == "onnxruntime":
        from engines.onnxrt import OnnxRuntimeEngine

        return OnnxRuntimeEngine
    if kind == "tensorrt":
        from engines.tensorrt import TensorRTEngine

        return TensorRTEngine
    if kind == "openvino":
        from engines.openvino import OpenVinoEngine

        return OpenVinoEngine
    try:
        from engines.torch_backend import TorchEngine
    except ModuleNotFoundError as error:
        if error.name != "engines.torch_backend":
            raise
        raise RoadsightError(
            "torch backend: engines/torch_backend.py is not part of this installation. Expected it for .pt "
            "checkpoints, got none. Export the checkpoint with `roadsight export` and load the .onnx."
        ) from None
    return TorchEngine


def fastest_cpu_device() -> str:
    """'openvino' when OpenVINO is installed and sees the CPU (it runs the INT8 model in u8/i8), else 'cpu'."""
    from engines.openvino import openvino_available

    return "openvino" if openvino_available() else "cpu"


def load(path: str | Path, device: str = "cpu", **options) -> Engine:
    """Open a model by its suffix: .onnx (ONNX Runtime, or OpenVINO), .engine/.plan (TensorRT), .pt (PyTorch).

    Args:
        path: the model file.
        device: 'cpu', 'cuda[:N]' or 'tensorrt[:N]' (ONNX Runtime providers); 'openvino' or 'openvino:GPU'
            (an .onnx run by OpenVINO); 'auto' (the fastest installed CPU backend); TensorRT engines use 'cuda[:N]'.
        **options: backend options, e.g. intra_op_threads for ONNX Runtime, timing=True for TensorRT,
            precision='f32' and threads for OpenVINO.

    Returns the opened engine; use it as a context manager or call close().
    """
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise RoadsightError(
            f"{path.name}: unknown model type. Expected one of {', '.join(SUFFIXES)}, got {path.suffix or 'no suffix'!r}."
        )
    if not path.is_file():
        raise RoadsightError(f"{path}: no such model file. Expected an existing {path.suffix} file, got none. Check the path.")
    if kind == "tensorrt" and device in ("cpu", "auto"):
        device = "cuda"  # a TensorRT engine only runs on the GPU: 'cpu' is just load()'s default
    if device == "auto":
        device = fastest_cpu_device() if kind == "onnxruntime" else "cpu"
    if kind == "onnxruntime" and str(device).lower().startswith("openvino"):
        kind = "openvino"
    return _backend(kind)(path, device=device, **options).open()
