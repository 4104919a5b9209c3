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
BUILTIN = {"onnxruntime": "engines.onnxrt:OnnxRuntimeEngine", "tensorrt": "engines.tensorrt:TensorRTEngine"}
ENTRY_POINTS = "roadsight.engines"  # other packages add backends here: name = file suffix, value = Engine class

__all__ = ["Engine", "Perception", "Predictor", "TensorSpec", "load"]


def backends() -> dict[str, EntryPoint]:
    """Model file suffix -> its backend class (not imported yet): the built-in ones, then the registered ones.

    `model` registers `.pt` (PyTorch checkpoints) in pyproject.toml, so `engines` never imports `model`.
    """
    found = {suffix: EntryPoint(name, BUILTIN[name], ENTRY_POINTS) for suffix, name in SUFFIXES.items()}
    for entry in entry_points(group=ENTRY_POINTS):
        found.setdefault(f".{entry.name.lstrip('.')}", entry)
    return found


def load(path: str | Path, device: str = "cpu", **options) -> Engine:
    """Open a model by its suffix: .onnx (ONNX Runtime), .engine/.plan (TensorRT), .pt (PyTorch).

    Args:
        path: the model file; its suffix picks the backend (`backends()`).
        device: 'cpu', 'cuda[:N]' or 'tensorrt[:N]' (ONNX Runtime providers); TensorRT engines use 'cuda[:N]'.
        **options: backend options, e.g. intra_op_threads for ONNX Runtime, timing=True for TensorRT.

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
    if SUFFIXES.get(path.suffix.lower()) == "tensorrt" and device == "cpu":
        device = "cuda"  # a TensorRT engine only runs on the GPU: 'cpu' is just load()'s default
    return backend.load()(path, device=device, **options).open()
