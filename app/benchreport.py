"""Terminal tables for `roadsight bench`: one report, or two saved reports side by side (`--compare`)."""

from __future__ import annotations

import json
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from app.sysinfo import describe_machine, describe_versions
from engines.errors import RoadsightError

FORMAT = "roadsight-bench"


def _ms(value) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def header_lines(report: dict) -> list[str]:
    """What was measured: machine, versions, settings and what the timings include."""
    settings = report["settings"]
    lines = [
        f"machine: {describe_machine(report['machine'])}",
        f"versions: {describe_versions(report['versions'])}",
        f"settings: runs {settings['runs']}, warm-up {settings['warmup']}, batch {settings['batches']}, "
        f"device {settings['device']}, threads {settings['threads'] or 'default'}, interleaved round-robin",
    ]
    for model in report["models"]:
        runs = f", runs {model['runtime_precision']}" if model.get("runtime_precision") else ""
        device = str(model.get("device") or "-")
        device = device.partition(":")[2] or device if device.startswith(model["backend"]) else device
        lines.append(
            f"  {model['name']}: {model['backend']} {device}, {model['precision']} model{runs}, "
            f"input {model['input']} ({model['imgsz']}), batch {model['batch']}, seg {model['seg_output']}"
        )
    lines.append(f"model-only: {report['includes']['model_only']}")
    if report.get("pipeline"):
        lines.append(f"pipeline: {report['includes']['pipeline']}")
    lines.extend(report.get("notes", []))
    return lines


def model_table(report: dict) -> Table:
    """Model-only latency per engine and batch (ms), throughput and ratios against the first engine."""
    table = _table("Model-only latency (ms per batch); speed-up = first model's median / this median")
    for column in ("model", "batch", "min", "median", "mean", "p90", "p99", "max", "img/s", "speed-up"):
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=column != "model")
    device = any(r["device_ms"] for r in report["model_only"])
    if device:
        for column in ("h2d", "compute", "d2h"):
            table.add_column(f"{column} med", justify="right")
    for result in report["model_only"]:
        lat = result["latency_ms"]
        ratio = result.get("vs_first")
        row = [result["model"], str(result["batch"])]
        row += [_ms(lat[k]) for k in ("min", "median", "mean", "p90", "p99", "max")]
        row += [f"{result['throughput_ips']:.1f}", _ratio(ratio["speedup"] if ratio else None)]
        if device:
            row += [_ms(result["device_ms"].get(k, {}).get("median")) for k in ("h2d", "compute", "d2h")]
        table.add_row(*row)
    return table


def pipeline_table(report: dict) -> Table:
    """Work per stage (mean ms per frame), capture-to-result p50/p99, end-to-end fps and its share of model-only."""
    stages = list(dict.fromkeys(s for run in report["pipeline"] for s in run["work_ms"]))
    short = {"preprocess": "pre", "postprocess": "post"}
    table = _table("Pipeline on the clip: work per stage (mean ms per frame, no waits); latency = decoded to written")
    table.add_column("model")
    table.add_column("outputs")
    for column in [*(short.get(s, s) for s in stages), "pre+post", "lat p50", "lat p99", "fps", "vs model"]:
        table.add_column(column, justify="right", no_wrap=True)
    for run in report["pipeline"]:
        latency = run["capture_to_result_ms"]
        fraction = run.get("fps_vs_model_only")
        row = [run["model"], run["outputs"]]
        row += [_ms(run["work_ms"].get(s)) for s in stages]
        row += [_ms(run["pre_post_ms"]), _ms(latency.get("median")), _ms(latency.get("p99")), f"{run['fps']:.1f}"]
        row.append("-" if fraction is None else f"{100 * fraction:.0f}%")
        table.add_row(*row)
    return table


def draw_encode_table(report: dict) -> Table:
    """Draw and mp4v encode per frame (median, p90, p99 ms) and draw + encode vs the first model's model-only median."""
    result = report["draw_encode"]
    table = _table(f"Draw + encode per {result['frame_size']} frame ({result['frames']} frames, {result['codec']}); "
                   f"vs = median / {result['reference_model']} model-only median")
    for column in ("stage", "median", "p90", "p99", "vs model-only"):
        table.add_column(column, justify="left" if column == "stage" else "right", no_wrap=True)
    reference = result.get("reference_model_only_median_ms")
    for stage in ("draw", "encode", "draw_encode"):
        lat = result[stage]
        share = lat["median"] / reference if reference else None
        table.add_row(stage.replace("_", " + "), _ms(lat["median"]), _ms(lat["p90"]), _ms(lat["p99"]), _ratio(share))
    return table


def print_report(report: dict, console: Console) -> None:
    """Header lines, the model-only table and, when measured, the draw + encode and pipeline tables."""
    for line in header_lines(report):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(model_table(report))
    if report.get("draw_encode"):
        console.print(draw_encode_table(report))
    if report.get("pipeline"):
        console.print(pipeline_table(report))


def load_report(path: str | Path) -> dict:
    """Read a JSON written by `roadsight bench`, or fail with one line."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RoadsightError(f"{path}: cannot read the bench report. Expected a JSON file from `roadsight bench`, got: {error}.") from None
    if not isinstance(report, dict) or report.get("format") != FORMAT:
        raise RoadsightError(f"{path}: not a bench report. Expected \"format\": \"{FORMAT}\", got another JSON file.")
    return report


def compare_table(a: dict, b: dict, label_a: str, label_b: str) -> Table:
    """Median latency and throughput of matching (model, batch) rows in two reports, and b/a ratios."""
    table = _table(f"Model-only: {label_a} (A) vs {label_b} (B); speed-up = A median / B median")
    for column in ("model", "batch", "A median ms", "B median ms", "B speed-up", "A img/s", "B img/s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    rows_b = {(r["model"], r["batch"]): r for r in b["model_only"]}
    keys = [(r["model"], r["batch"]) for r in a["model_only"]]
    keys += [k for k in rows_b if k not in keys]
    rows_a = {(r["model"], r["batch"]): r for r in a["model_only"]}
    for key in keys:
        ra, rb = rows_a.get(key), rows_b.get(key)
        med_a = ra["latency_ms"]["median"] if ra else None
        med_b = rb["latency_ms"]["median"] if rb else None
        speedup = med_a / med_b if med_a and med_b else None
        table.add_row(
            key[0], str(key[1]), _ms(med_a), _ms(med_b), _ratio(speedup),
            f"{ra['throughput_ips']:.1f}" if ra else "-", f"{rb['throughput_ips']:.1f}" if rb else "-",
        )
    return table


def compare_pipeline_table(a: dict, b: dict) -> Table | None:
    """End-to-end fps and median capture-to-result latency of matching pipeline runs, or None."""
    runs_a = {(r["model"], r["outputs"]): r for r in a.get("pipeline") or []}
    runs_b = {(r["model"], r["outputs"]): r for r in b.get("pipeline") or []}
    if not runs_a and not runs_b:
        return None
    table = _table("Pipeline: A vs B")
    for column in ("model", "outputs", "A fps", "B fps", "A latency p50", "B latency p50"):
        table.add_column(column, justify="left" if column in ("model", "outputs") else "right")
    for key in list(runs_a) + [k for k in runs_b if k not in runs_a]:
        ra, rb = runs_a.get(key), runs_b.get(key)
        table.add_row(
            *key,
            f"{ra['fps']:.1f}" if ra else "-", f"{rb['fps']:.1f}" if rb else "-",
            _ms(ra["capture_to_result_ms"].get("median")) if ra else "-",
            _ms(rb["capture_to_result_ms"].get("median")) if rb else "-",
        )
    return table


def _label(path: str | Path) -> str:
    """'runs/bench/cpu/bench.json' -> 'cpu'; 'x.json' -> 'x'."""
    path = Path(path)
    return path.parent.name if path.stem == "bench" and path.parent.name else path.stem


def print_compare(path_a: str | Path, path_b: str | Path, console: Console) -> tuple[dict, dict]:
    """Print two saved reports side by side (machines, then model-only and pipeline tables)."""
    a, b = load_report(path_a), load_report(path_b)
    for label, report in (("A", a), ("B", b)):
        console.print(f"{label}: {report.get('name', '?')} ({report.get('created', '?')})", highlight=False)
        console.print(f"   {describe_machine(report['machine'])}", highlight=False, soft_wrap=True)
        console.print(f"   {describe_versions(report['versions'])}", highlight=False, soft_wrap=True)
    console.print(compare_table(a, b, _label(path_a), _label(path_b)))
    pipeline = compare_pipeline_table(a, b)
    if pipeline is not None:
        console.print(pipeline)
    return a, b
