"""Collect `roadsight val --json` files (MODEL--SET.json) into robustness.json, robustness.md and robustness.png."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METRICS = (("mAP50", lambda r: r["detection"]["mAP50"]), ("recall", lambda r: r["detection"]["recall"]),
           ("drivable mIoU", lambda r: r["drivable"]["mIoU"]), ("lane IoU", lambda r: r["lane"]["IoU"]))


def collect(folder: Path, sets: list[str]) -> dict:
    """{model: {set: {metric: percent, images}}} from every MODEL--SET.json in `folder`."""
    table: dict = {}
    for path in sorted(folder.glob("*--*.json")):
        model, name = path.stem.split("--")
        if name in sets:
            r = json.loads(path.read_text())
            table.setdefault(model, {})[name] = {"images": r["images"], **{k: round(100 * f(r), 1) for k, f in METRICS}}
    return {m: {s: v[s] for s in sets if s in v} for m, v in table.items()}


def markdown(table: dict, sets: list[str]) -> str:
    """One row per set, one column group per model (mAP50 / recall / drivable mIoU / lane IoU)."""
    models = list(table)
    head = "| set (images) | " + " | ".join(f"{m}: mAP50 / recall / da mIoU / lane IoU" for m in models) + " |"
    rows = [head, "|" + "---|" * (len(models) + 1)]
    for s in sets:
        first = next(table[m][s] for m in models if s in table[m])
        cells = [" / ".join(f"{table[m][s][k]:.1f}" for k, _ in METRICS) if s in table[m] else "-" for m in models]
        rows.append(f"| {s} ({first['images']}) | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def figure(table: dict, sets: list[str], path: Path) -> None:
    """Grouped bars: one panel per metric, sets along x, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(len(METRICS), 1, figsize=(11, 9), sharex=True)
    width = 0.8 / len(table)
    for ax, (key, _) in zip(axes, METRICS):
        for k, (model, rows) in enumerate(table.items()):
            ax.bar(np.arange(len(sets)) + k * width, [rows.get(s, {}).get(key, 0) for s in sets], width, label=model)
        ax.set_ylabel(key)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(np.arange(len(sets)) + 0.4 - width / 2, sets)
    axes[0].legend(loc="lower left", fontsize=8)
    axes[0].set_title("roadsight val on the wide held-out set and each --condition set")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--sets", nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    table = collect(args.folder, args.sets)
    (args.out / "robustness.json").write_text(json.dumps(table, indent=1))
    (args.out / "robustness.md").write_text(markdown(table, args.sets))
    figure(table, args.sets, args.out / "robustness.png")
    print(markdown(table, args.sets) + f"written: {args.out}/robustness.json, robustness.md, robustness.png")


if __name__ == "__main__":
    main()
