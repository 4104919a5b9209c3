"""Accuracy gate: evaluate FP32 and INT8 on the same labelled set and fail if a task drops too much.

Both models run through `engines.load` + `engines.Predictor` and `model.evaluate.evaluate` (ONNX
Runtime on the CPU executes the Q/DQ graph with INT8 rounding, so the trt graph is scored too).
Headline metrics: detection mAP50, drivable mIoU, lane IoU, in percentage points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

METRICS = (("map50", "detection mAP50"), ("drivable_miou", "drivable mIoU"), ("lane_iou", "lane IoU"))


@dataclass
class GateResult:
    """Per metric (FP32 %, INT8 %, drop in points); passed = every drop <= max_drop."""

    max_drop: float
    rows: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    fp32: dict = field(default_factory=dict)
    int8: dict = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        return [k for k, (_, _, drop) in self.rows.items() if drop > self.max_drop]

    @property
    def passed(self) -> bool:
        return not self.failures

    def table(self, title: str = "INT8 accuracy gate") -> Table:
        table = Table(title=f"{title} (max drop {self.max_drop:g} points)")
        for column in ("metric", "FP32 %", "INT8 %", "drop (points)", ""):
            table.add_column(column, justify="left" if column == "metric" else "right")
        labels = dict(METRICS)
        for key, (a, b, drop) in self.rows.items():
            verdict = "[red]FAIL[/red]" if drop > self.max_drop else "[green]ok[/green]"
            table.add_row(labels[key], f"{a:.2f}", f"{b:.2f}", f"{drop:+.2f}", verdict)
        return table

    def to_json(self) -> dict:
        return {"max_drop": self.max_drop, "passed": self.passed, "failures": self.failures,
                "rows": {k: {"fp32": a, "int8": b, "drop": d} for k, (a, b, d) in self.rows.items()}}


def score(model: str | Path, dataset, limit: int | None = None, progress: bool = False) -> dict:
    """evaluate() of one model file through the engines (CPU), with the protocol's NMS settings."""
    import engines
    from model.evaluate import EVAL_CONF, EVAL_IOU, evaluate

    with engines.load(model) as engine:
        return evaluate(engines.Predictor(engine, conf=EVAL_CONF, iou=EVAL_IOU), dataset, limit=limit, progress=progress)


def compare(fp32: dict, int8: dict, max_drop: float) -> GateResult:
    """Gate two evaluate() results: drop = (FP32 - INT8) * 100 for each metric both have."""
    result = GateResult(max_drop, fp32=fp32, int8=int8)
    for key, _ in METRICS:
        if fp32.get(key) is not None and int8.get(key) is not None:
            a, b = 100 * fp32[key], 100 * int8[key]
            result.rows[key] = (a, b, a - b)
    return result


def gate(fp32_model: str | Path, int8_model: str | Path, dataset, max_drop: float, limit: int | None = None,
         progress: bool = False) -> GateResult:
    """Evaluate both models on `dataset` and compare; see GateResult.passed."""
    return compare(score(fp32_model, dataset, limit, progress), score(int8_model, dataset, limit, progress), max_drop)
