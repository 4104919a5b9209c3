"""The bench PNG: latency distribution per engine and a per-stage breakdown (matplotlib, Agg, optional).

matplotlib belongs to the `train` extra, not the runtime: without it `save_plot` returns a one-line
reason and the caller skips the PNG.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

STAGE_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


def plot_unavailable() -> str | None:
    """None when matplotlib can be imported, else the one-line reason the PNG is skipped."""
    if importlib.util.find_spec("matplotlib") is None:
        return "PNG skipped: matplotlib is not installed (pip install matplotlib, or the 'train' extra)."
    return None


def _breakdown(report: dict) -> tuple[str, list[str], list[str], list[list[float]]]:
    """(title, row labels, stage names, median ms per row and stage) for the right-hand panel."""
    if report.get("pipeline"):
        runs = report["pipeline"]
        stages = list(dict.fromkeys(s for run in runs for s in run["work_ms"]))
        rows = [f"{run['model']}\n{run['outputs']}\n{run['fps']:.0f} fps" for run in runs]
        values = [[run["work_ms"].get(s, 0.0) for s in stages] for run in runs]
        return "Pipeline work per stage (mean ms per frame, waits excluded)", rows, stages, values
    results = report["model_only"]
    if any(r["device_ms"] for r in results):
        stages = ["h2d", "compute", "d2h"]
        values = [[r["device_ms"].get(s, {}).get("median", 0.0) for s in stages] for r in results]
        title = "Device stages, CUDA events (median ms per batch)"
    else:
        stages = ["infer (host)"]
        values = [[r["latency_ms"]["median"]] for r in results]
        title = "Model-only (median ms per batch; pre/post excluded)"
    return title, [f"{r['model']}\nbatch {r['batch']}" for r in results], stages, values


def save_plot(report: dict, path: str | Path) -> str | None:
    """Write the two-panel PNG to `path`; returns None, or the reason it was skipped."""
    reason = plot_unavailable()
    if reason:
        return reason
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    results = report["model_only"]
    title, rows, stages, values = _breakdown(report)
    height = max(3.5, 0.55 * max(len(results), len(rows)) + 1.8)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, height), layout="constrained")

    runs = {m["name"]: f"{m['backend']} {m.get('runtime_precision') or m['precision']}" for m in report.get("models", [])}
    labels = [
        f"{r['model']}\n{runs.get(r['model'], '')} batch {r['batch']}\np50 {r['latency_ms']['median']:.3g}  p99 {r['latency_ms']['p99']:.3g}"
        for r in results
    ]
    new_api = tuple(int(part) for part in matplotlib.__version__.split(".")[:2]) >= (3, 10)
    horizontal = {"orientation": "horizontal", "tick_labels": labels} if new_api else {"vert": False, "labels": labels}
    left.boxplot(
        [r["samples_ms"] for r in results], showfliers=True, flierprops={"markersize": 2, "alpha": 0.4},
        medianprops={"color": "#C44E52"}, **horizontal,
    )
    low = min(r["latency_ms"]["min"] for r in results)
    high = max(r["latency_ms"]["max"] for r in results)
    if low > 0 and high / low > 20:  # a few slow outliers would squash every box into a line
        left.set_xscale("log")
    left.invert_yaxis()
    left.set_xlabel("latency per batch (ms)" + (", log scale" if left.get_xscale() == "log" else ""))
    left.tick_params(axis="y", labelsize=8)
    left.set_title("Model-only latency distribution (interleaved runs)")
    left.grid(axis="x", alpha=0.3)

    starts = [0.0] * len(rows)
    for index, stage in enumerate(stages):
        widths = [row[index] for row in values]
        right.barh(rows, widths, left=starts, label=stage, color=STAGE_COLOURS[index % len(STAGE_COLOURS)])
        starts = [s + w for s, w in zip(starts, widths)]
    right.invert_yaxis()
    right.tick_params(axis="y", labelsize=8)
    right.set_xlabel("ms")
    right.set_title(title)
    right.legend(fontsize=7, loc="best")
    right.grid(axis="x", alpha=0.3)

    machine = report["machine"]
    gpu = ", ".join(g["name"] for g in machine.get("gpus") or []) or "CPU only"
    fig.suptitle(f"roadsight bench: {report.get('name', '')} | {machine['cpu']} | {gpu}", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
