"""The calibration cache: frames letterboxed exactly as at inference, stored as uint8, keyed to the model.

File format (`np.savez_compressed`, no pickles):
- `images`: (N, h, w, 3) uint8 BGR frames already letterboxed to the model's imgsz by
  `engines.preprocess.letterbox_frame` (the engines' own code). uint8 is 4x smaller than float32 and
  loses nothing: the network input is exactly pixel/255. `batches()` turns them into the float32 NCHW RGB
  input through `engines.preprocess.letterbox` (an identity letterbox at that size + the same blob step),
  so calibration sees bit-for-bit what inference sees.
- `info`: JSON string: `preprocess_key` (sha256 of imgsz + the preprocessing recipe), `meta` (the
  model's ModelMeta as JSON), `frames` (source of each frame, "file" or "video#index"), `seed`, `counts`,
  `version`.
A cache is valid for any model with the same preprocess_key (e.g. vanilla/clipped/gated variants at
the same imgsz), which is what the ablation needs: one calibration set for all variants.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engines.errors import RoadsightError
from engines.meta import ModelMeta, __version__
from engines.preprocess import PAD_VALUE, letterbox, letterbox_frame


def read_meta(model: str | Path) -> ModelMeta:
    """The roadsight ModelMeta inside an .onnx file."""
    import onnx

    path = Path(model)
    if not path.is_file() or path.suffix.lower() != ".onnx":
        raise RoadsightError(f"--model: {path} is not an ONNX file. Expected an existing .onnx from `roadsight export`, got {path}.")
    proto = onnx.load(str(path), load_external_data=False)
    return ModelMeta.from_props({p.key: p.value for p in proto.metadata_props}, str(path))


def preprocess_key(meta: ModelMeta) -> str:
    """What makes two models' inputs identical: imgsz and the letterbox recipe (float dtype aside)."""
    recipe = {"imgsz": list(meta.imgsz), "pad": PAD_VALUE, "preprocess": meta.preprocess.replace("float16", "float32")}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class CalibCache:
    """Letterboxed uint8 frames plus where they came from and which preprocessing they fit."""

    images: np.ndarray  # (N, h, w, 3) uint8 BGR, letterboxed
    meta: ModelMeta
    frames: list[str] = field(default_factory=list)
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return preprocess_key(self.meta)

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def from_frames(cls, images: list[np.ndarray], meta: ModelMeta, **info) -> "CalibCache":
        """Letterbox BGR frames of any size to the model's imgsz (engines.preprocess)."""
        return cls(np.stack([letterbox_frame(image, meta.imgsz)[0] for image in images]), meta, **info)

    def batches(self, batch: int = 1, dtype: type = np.float32) -> Iterator[np.ndarray]:
        """(b, 3, h, w) network inputs, exactly as engines.preprocess.letterbox makes them at inference."""
        for start in range(0, len(self.images), batch):
            yield letterbox(list(self.images[start : start + batch]), self.meta.imgsz, dtype)[0]

    def subset(self, start: int, end: int) -> "CalibCache":
        """Frames [start, end) as a cache (a view, no copy)."""
        return CalibCache(self.images[start:end], self.meta, self.frames[start:end], self.seed, self.counts)

    def array(self, dtype: type = np.float32) -> np.ndarray:
        """All frames as one (N, 3, h, w) input array (what ModelOpt's calibration_data takes)."""
        return np.concatenate(list(self.batches(64, dtype)))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "preprocess_key": self.key,
            "meta": asdict(self.meta),
            "frames": self.frames,
            "seed": self.seed,
            "counts": self.counts,
            "version": __version__,
        }
        np.savez_compressed(path, images=self.images, info=np.array(json.dumps(info)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "CalibCache":
        path = Path(path)
        if not path.is_file():
            raise RoadsightError(f"--calib: {path} does not exist. Expected a cache from `roadsight calibrate --out {path}`.")
        try:
            with np.load(path, allow_pickle=False) as data:
                images, info = data["images"], json.loads(str(data["info"]))
        except (KeyError, ValueError, OSError) as error:
            raise RoadsightError(
                f"--calib: {path} is not a roadsight calibration cache ({error}). Expected an .npz from `roadsight calibrate`."
            ) from None
        meta = ModelMeta.from_props({"roadsight": json.dumps(info["meta"])}, str(path))
        cache = cls(images, meta, info.get("frames", []), info.get("seed", 0), info.get("counts", {}))
        if cache.key != info.get("preprocess_key"):
            raise RoadsightError(f"--calib: {path} is inconsistent (preprocess key). Expected an unmodified cache; recalibrate.")
        return cache

    def check_fits(self, meta: ModelMeta, path: str | Path = "cache") -> None:
        """Refuse a cache made for another input size or preprocessing."""
        if preprocess_key(meta) != self.key:
            raise RoadsightError(
                f"--calib: {path} was made for input {self.meta.imgsz[1]}x{self.meta.imgsz[0]} ({self.meta.preprocess}). "
                f"Expected the model's {meta.imgsz[1]}x{meta.imgsz[0]} ({meta.preprocess}), got another. "
                "Run `roadsight calibrate` with this model."
            )


def calibrate(
    model: str | Path,
    sources: list[str],
    n: int = 512,
    out: str | Path = "calib.npz",
    seed: int = 0,
    on_frame: Callable[[], None] | None = None,
) -> tuple[Path, CalibCache]:
    """Sample n frames over the sources, letterbox them for `model` and write the cache; returns (path, cache)."""
    from calibration.frames import sample_frames

    meta = read_meta(model)
    frames, refs, counts = sample_frames(sources, n, seed, on_frame, lambda f: letterbox_frame(f, meta.imgsz)[0])
    cache = CalibCache.from_frames(frames, meta, frames=[str(r) for r in refs], seed=seed, counts=counts)
    return cache.save(out), cache
