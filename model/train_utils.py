"""Pieces of the training loop kept out of model/train.py: options, optimizer, schedule, logs, validation hook."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from model.ultra import torch
from torch import nn

from engines.errors import RoadsightError
from model.classes import ClassMap, parse_classes
from model.config import ModelConfig

# A validation hook: EMA model (eval mode) -> metrics; must contain "fitness" (higher is better).
Validator = Callable[[nn.Module], dict[str, float]]


@dataclass
class TrainOptions:
    """Everything `roadsight train` accepts (stored in every checkpoint as train_args)."""

    data: Path
    out: Path = Path("runs/train/exp")
    size: str = "n"
    attention: str = "gated"
    imgsz: tuple[int, int] = (384, 640)  # (h, w)
    epochs: int = 100
    batch: int = 16
    lr: float | None = None  # None: 0.002 for AdamW, 0.01 for SGD
    optimizer: str = "adamw"  # adamw | sgd
    weight_decay: float = 5e-4
    warmup_epochs: float = 3.0
    final_lr_fraction: float = 0.01
    workers: int = 4
    device: str = "cpu"
    resume: bool = False
    weights: Path | None = None  # start from this checkpoint's (EMA) weights; size/attention come from it
    pretrained: Path | None = None  # an ultralytics detection .pt: backbone, neck and box head start from it
    seed: int = 0
    val_every: int = 1
    alpha: float = 0.5
    gate_init: float = 0.5
    grad_clip: float = 10.0
    augment: bool = True
    classes: str = "vehicle"  # a --classes spec (model.classes): preset, list or category=name merges
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        self.weights = Path(self.weights) if self.weights else None
        self.pretrained = Path(self.pretrained) if self.pretrained else None
        if sum(map(bool, (self.weights, self.resume, self.pretrained))) > 1:
            raise RoadsightError(
                "train: more than one of --weights, --pretrained and --resume. --resume continues OUT/last.pt as it "
                "was; --weights starts a new run from a roadsight checkpoint; --pretrained from an ultralytics one. "
                "Pass only one."
            )
        if self.optimizer not in ("adamw", "sgd"):
            raise RoadsightError(f"optimizer: unknown {self.optimizer!r}. Expected adamw or sgd, got {self.optimizer!r}.")
        parse_classes(self.classes)  # a bad spec fails here, before any data is read
        if self.lr is None:
            self.lr = 0.002 if self.optimizer == "adamw" else 0.01
        if self.epochs < 1 or self.batch < 1 or self.val_every < 1:
            raise RoadsightError(
                f"train: epochs={self.epochs}, batch={self.batch}, val_every={self.val_every}. "
                "Expected each >= 1. Pass positive values."
            )

    def to_dict(self) -> dict:
        out = asdict(self)
        out["data"], out["out"], out["imgsz"] = str(self.data), str(self.out), list(self.imgsz)
        out["weights"] = str(self.weights) if self.weights else None
        return out


def fine_tune_config(stored: dict, opts: TrainOptions, classes: ClassMap) -> ModelConfig:
    """The architecture of a checkpoint (size, attention, alpha...) at the new --imgsz and the run's class map;
    its class names must match the run's."""
    cfg = ModelConfig.from_dict({**{k: v for k, v in stored.items() if k != "gamma"}, "imgsz": list(opts.imgsz)})
    if cfg.names != classes.names:
        raise RoadsightError(
            f"--weights: the checkpoint detects {list(cfg.names)} but --classes {opts.classes} gives {list(classes.names)}. "
            "Expected the same classes. Pass the checkpoint's classes, or train from scratch (no --weights) for other classes."
        )
    cfg.class_map = dict(classes.mapping)
    return cfg


def select_device(name: str) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N' -> torch.device, with a clear error when CUDA is missing."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RoadsightError(
            f"device: {name} requested but torch sees no CUDA GPU. Expected a CUDA build of torch and a GPU, "
            f"got torch {torch.__version__}. Use --device cpu."
        )
    if not (name == "cpu" or name.startswith("cuda")):
        raise RoadsightError(f"device: unknown {name!r}. Expected cpu, cuda or cuda:N, got {name!r}.")
    return torch.device(name)


def build_optimizer(model: nn.Module, opts: TrainOptions) -> torch.optim.Optimizer:
    """Ultralytics-style groups: decay on conv/linear weights only, none on BatchNorm weights and biases."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_weight = name == "weight" and not isinstance(module, nn.modules.batchnorm._BatchNorm)
            (decay if is_weight else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": opts.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if opts.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=opts.lr, momentum=0.937, nesterov=True)
    return torch.optim.AdamW(groups, lr=opts.lr, betas=(0.937, 0.999))


def lr_at(step: int, total: int, warmup: int, base: float, final_fraction: float) -> float:
    """Linear warm-up from 0 over `warmup` steps, then cosine from base to base * final_fraction."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return base * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


class EpochLog:
    """results.csv (one row per epoch, columns: every key seen so far) and results.json (all rows)."""

    def __init__(self, out: Path, resume: bool):
        self.csv, self.json = out / "results.csv", out / "results.json"
        self.rows: list[dict] = json.loads(self.json.read_text()) if resume and self.json.is_file() else []

    def add(self, row: dict) -> None:
        self.rows.append(row)
        columns = list(dict.fromkeys(key for r in self.rows for key in r))
        with self.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        self.json.write_text(json.dumps(self.rows, indent=1))


def fitness(metrics: dict[str, float]) -> float:
    """Mean of the headline numbers present: detection mAP50, drivable mIoU, lane IoU."""
    keys = [k for k in ("map50", "drivable_miou", "lane_iou") if k in metrics]
    if not keys:
        raise RoadsightError(f"validation: no headline metric in {sorted(metrics)}. Expected map50/drivable_miou/lane_iou.")
    return sum(float(metrics[k]) for k in keys) / len(keys)


def default_validator(data: Path, classes: ClassMap | str = "vehicle") -> Validator | None:
    """Validation through the public interfaces: the in-memory EMA model behind model's TorchEngine ->
    engines.Predictor (EVAL_CONF, EVAL_IOU) -> model.evaluate.evaluate on BDDDataset(DATA, "val", classes).
    None when DATA has no val split or those modules are missing."""
    if not (data / "images" / "val").is_dir():
        return None
    try:
        from engines import Predictor
        from model.torch_engine import TorchEngine
        from model.bdd import BDDDataset
        from model.evaluate import EVAL_CONF, EVAL_IOU, evaluate
    except ImportError:
        return None
    val_set = BDDDataset(data, "val", classes)

    def validate(model: nn.Module) -> dict[str, float]:
        with TorchEngine.from_model(model) as engine:
            result = evaluate(Predictor(engine, conf=EVAL_CONF, iou=EVAL_IOU), val_set, progress=True)
        flat = {k: float(v) for k, v in result.items() if k in ("map50", "drivable_miou", "lane_iou")}
        flat["fitness"] = fitness(flat)
        return flat

    return validate
