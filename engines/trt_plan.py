"""The TensorRT-independent half of building and running engines (testable without a GPU).

- `parse_batch` / `plan_profile`: the optimisation profile for the image input from its ONNX shape;
- `EngineInfo`, `write_sidecar` / `read_sidecar`: the JSON sidecar `model.engine.json` next to a plan
  (ModelMeta + TensorRT version + GPU name + compute capability + profile);
- `check_compat`: refuses an engine built by another TensorRT version or for another GPU architecture;
- `concrete_shape`: a tensor shape with its dynamic batch filled in (buffer planning).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engines.errors import RoadsightError
from engines.meta import ModelMeta

Shape = tuple[int, ...]


def parse_batch(value: str | int | tuple[int, ...]) -> tuple[int, int, int]:
    """'4' | 4 -> (4, 4, 4); '1,4,8' | (1, 4, 8) -> (1, 4, 8), checked 1 <= min <= opt <= max."""
    try:
        if isinstance(value, int):
            parts = [value]
        elif isinstance(value, str):
            parts = [int(part) for part in value.split(",")]
        else:
            parts = [int(part) for part in value]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or not 1 <= parts[0] <= parts[1] <= parts[2]:
        raise RoadsightError(
            f"batch: cannot use {value!r}. Expected N or MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX, e.g. 1 or 1,4,8."
        )
    return parts[0], parts[1], parts[2]


def plan_profile(name: str, shape: Shape, batch: tuple[int, int, int] | None) -> tuple[Shape, Shape, Shape] | None:
    """(min, opt, max) shapes for input `name` of ONNX `shape` (-1 = dynamic), or None when it is static.

    Only the batch dimension may be dynamic. A static batch must agree with the requested one.
    """
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape[1:]):
        raise RoadsightError(
            f"input '{name}': only the batch may be dynamic. Expected (B,3,H,W) with a fixed H and W, got {shape}. "
            "Export with a fixed --imgsz."
        )
    if shape and shape[0] >= 0:
        if batch is not None and batch != (shape[0],) * 3:
            raise RoadsightError(
                f"input '{name}': the ONNX has a fixed batch of {shape[0]}. Expected --batch {shape[0]} for it, "
                f"got {','.join(map(str, batch))}. Re-export with a dynamic batch (`roadsight export --dynamic`)."
            )
        return None
    low, opt, high = batch or (1, 1, 1)
    return (low, *shape[1:]), (opt, *shape[1:]), (high, *shape[1:])


def concrete_shape(shape: tuple[int | None, ...], batch: int) -> Shape:
    """Replace a dynamic (None or -1) leading dimension by `batch`; other dimensions must be static."""
    out = tuple(batch if i == 0 and (d is None or d < 0) else d for i, d in enumerate(shape))
    if any(d is None or d < 0 for d in out):
        raise RoadsightError(f"tensor shape {shape}: only the batch may be dynamic. Expected static H and W, got {shape}.")
    return out


@dataclass(frozen=True)
class EngineInfo:
    """What `model.engine.json` records about a plan."""

    meta: ModelMeta
    tensorrt: str
    gpu: str
    compute_capability: tuple[int, int]
    profile: dict[str, list[list[int]]] = field(default_factory=dict)  # input -> [min, opt, max]
    onnx: str = ""

    def to_json(self) -> str:
        data = asdict(self)
        data["meta"] = json.loads(self.meta.to_props()["roadsight"])
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str, source: str) -> "EngineInfo":
        try:
            data = json.loads(text)
            meta = ModelMeta.from_props({"roadsight": json.dumps(data["meta"])}, source=source)
            return cls(
                meta=meta,
                tensorrt=str(data["tensorrt"]),
                gpu=str(data["gpu"]),
                compute_capability=tuple(int(v) for v in data["compute_capability"]),
                profile=dict(data.get("profile", {})),
                onnx=str(data.get("onnx", "")),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise RoadsightError(
                f"{source}: unreadable engine sidecar ({type(error).__name__}: {error}). Expected the JSON written by "
                "`roadsight build`. Rebuild the engine."
            ) from None


def sidecar_path(engine_path: str | Path) -> Path:
    """model.engine -> model.engine.json."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def write_sidecar(engine_path: str | Path, info: EngineInfo) -> Path:
    path = sidecar_path(engine_path)
    path.write_text(info.to_json() + "\n")
    return path


def read_sidecar(engine_path: str | Path) -> EngineInfo:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise RoadsightError(
            f"{Path(engine_path).name}: no sidecar {path.name} next to it. Expected the metadata file `roadsight build` "
            f"writes, got none. Rebuild: roadsight build --onnx MODEL.onnx --out {Path(engine_path).name}"
        )
    return EngineInfo.from_json(path.read_text(), source=path.name)


def _release(version: str) -> tuple[int, ...]:
    """'10.3.0.26' -> (10, 3, 0): engines are tied to major.minor.patch."""
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def check_compat(info: EngineInfo, tensorrt_version: str, gpu: str, compute_capability: tuple[int, int], name: str) -> list[str]:
    """Raise when the plan cannot run here; return warnings for what might still work (another GPU model)."""
    hint = f"Rebuild it on this machine: roadsight build --onnx {info.onnx or 'MODEL.onnx'} --out {name}"
    if _release(info.tensorrt) != _release(tensorrt_version):
        raise RoadsightError(
            f"{name}: built with TensorRT {info.tensorrt}. Expected TensorRT {tensorrt_version} (installed here), "
            f"got {info.tensorrt}. {hint}"
        )
    if tuple(info.compute_capability) != tuple(compute_capability):
        built, here = ".".join(map(str, info.compute_capability)), ".".join(map(str, compute_capability))
        raise RoadsightError(
            f"{name}: built for a GPU of compute capability {built} ({info.gpu}). Expected {here} ({gpu}), "
            f"got {built}. {hint}"
        )
    if info.gpu != gpu:
        return [f"{name}: built on {info.gpu}, running on {gpu} (same compute capability); it may run slower. {hint}"]
    return []


def meta_batch(profile: tuple[Shape, Shape, Shape] | None, onnx_batch: int) -> int | None:
    """ModelMeta.batch of the engine: fixed when min == max (or a static ONNX), None when dynamic."""
    if profile is None:
        return onnx_batch
    return profile[0][0] if profile[0][0] == profile[2][0] else None
