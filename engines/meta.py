"""What a model artifact says about itself (ONNX metadata, engine sidecar, checkpoint)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata

from engines.errors import RoadsightError

try:
    __version__ = metadata.version("roadsight")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

ATTENTION_VARIANTS = ("vanilla", "clipped", "gated", "clipped+gated")


def parse_imgsz(text: str | int | tuple[int, int]) -> tuple[int, int]:
    """'640x384' (width x height, as video sizes are written) or 640 -> (height, width)."""
    if isinstance(text, tuple):
        return text
    try:
        if isinstance(text, int) or "x" not in str(text):
            side = int(text)
            return side, side
        width, height = (int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise RoadsightError(f"imgsz: cannot read {text!r}. Expected WIDTHxHEIGHT such as 640x384.") from None
    if width % 32 or height % 32 or width <= 0 or height <= 0:
        raise RoadsightError(f"imgsz: {width}x{height} is not a positive multiple of 32. Try 640x384 or 320x192.")
    return height, width


def format_imgsz(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]}"


SEG_OUTPUTS = ("logits", "prob", "mask")  # what a model's drivable/lane outputs hold (ModelMeta.seg_output)


@dataclass(frozen=True)
class ModelMeta:
    """Everything downstream steps need to know about a model, stored inside every artifact.

    imgsz is (height, width) of the network input. seg_output says what the drivable/lane outputs are:
    float logits at each head's stride ('logits': (B, h/4, w/4) and (B, h/2, w/2), upsampled only once, to the
    frame, in postprocess), float probabilities at network size ('prob') or a baked uint8 0/1 mask at network
    size ('mask'). names label the detections
    (class id order); class_map says which dataset categories they were trained from (val, the INT8 gate).
    """

    names: tuple[str, ...] = ("vehicle",)
    imgsz: tuple[int, int] = (384, 640)
    class_map: dict[str, str] | None = None  # {BDD100K category: name} the names were trained from (None: older artifacts)
    stride: int = 32
    attention: str = "gated"
    size: str = "n"
    precision: str = "fp32"  # fp32 | fp16 | int8-trt | int8-cpu
    seg_output: str = "prob"  # logits | prob | mask (files without the field: prob)
    batch: int | None = 1  # None: dynamic batch
    preprocess: str = "letterbox, BGR->RGB, /255, NCHW float32, pad 114"
    version: str = field(default=__version__)

    def to_props(self) -> dict[str, str]:
        """Flat string map for ONNX metadata_props / engine sidecars."""
        return {"roadsight": json.dumps(asdict(self))}

    def write_onnx(self, model, **extra: str) -> None:
        """Store this metadata (and `extra` keys) in an ONNX ModelProto's metadata_props, replacing old values."""
        existing = {prop.key: prop for prop in model.metadata_props}
        for key, value in {**self.to_props(), **extra}.items():
            prop = existing.get(key) or model.metadata_props.add()
            prop.key, prop.value = key, value

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "model") -> "ModelMeta":
        if "roadsight" not in props:
            raise RoadsightError(
                f"{source}: no roadsight metadata inside. Expected a model written by `roadsight export`, "
                "`quantize` or `build`. Re-export it with `roadsight export --weights W.pt`."
            )
        raw = json.loads(props["roadsight"])
        known = {f.name for f in fields(cls)}
        raw = {k: v for k, v in raw.items() if k in known}
        for key in ("names", "imgsz"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)
