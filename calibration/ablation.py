"""The attention ablation: per variant, export -> calibrate -> quantize (trt, cpu) -> evaluate FP32/INT8 + outliers.

    from calibration.ablation import AblationOptions, run_ablation
    run_ablation(AblationOptions(
        checkpoints={"vanilla": "runs/v/best.pt", "clipped": "runs/c/best.pt", "gated": "runs/g/best.pt"},
        calib_sources=["data/bdd/images/train"], val="data/bdd", out="runs/ablation"))

or `python -m calibration.ablation --ckpt vanilla=runs/v/best.pt --ckpt gated=runs/g/best.pt --calib data/bdd/images/train
--val data/bdd --out runs/ablation`. All variants share one calibration set (same frames, same seed) when their input
sizes match. Writes OUT/ablation.md (markdown table), OUT/ablation.json (everything) and OUT/outliers.png; each
variant's ONNX files go to OUT/VARIANT/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from calibration.gate import METRICS, compare, score

TASKS = [key for key, _ in METRICS]


@dataclass
class AblationOptions:
    """checkpoints: variant name -> .pt; calib_sources: frames for calibration (and outliers unless
    outlier_sources); val: dataset root (BDD layout, split 'val') unless a dataset object is passed."""

    checkpoints: dict[str, Path]
    calib_sources: list[str]
    out: Path
    val: Path | None = None
    targets: tuple[str, ...] = ("trt", "cpu")
    method: str = "max"
    backend: str = "auto"
    n_calib: int = 512
    n_outliers: int = 64
    outlier_sources: list[str] = field(default_factory=list)
    limit: int | None = None
    seed: int = 0
    float_attention: bool = False  # keep the attention MatMuls float in every INT8 model


def run_ablation(opts: AblationOptions, dataset=None, progress: bool = False) -> dict:
    """Run every variant; returns {variant: {"fp32", "int8-<target>": metrics + drop, "outliers", "files"}}."""
    from calibration.cache import CalibCache, calibrate, preprocess_key, read_meta
    from calibration.outliers import outliers, plot
    from calibration.quantize import quantize
    from model.export import ExportOptions, export_onnx

    if dataset is None:
        from model.bdd import BDDDataset

        dataset = BDDDataset(opts.val, "val")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    caches: dict[str, CalibCache] = {}
    results: dict[str, dict] = {}
    for variant, weights in opts.checkpoints.items():
        folder = out / variant
        fp32 = export_onnx(ExportOptions(weights=Path(weights), out=folder / "model.onnx")).path
        key = preprocess_key(read_meta(fp32))
        if key not in caches:
            _, caches[key] = calibrate(fp32, opts.calib_sources, opts.n_calib, out / f"calib-{key}.npz", opts.seed)
        row: dict = {"files": {"fp32": str(fp32)}, "fp32": _headline(score(fp32, dataset, opts.limit, progress))}
        for target in opts.targets:
            q = quantize(fp32, caches[key], target=target, method=opts.method, backend=opts.backend,
                         out=folder / f"model.int8-{target}.onnx", float_attention=opts.float_attention)
            metrics = score(q.path, dataset, opts.limit, progress)
            gate = compare({k: row["fp32"].get(k) for k in TASKS}, metrics, 0.0)
            row[f"int8-{target}"] = {**_headline(metrics), "drop": {k: d for k, (_, _, d) in gate.rows.items()}, "backend": q.backend}
            row["files"][f"int8-{target}"] = str(q.path)
        stats = outliers(weights, opts.outlier_sources or opts.calib_sources, n=opts.n_outliers, seed=opts.seed)
        row["outliers"] = stats
        results[variant] = row
    (out / "ablation.json").write_text(json.dumps(results, indent=2))
    (out / "ablation.md").write_text(markdown(results, opts))
    plot({v: r["outliers"] for v, r in results.items()}, out / "outliers.png")
    return results


def _headline(metrics: dict) -> dict:
    return {k: metrics.get(k) for k in TASKS}


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def markdown(results: dict, opts: AblationOptions) -> str:
    """One table: FP32 and INT8 per task (with the drop in points), and the attention outlier metrics."""
    labels = dict(METRICS)
    head = ["variant"]
    for precision in ("fp32", *(f"int8-{t}" for t in opts.targets)):
        head += [f"{precision} {labels[k]}" for k in TASKS]
    head += ["max ‖x‖∞ (attn)", "avg kurtosis (attn)", "max kurtosis (attn)", "max ‖x‖∞ (whole net, at)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant, row in results.items():
        cells = [variant] + [_pct(row["fp32"][k]) for k in TASKS]
        for t in opts.targets:
            r = row[f"int8-{t}"]
            cells += [f"{_pct(r[k])} ({0.0 - r['drop'][k]:+.1f})" if k in r["drop"] else _pct(r[k]) for k in TASKS]
        s = row["outliers"]["summary"]
        cells += [f"{s.get(k, float('nan')):.3g}" for k in ("max_inf_norm", "avg_kurtosis", "max_kurtosis")]
        cells.append(f"{s.get('network_max_inf_norm', float('nan')):.3g} ({s.get('network_max_at', '–')})")
        lines.append("| " + " | ".join(cells) + " |")
    backends = {t: {row[f"int8-{t}"]["backend"] for row in results.values()} for t in opts.targets}
    notes = [
        "",
        f"INT8: {opts.method} calibration on {opts.n_calib} frames from {', '.join(opts.calib_sources)} (seed {opts.seed}); "
        + "; ".join(f"{t} via {', '.join(sorted(b))}" for t, b in backends.items())
        + ". In brackets: change vs FP32 in points. INT8 models run in ONNX Runtime on the CPU (Q/DQ semantics).",
        f"Outliers: mean over {opts.n_outliers} frames of per-sample max|x| and kurtosis of the attention input/output, "
        "head outputs and FFN output (Bondarenko et al. 2023); the last column is the largest mean max|x| over every "
        "measured backbone, neck and attention output, and where it is.",
    ]
    return "\n".join(lines + notes) + "\n"


def main() -> None:
    """`python -m calibration.ablation --ckpt NAME=PT [...] --calib SOURCE [...] --val DATA --out DIR`."""
    import typer

    def run(
        ckpt: list[str] = typer.Option(..., "--ckpt", help="VARIANT=checkpoint.pt; repeat per variant."),
        calib: list[str] = typer.Option(..., "--calib", help="Calibration frames: folder, video or glob; repeatable."),
        val: Path = typer.Option(..., "--val", help="Dataset root (BDD100K layout, split 'val')."),
        out: Path = typer.Option(Path("runs/ablation"), "--out", help="Output folder."),
        n_calib: int = typer.Option(512, "--n-calib", help="Calibration frames."),
        n_outliers: int = typer.Option(64, "--n-outliers", help="Frames for the outlier statistics."),
        method: str = typer.Option("max", "--method", help="max, entropy or percentile."),
        limit: int = typer.Option(None, "--limit", help="Evaluate only the first N validation images."),
    ) -> None:
        """Export, calibrate, quantize (trt, cpu), evaluate FP32/INT8 and measure outliers for each variant."""
        checkpoints = {name: Path(pt) for name, _, pt in (item.partition("=") for item in ckpt)}
        opts = AblationOptions(checkpoints, list(calib), out, val=val, n_calib=n_calib, n_outliers=n_outliers,
                               method=method, limit=limit)
        from engines.errors import RoadsightError

        try:
            run_ablation(opts, progress=True)
        except RoadsightError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        typer.echo((Path(out) / "ablation.md").read_text())

    typer.run(run)


if __name__ == "__main__":
    main()
