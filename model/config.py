"""`ModelConfig`: everything needed to rebuild a RoadNet, stored in every checkpoint (torch-free)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from engines.errors import RoadsightError
from engines.meta import ATTENTION_VARIANTS
from model.classes import stored_class_map

# YOLOv8 scales: (depth multiple, width multiple, max channels), as in ultralytics' yolov8.yaml.
SIZES: dict[str, tuple[float, float, int]] = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024)}
ATTENTION_STRIDE = 32  # the attention stage sits after SPPF, at the lowest resolution


@dataclass
class ModelConfig:
    """Architecture and attention settings of a RoadNet.

    size: "n" | "s" (YOLOv8n / YOLOv8s width and depth).
    attention: "vanilla" | "clipped" | "gated" | "clipped+gated".
    names: class names in class-id order; class_map: {BDD100K category: name} the names were trained from
        (model.classes; None in old checkpoints: derived from names).
    imgsz: (height, width) of the network input the model is trained for.
    alpha: clipped-softmax strength; gamma = -alpha / T, T = tokens at stride 32 for imgsz (derived, stored).
        Probabilities below alpha / (T + alpha) become 0; alpha >= 1 puts uniform attention (1/T, where a fresh
        network starts) below that line, so the block gets no gradient. 0.5 clips only the tail.
    zeta: clipped-softmax upper stretch (1 = no clipping at 1, as in the paper's final setting).
    gate_init: pi_init, the initial gate probability; the gate bias starts at logit(pi_init).
    reg_max: DFL bins of the detection head.
    """

    size: str = "n"
    attention: str = "gated"
    names: tuple[str, ...] = ("vehicle",)
    class_map: dict[str, str] | None = None
    imgsz: tuple[int, int] = (384, 640)
    alpha: float = 0.5
    zeta: float = 1.0
    gate_init: float = 0.5
    reg_max: int = 16
    gamma: float = field(init=False)

    def __post_init__(self) -> None:
        self.names = tuple(self.names)
        self.imgsz = tuple(int(v) for v in self.imgsz)  # type: ignore[assignment]
        _check("size", self.size, tuple(SIZES), "Use --size n or --size s.")
        _check("attention", self.attention, ATTENTION_VARIANTS, "Use one of the listed variants.")
        if len(self.imgsz) != 2 or any(v <= 0 or v % ATTENTION_STRIDE for v in self.imgsz):
            raise RoadsightError(
                f"imgsz: {self.imgsz} is not (height, width) in positive multiples of 32. "
                "Expected e.g. (384, 640), got the value above. Pass --imgsz 640x384."
            )
        if not self.names:
            raise RoadsightError("names: no classes. Expected at least one class name, got (). Use ('vehicle',).")
        self.class_map = dict(stored_class_map(self.names, self.class_map).mapping)
        if self.alpha < 0 or self.zeta < 1:
            raise RoadsightError(
                f"clipped softmax: alpha={self.alpha}, zeta={self.zeta}. Expected alpha >= 0 and zeta >= 1. "
                "Use alpha 0.5 (below 1 for networks trained from scratch) and zeta 1."
            )
        if self.reg_max < 1:
            raise RoadsightError(f"reg_max: {self.reg_max}. Expected an integer >= 1 (16 for YOLOv8 DFL), got {self.reg_max}.")
        if not 0.0 < self.gate_init < 1.0:
            raise RoadsightError(f"gate_init: not a probability. Expected a value in (0, 1), got {self.gate_init}. Try 0.5.")
        self.gamma = -self.alpha / self.tokens

    @property
    def tokens(self) -> int:
        """Number of attention tokens at imgsz: (h / 32) * (w / 32)."""
        return (self.imgsz[0] // ATTENTION_STRIDE) * (self.imgsz[1] // ATTENTION_STRIDE)

    @property
    def clipped(self) -> bool:
        return self.attention in ("clipped", "clipped+gated")

    @property
    def gated(self) -> bool:
        return self.attention in ("gated", "clipped+gated")

    @property
    def gate_bias(self) -> float:
        """logit(pi_init): the initial bias of every gate."""
        return math.log(self.gate_init / (1.0 - self.gate_init))

    @property
    def nc(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (gamma included for the record; it is re-derived on load)."""
        out = asdict(self)
        out["names"], out["imgsz"] = list(self.names), list(self.imgsz)
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> "ModelConfig":
        """Rebuild from to_dict(); unknown keys are an error (a checkpoint from another program/version)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise RoadsightError(
                f"model config: unknown keys {unknown}. Expected only {sorted(known)}, got those extra. "
                "The checkpoint was written by another roadsight version; re-train or re-save it."
            )
        kwargs = {k: v for k, v in raw.items() if k != "gamma"}
        cfg = cls(**kwargs)
        if "gamma" in raw and not math.isclose(raw["gamma"], cfg.gamma, rel_tol=1e-6, abs_tol=1e-12):
            raise RoadsightError(
                f"model config: stored gamma {raw['gamma']} disagrees with -alpha/tokens = {cfg.gamma}. "
                "Expected them equal. The checkpoint is inconsistent; re-save it."
            )
        return cfg


def _check(name: str, value: str, allowed: tuple[str, ...], hint: str) -> None:
    if value not in allowed:
        raise RoadsightError(f"{name}: unknown value {value!r}. Expected one of {', '.join(allowed)}, got {value!r}. {hint}")
