"""The trained models shipped inside the package (`app/models/`, package data), found via importlib.resources.

    roadsight-n.onnx            FP32, the reference
    roadsight-n.int8-cpu.onnx   INT8 for ONNX Runtime on a CPU (uint8 activations)
    roadsight-n.int8-trt.onnx   INT8 Q/DQ for TensorRT (`roadsight build` turns it into an engine)
    MODEL_CARD.md               data, protocol, metrics and limits

Package data is installed with a wheel too, so a non-editable install finds the files the same way.
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

from engines.errors import RoadsightError

MODEL_NAME = "roadsight-n"
VARIANTS = {
    "fp32": f"{MODEL_NAME}.onnx",
    "int8-cpu": f"{MODEL_NAME}.int8-cpu.onnx",
    "int8-trt": f"{MODEL_NAME}.int8-trt.onnx",
}
CARD = "MODEL_CARD.md"
_files = contextlib.ExitStack()  # keeps files extracted from a zipped install alive until exit
atexit.register(_files.close)


def _resource(name: str) -> Path | None:
    """The path of app/models/<name> in this install, or None when the package does not have it."""
    item = resources.files("app") / "models" / name
    if not item.is_file():
        return None
    if isinstance(item, Path):
        return item
    return _files.enter_context(resources.as_file(item))  # a zip import: extract once


def shipped_model(variant: str = "int8-cpu") -> Path:
    """Path of a shipped roadsight-n model: 'fp32', 'int8-cpu' (default) or 'int8-trt'.

    Raises a one-line RoadsightError for an unknown variant or when this install has no trained model.
    """
    if variant not in VARIANTS:
        raise RoadsightError(
            f"shipped model: unknown variant {variant!r}. Expected one of {', '.join(VARIANTS)}, got {variant!r}."
        )
    path = _resource(VARIANTS[variant])
    if path is None:
        raise RoadsightError(
            f"this install ships no trained model: app/models/{VARIANTS[variant]} is missing. Expected the "
            f"trained {MODEL_NAME} ONNX files in the package, got none. Train one with `roadsight train` "
            "(then `roadsight export` / `roadsight quantize`) and pass --model."
        )
    return path


def shipped_variants() -> dict[str, Path]:
    """The shipped model files that this install has, by variant (empty before a model is added)."""
    return {variant: path for variant, name in VARIANTS.items() if (path := _resource(name)) is not None}


def model_card() -> Path | None:
    """Path of the model card (app/models/MODEL_CARD.md), or None when the install lacks it."""
    return _resource(CARD)
