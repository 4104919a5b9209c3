"""`Predictor`: frames -> Perceptions through one engine (preprocess -> infer -> postprocess)."""

from __future__ import annotations

import time

import numpy as np

from engines.base import Engine
from engines.perception import Perception
from engines.postprocess import postprocess
from engines.preprocess import Letterbox, letterbox


class Predictor:
    """Run an engine on BGR frames and return one `Perception` per frame.

    The three stages are public so a pipeline can run them in separate threads (and stamp the times
    itself); `infer` copies the outputs of engines that reuse their buffers, so they can wait in a queue.
    `__call__` stamps each Perception `started`, `preprocessed`, `inferred` and `postprocessed`.

    Example:
        >>> with engines.load("model.onnx") as engine:
        ...     perceptions = Predictor(engine, conf=0.3)([frame])
    """

    def __init__(self, engine: Engine, conf: float = 0.25, iou: float = 0.45, max_det: int = 300):
        self.engine = engine.open()
        self.meta = engine.meta
        self.conf, self.iou, self.max_det = conf, iou, max_det
        spec = engine.inputs[0]
        self.input_name, self.input_dtype = spec.name, spec.dtype
        fixed = spec.shape[0]
        self.fixed_batch = fixed  # None: any batch size up to engine.max_batch
        self.max_batch = fixed or engine.max_batch

    def preprocess(self, frames: list[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        """Letterbox frames into one batch, padded with empty images up to a fixed engine batch."""
        batch, params = letterbox(frames, self.meta.imgsz, self.input_dtype)
        if self.fixed_batch and len(batch) < self.fixed_batch:
            pad = np.zeros((self.fixed_batch - len(batch), *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, pad])
        return batch, params

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the engine on a preprocessed batch; the outputs are safe to keep."""
        outputs = self.engine.infer({self.input_name: batch})
        return {k: v.copy() for k, v in outputs.items()} if self.engine.reuses_outputs else outputs

    def postprocess(self, outputs: dict[str, np.ndarray], params: list[Letterbox]) -> list[Perception]:
        """Raw outputs -> one Perception per frame of `params`."""
        return postprocess(outputs, params, self.meta, self.conf, self.iou, self.max_det)

    def __call__(self, frames: list[np.ndarray]) -> list[Perception]:
        """Frames (BGR uint8) -> Perceptions, in chunks of at most the engine's batch size."""
        if isinstance(frames, np.ndarray) and frames.ndim == 3:
            frames = [frames]
        step = self.max_batch or len(frames)
        results: list[Perception] = []
        for first in range(0, len(frames), step):
            started = time.perf_counter()
            batch, params = self.preprocess(frames[first : first + step])
            preprocessed = time.perf_counter()
            outputs = self.infer(batch)
            inferred = time.perf_counter()
            perceptions = self.postprocess(outputs, params)
            postprocessed = time.perf_counter()
            for perception in perceptions:
                for stage, at in (("started", started), ("preprocessed", preprocessed), ("inferred", inferred),
                                  ("postprocessed", postprocessed)):
                    perception.stamp(stage, at)
                perception.frame_index += first
                results.append(perception)
        return results
