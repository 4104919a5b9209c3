"""PyTorch backend: a roadsight checkpoint (.pt) or an in-memory RoadNet behind the `Engine` interface.

Needs the training extra (torch, ultralytics); torch is imported only when an engine opens. Registered
with `engines.load` for `.pt` files through the `roadsight.engines` entry point (pyproject.toml), so
`engines` never imports `model`. The engine emits the raw outputs of ARCHITECTURE.md, exactly what the
exported ONNX emits, so `Predictor` and `evaluate` work on a checkpoint, an ONNX model or an engine alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.base import Engine, TensorSpec
from engines.device import parse_device
from engines.errors import RoadsightError, require_training_extra
from engines.meta import SEG_OUTPUTS

OUTPUT_NAMES = ("boxes", "scores", "drivable", "lane")


class TorchEngine(Engine):
    """A RoadNet run by PyTorch (inference mode), with a dynamic batch axis.

    Args:
        path: a checkpoint written by `roadsight train` (`model.network.save_checkpoint`).
        device: 'cpu' (default), 'cuda' or 'cuda:N'.
        half: FP16 weights and I/O (CUDA only; `images` must then be float16).
        seg_output: 'logits' (at the heads' strides), 'prob' (float probabilities) or 'mask' (uint8 0/1), as
            `roadsight export --seg-output`.
        fuse: fold BatchNorm into the convolutions after loading (faster, same outputs within ~1e-5).
    """

    backend = "torch"

    def __init__(
        self, path: str | Path, device: str = "cpu", half: bool = False, seg_output: str = "logits", fuse: bool = True
    ):
        super().__init__(path)
        self.device = str(parse_device(device, ("cpu", "cuda"), "a .pt checkpoint"))
        if half and not self.device.startswith("cuda"):
            raise RoadsightError(
                "half: FP16 on the CPU. Expected --device cuda for FP16 PyTorch inference, got cpu. "
                "Drop --half or run on a GPU."
            )
        if seg_output not in SEG_OUTPUTS:
            raise RoadsightError(
                f"seg_output: unknown value {seg_output!r}. Expected logits, prob or mask, got {seg_output!r}."
            )
        self.half, self.seg_output, self.fuse = half, seg_output, fuse
        self.model = None
        self.cfg = None
        self._torch = None
        self._owned = True  # False for from_model(): never fuse, and restore the caller's train/eval mode

    @classmethod
    def from_model(cls, model, cfg=None, seg_output: str = "logits") -> "TorchEngine":
        """Wrap an in-memory RoadNet (e.g. training's EMA model) without copying or fusing it.

        The device and precision follow the model's parameters; cfg defaults to `model.cfg`. The model is
        put in eval mode for each call and returned to its previous mode afterwards. Returns an open engine.
        """
        require_training_extra("running a PyTorch model")
        param = next(model.parameters())
        engine = cls(Path("in-memory.pt"), device="cpu", seg_output=seg_output, fuse=False)
        engine.device, engine.half = str(param.device), str(param.dtype) == "torch.float16"
        engine.model, engine.cfg, engine._owned = model, cfg or model.cfg, False
        return engine.open()

    def _open(self) -> None:
        require_training_extra("running a .pt checkpoint")
        from model.ultra import torch

        from model.export import model_meta
        from model.network import load_checkpoint

        self._torch = torch
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise RoadsightError(
                f"device {self.device!r}: PyTorch sees no CUDA GPU. Expected a CUDA build of torch and a GPU, "
                f"got torch {torch.__version__} without CUDA. Use --device cpu."
            )
        if self.model is None:
            model = load_checkpoint(self.path, device=self.device)
            self.cfg = model.cfg
            if self.fuse:
                model.fuse()
            for p in model.parameters():
                p.requires_grad_(False)
            self.model = model.half() if self.half else model
        precision = "fp16" if self.half else "fp32"
        self.meta = model_meta(self.cfg, precision=precision, seg_output=self.seg_output, batch=None)
        h, w = self.meta.imgsz
        dtype = np.float16 if self.half else np.float32
        prob_dtype = np.uint8 if self.seg_output == "mask" else dtype
        mask_strides = {"drivable": self.model.drivable_head.out_stride, "lane": self.model.lane_head.out_stride}
        if self.seg_output != "logits":  # resized to the input size inside the network
            mask_strides = dict.fromkeys(mask_strides, 1)
        anchors = sum((h // s) * (w // s) for s in (8, 16, 32))
        self.inputs = [TensorSpec("images", dtype, (None, 3, h, w))]
        self.outputs = [
            TensorSpec("boxes", dtype, (None, 4, anchors)),
            TensorSpec("scores", dtype, (None, self.cfg.nc, anchors)),
            *(TensorSpec(name, prob_dtype, (None, h // s, w // s)) for name, s in mask_strides.items()),
        ]
        self.check_meta()

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch, model = self._torch, self.model
        images = torch.from_numpy(np.ascontiguousarray(feed["images"])).to(self.device)
        was_training, previous = model.training, getattr(model, "seg_output", "prob")
        model.eval()
        model.seg_output = self.seg_output
        try:
            with torch.inference_mode():
                outputs = model(images)
        finally:
            model.seg_output = previous
            model.train(was_training)
        return {name: outputs[name].cpu().numpy() for name in OUTPUT_NAMES}

    def _close(self) -> None:
        if self._owned:
            self.model = None
            if self.device.startswith("cuda"):
                self._torch.cuda.empty_cache()
