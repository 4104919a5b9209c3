"""Activation outlier statistics of a RoadNet checkpoint (Bondarenko et al. 2023, Sec. 5 / validate_mlm.py).

For every watched tensor and every sample: the infinity norm max|x| and the (non-excess) kurtosis
mean((x - mu)^4) / (std^4 + 1e-6) with the unbiased std, over the sample's flattened tensor; each is then
averaged over the samples. Watched (forward hooks on named modules, docs/ARCHITECTURE.md hook points):
the attention's input and output, each head's output (after gating), the FFN output, and the outputs of
the backbone stages and neck blocks. Summary as in the paper: max of the averaged inf-norms and mean/max
kurtosis over the attention tensors. Needs torch (the `train` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.errors import RoadsightError, require_training_extra

ATTN = "attn.m.0.attn"
# label -> (module path, "input" | "output" | "heads")
ATTENTION_POINTS = {
    "attention input": (ATTN, "input"),
    "attention output": (ATTN, "output"),
    "heads": (f"{ATTN}.head_out", "heads"),
    "ffn output": ("attn.m.0.ffn", "output"),
}
STAGE_POINTS = {
    **{f"backbone {name}": (name, "output") for name in ("stem", "stage2", "stage3", "stage4", "stage5", "sppf", "attn")},
    **{f"neck {name}": (name, "output") for name in ("top4", "top3", "bottom4", "bottom5")},
}


def per_sample_stats(x) -> tuple[np.ndarray, np.ndarray]:
    """(B, ...) tensor -> (inf-norm (B,), kurtosis (B,)) over each sample's flattened values (float64)."""
    flat = x.detach().double().reshape(x.shape[0], -1)
    mu = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1)  # unbiased, as torch.std in the paper's code
    kurt = ((flat - mu) ** 4).mean(dim=1) / (std**4 + 1e-6)
    return flat.abs().max(dim=1).values.numpy(), kurt.numpy()


@dataclass
class _Acc:
    module: str
    inf: list
    kurt: list

    def add(self, x) -> None:
        inf, kurt = per_sample_stats(x)
        self.inf.extend(inf.tolist())
        self.kurt.extend(kurt.tolist())

    def result(self) -> dict:
        return {"module": self.module, "inf_norm": float(np.mean(self.inf)), "inf_norm_max": float(np.max(self.inf)),
                "kurtosis": float(np.mean(self.kurt)), "samples": len(self.inf)}


def collect(model, batches, points: dict[str, tuple[str, str]] | None = None) -> dict[str, dict]:
    """Run `model` (eval) over float32 NCHW numpy batches with hooks; label -> averaged statistics.

    'heads' points expand to one entry per head ("head 0", ...). Missing modules are skipped.
    """
    import torch

    points = points or {**ATTENTION_POINTS, **STAGE_POINTS}
    modules = dict(model.named_modules())
    accs: dict[str, _Acc] = {}
    hooks = []

    def hook_for(label: str, path: str, kind: str):
        def hook(module, args, output):
            x = args[0] if kind == "input" else output
            if kind == "heads":
                for h in range(x.shape[1]):
                    accs.setdefault(f"head {h}", _Acc(f"{path}[:, {h}]", [], [])).add(x[:, h])
            else:
                accs.setdefault(label, _Acc(path, [], [])).add(x)

        return hook

    for label, (path, kind) in points.items():
        if path in modules:
            hooks.append(modules[path].register_forward_hook(hook_for(label, path, kind)))
    if not hooks:
        raise RoadsightError("outliers: none of the hook points exist in this model. Expected a RoadNet checkpoint.")
    try:
        model.eval()
        with torch.no_grad():
            for batch in batches:
                model(torch.from_numpy(np.ascontiguousarray(batch)))
    finally:
        for h in hooks:
            h.remove()
    return {label: acc.result() for label, acc in accs.items()}


def summary(stats: dict[str, dict]) -> dict:
    """The paper's headline numbers over the attention tensors (input/output, heads, FFN), and the largest
    max|x| anywhere in the measured network with its place, so the attention's share of the outliers shows."""
    attn = [v for k, v in stats.items() if k in ATTENTION_POINTS or k.startswith("head ")]
    if not attn:
        return {}
    peak = max(stats, key=lambda k: stats[k]["inf_norm"])
    return {"max_inf_norm": max(v["inf_norm"] for v in attn), "avg_kurtosis": float(np.mean([v["kurtosis"] for v in attn])),
            "max_kurtosis": max(v["kurtosis"] for v in attn), "network_max_inf_norm": stats[peak]["inf_norm"],
            "network_max_at": peak}


def outliers(weights: str | Path, data: list[str], n: int = 64, seed: int = 0, batch: int = 8, on_frame=None) -> dict:
    """Load a checkpoint, sample n frames from `data` (folders/videos/globs), letterbox them, collect statistics.

    Returns {"weights", "attention", "classes", "imgsz", "frames", "stats": {label: {...}}, "summary": {...}}.
    """
    require_training_extra("roadsight outliers")
    from calibration.frames import sample_frames
    from engines.preprocess import letterbox_frame, letterbox
    from model.network import load_checkpoint

    model = load_checkpoint(weights)
    imgsz = tuple(model.cfg.imgsz)
    frames, refs, _ = sample_frames(list(data), n, seed, on_frame, lambda f: letterbox_frame(f, imgsz)[0])
    batches = (letterbox(frames[i : i + batch], imgsz)[0] for i in range(0, len(frames), batch))
    stats = collect(model, batches)
    return {"weights": str(weights), "attention": model.cfg.attention, "classes": list(model.cfg.names), "imgsz": list(imgsz), "frames": len(refs),
            "stats": stats, "summary": summary(stats)}


def table(result: dict):
    """A rich table of one outliers() result."""
    from rich.table import Table

    s = result.get("summary", {})
    caption = (f"attention tensors: max inf-norm {s.get('max_inf_norm', float('nan')):.2f}, avg kurtosis "
               f"{s.get('avg_kurtosis', float('nan')):.2f}, max kurtosis {s.get('max_kurtosis', float('nan')):.2f}")
    classes = ", ".join(result.get("classes", []))
    t = Table(title=f"activation outliers: {result['weights']} ({result['attention']}, {classes}, {result['frames']} frames)", caption=caption)
    for column in ("tensor", "module", "max|x| (mean)", "max|x| (max)", "kurtosis (mean)"):
        t.add_column(column, justify="left" if column in ("tensor", "module") else "right")
    for label, v in result["stats"].items():
        t.add_row(label, v["module"], f"{v['inf_norm']:.2f}", f"{v['inf_norm_max']:.2f}", f"{v['kurtosis']:.2f}")
    return t


def plot(results: dict[str, dict], path: str | Path) -> Path:
    """Grouped bars (one group per tensor, one bar per model): mean inf-norm and kurtosis, log scale. PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(next(iter(results.values()))["stats"])
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.6 * len(labels) * max(1, len(results) / 2)), 7), sharex=True)
    width = 0.8 / len(results)
    x = np.arange(len(labels))
    for k, (name, result) in enumerate(results.items()):
        for ax, key in zip(axes, ("inf_norm", "kurtosis")):
            values = [result["stats"].get(label, {}).get(key, np.nan) for label in labels]
            ax.bar(x + (k - (len(results) - 1) / 2) * width, values, width, label=name)
    axes[0].set_ylabel("max |x| (mean over samples)")
    axes[1].set_ylabel("kurtosis (mean over samples)")
    for ax in axes:
        ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_xticks(x, labels, rotation=45, ha="right")
    axes[0].legend()
    axes[0].set_title("activation outliers (Bondarenko et al. 2023 metrics)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
