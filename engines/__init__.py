"""Run a roadsight model: load an artifact, pre/post-process, and the `Perception` results type.

    import engines
    with engines.load("model.onnx") as engine:
        perceptions = engines.Predictor(engine)(frames)
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from engines.base import Engine, TensorSpec
from engines.errors import RoadsightError
from engines.perception import Perception
from engines.predictor import Predictor

SUFFIXES = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt"}  # the built-in backends
BUILTIN = {
    "onnxruntime": "engines.onnxrt:OnnxRuntimeEngine",
    "tensorrt": "engines.tensorrt:TensorRTEngine",
    "openvino": "engines.openvino:OpenVinoEngine",  # runs .onnx files when the device is openvino[:NAME]
}
ENTRY_POINTS = "roadsight.engines"  # other packages add backends here: name = file suffix, value = Engine class

__all__ = ["Engine", "Perception", "Predictor", "TensorSpec", "fastest_cpu_device", "load"]


def backends() -> dict[str, EntryPoint]:
    """Model file suffix -> its backend class (not imported yet): the built-in ones, then the registered ones.

    `model` registers `.pt` (PyTorch checkpoints) in pyproject.toml, so `engines` never imports `model`.
    """
    found = {suffix: EntryPoint(name, BUILTIN[name], ENTRY_POINTS) for suffix, name in SUFFIXES.items()}
    for entry in entry_points(group=ENTRY_POINTS):
        found.setdefault(f".{entry.name.lstrip('.')}", entry)
    return found


def fastest_cpu_device() -> str:
    """'openvino' when OpenVINO is installed and sees the CPU (it runs the INT8 model in u8/i8), else 'cpu'."""
    from engines.openvino import openvino_available

    return "openvino" if openvino_available() else "cpu"


def load(path: str | Path, device: str = "cpu", **options) -> Engine:
    """Open a model by its suffix: .onnx (ONNX Runtime, or OpenVINO), .engine/.plan (TensorRT), .pt (PyTorch).

    Args:
        path: the model file; its suffix picks the backend (`backends()`).
        device: 'cpu', 'cuda[:N]' or 'tensorrt[:N]' (ONNX Runtime providers); 'openvino' or 'openvino:GPU'
            (an .onnx run by OpenVINO); 'auto' (the fastest installed CPU backend); TensorRT engines use 'cuda[:N]'.
        **options: backend options, e.g. intra_op_threads for ONNX Runtime, timing=True for TensorRT,
            precision='f32' and threads for OpenVINO.

    Returns the opened engine; use it as a context manager or call close().
    """
    path = Path(path)
    known = backends()
    backend = known.get(path.suffix.lower())
    if backend is None:
        raise RoadsightError(
            f"{path.name}: unknown model type. Expected one of {', '.join(known)}, got {path.suffix or 'no suffix'!r}. "
            "Other backends (.pt) are registered when roadsight is installed: `pip install -e .` or scripts/install.sh."
        )
    if not path.is_file():
        raise RoadsightError(f"{path}: no such model file. Expected an existing {path.suffix} file, got none. Check the path.")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind == "tensorrt" and device in ("cpu", "auto"):
        device = "cuda"  # a TensorRT engine only runs on the GPU: 'cpu' is just load()'s default
    if device == "auto":
        device = fastest_cpu_device() if kind == "onnxruntime" else "cpu"
    if kind == "onnxruntime" and str(device).lower().startswith("openvino"):
        backend = EntryPoint("openvino", BUILTIN["openvino"], ENTRY_POINTS)
    return backend.load()(path, device=device, **options).open()
