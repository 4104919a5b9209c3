"""The interface every backend shares: tensor specs, state checks and feed validation.

Backends (ONNX Runtime, TensorRT, PyTorch) subclass `Engine` and implement only `_open`, `_infer`
and `_close`; the public methods own the invariants, like Polygraphy's runners.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.errors import RoadsightError
from engines.meta import ModelMeta


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, numpy dtype and shape (`None` for a dynamic dimension)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(self.shape))

    def describe(self) -> str:
        """'(1,3,384,640) float32', with '?' for dynamic dimensions."""
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"({dims}) {self.dtype.name}"

    def accepts(self, array: np.ndarray) -> bool:
        """True when `array` has this dtype and a shape that fits (any size on dynamic dims)."""
        return (
            array.dtype == self.dtype
            and array.ndim == len(self.shape)
            and all(d is None or d == n for d, n in zip(self.shape, array.shape))
        )


def describe_array(array: np.ndarray) -> str:
    return f"({','.join(str(n) for n in array.shape)}) {array.dtype.name}"


class Engine:
    """A loaded model that maps a feed of named arrays to named output arrays.

    Use `engines.load(path)` rather than a backend class. After `open()`: `meta` (ModelMeta),
    `inputs` and `outputs` (lists of TensorSpec) and `max_batch` (None: no limit known) are set.
    `infer()` may reuse its output buffers between calls when `reuses_outputs` is True: copy to keep.
    `last_timing` holds the last call's wall time in ms (`infer`) and, where the backend measures
    them, device stages (`h2d`, `compute`, `d2h`).
    """

    backend = "base"
    reuses_outputs = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta: ModelMeta | None = None
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self.max_batch: int | None = None
        self.last_timing: dict[str, float] = {}
        self.is_open = False

    # --- public API (owns the invariants) -------------------------------------------------------
    def open(self) -> "Engine":
        """Load the model and allocate what inference needs; a second call does nothing."""
        if not self.is_open:
            self._open()
            self.is_open = True
        return self

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on `feed` (input name -> array) and return output name -> array."""
        if not self.is_open:
            raise RoadsightError(
                f"{self.path.name}: the {self.backend} engine is not open. Expected `engine.open()` or "
                "`with engines.load(path) as engine:` before infer(), got a closed engine."
            )
        self.check_feed(feed)
        start = time.perf_counter()
        outputs = self._infer(feed)
        self.last_timing["infer"] = (time.perf_counter() - start) * 1e3
        return outputs

    def close(self) -> None:
        """Release the model and its buffers; a second call does nothing."""
        if self.is_open:
            self.is_open = False
            self._close()

    def __enter__(self) -> "Engine":
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<{type(self).__name__} {self.path.name} ({state})>"

    def check_feed(self, feed: dict[str, np.ndarray]) -> None:
        """Raise a one-line RoadsightError unless `feed` matches `inputs` (names, dtypes, shapes)."""
        expected = {spec.name for spec in self.inputs}
        if set(feed) != expected:
            raise RoadsightError(
                f"engine inputs: wrong names. Expected {sorted(expected)}, got {sorted(feed)}."
            )
        for spec in self.inputs:
            array = feed[spec.name]
            if not isinstance(array, np.ndarray):
                raise RoadsightError(
                    f"engine input '{spec.name}': not a numpy array. Expected {spec.describe()}, "
                    f"got {type(array).__name__}."
                )
            if not spec.accepts(array):
                raise RoadsightError(
                    f"engine input '{spec.name}': expected shape {spec.describe()}, got {describe_array(array)}. "
                    f"Preprocess frames with engines.preprocess.letterbox(frames, imgsz={self.meta.imgsz if self.meta else '?'})."
                )
            if self.max_batch is not None and array.shape[0] > self.max_batch:
                raise RoadsightError(
                    f"engine input '{spec.name}': batch {array.shape[0]} is too large. Expected at most "
                    f"{self.max_batch}, got {array.shape[0]}. Rebuild the engine with a larger --batch max."
                )

    # --- backend hooks ----------------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def check_meta(self) -> None:
        """Fail when the metadata's input size disagrees with the model's image input."""
        image = self.inputs[0]
        if len(image.shape) != 4 or tuple(image.shape[2:]) != tuple(self.meta.imgsz):
            raise RoadsightError(
                f"{self.path.name}: metadata and model disagree on the input size. Expected input "
                f"(B,3,{self.meta.imgsz[0]},{self.meta.imgsz[1]}) from the metadata, got {image.describe()}. "
                "Re-export the model with `roadsight export`."
            )
