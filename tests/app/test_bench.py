"""`roadsight bench`: interleaved model-only timing of two tiny ONNX models, JSON/PNG, --compare."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_model import make_tiny_onnx
from typer.testing import CliRunner

from app import bench, benchplot, stats
from app.benchreport import load_report
from engines.errors import RoadsightError


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("models")
    return [
        make_tiny_onnx(folder / "small.onnx", imgsz=(64, 96), batch=None),
        make_tiny_onnx(folder / "large.onnx", imgsz=(128, 192), batch=1),
    ]


@pytest.fixture(scope="module")
def cli():
    from app.cli import _register_all, app

    _register_all()
    return app


class FakeEngine:
    """Records the order of infer calls; optionally reports TensorRT-like device timings."""

    backend = "fake"

    def __init__(self, name: str, calls: list, batch: int | None = None, device: dict | None = None):
        from engines.base import TensorSpec
        from engines.meta import ModelMeta

        self.name, self.calls, self.path = name, calls, Path(f"{name}.fake")
        self.meta = ModelMeta(imgsz=(32, 32))
        self.inputs = [TensorSpec("images", np.float32, (batch, 3, 32, 32))]
        self.max_batch = batch
        self.last_timing = {}
        self.device = device or {}

    def infer(self, feed):
        self.calls.append((self.name, len(feed["images"])))
        self.last_timing = {"infer": 1.0, **self.device}
        return {}


def test_summarize_matches_numpy():
    values = np.arange(1, 101, dtype=float)
    out = stats.describe(values)
    assert (out["min"], out["max"], out["median"], out["mean"], out["count"]) == (1, 100, 50.5, 50.5, 100)
    assert out["p90"] == pytest.approx(90.1) and out["p99"] == pytest.approx(99.01)
    assert out["cv_percent"] == pytest.approx(100 * values.std() / values.mean(), abs=1e-3)


def test_round_robin_order_and_device_stages():
    calls: list = []
    a = FakeEngine("A", calls)
    b = FakeEngine("B", calls, batch=1, device={"h2d": 0.5, "compute": 2.0, "d2h": 0.25})
    configs, skipped = bench.make_configs([("A", a), ("B", b)], [1, 2])
    assert [(c.model, c.batch) for c in configs] == [("A", 1), ("A", 2), ("B", 1)]
    assert skipped == ["B: batch 2 skipped (fixed batch 1)"]
    bench.interleave(configs, runs=3, warmup=1)
    timed = calls[3:]  # after one warm-up round
    assert timed == [("A", 1), ("A", 2), ("B", 1), ("A", 2), ("B", 1), ("A", 1), ("B", 1), ("A", 1), ("A", 2)]
    results = [c.result() for c in configs]
    assert all(r["latency_ms"]["count"] == 3 and len(r["samples_ms"]) == 3 for r in results)
    assert results[0]["device_ms"] == {}
    assert results[2]["device_ms"]["compute"]["median"] == 2.0 and results[2]["device_ms"]["d2h"]["max"] == 0.25


def test_ratios_against_first_model():
    def result(model, batch, median, throughput):
        return {"model": model, "batch": batch, "latency_ms": {"median": median}, "throughput_ips": throughput}

    results = [result("fp32", 1, 10.0, 100.0), result("int8", 1, 4.0, 250.0), result("int8", 8, 20.0, 400.0)]
    bench.add_ratios(results, "fp32")
    assert results[0]["vs_first"] == {"speedup": 1.0, "throughput": 1.0}
    assert results[1]["vs_first"] == {"speedup": 2.5, "throughput": 2.5}
    assert results[2]["vs_first"] is None  # the first model has no batch-8 run


def test_warnings_like_trtexec():
    def result(cv, median, **device):
        device_ms = {k: {"median": v} for k, v in device.items()}
        return {"model": "m", "batch": 1, "latency_ms": {"cv_percent": cv, "median": median}, "device_ms": device_ms}

    assert bench.warnings([result(2.0, 1.0, h2d=0.1, compute=0.8, d2h=0.1)]) == []
    notes = bench.warnings([result(25.0, 1.0), result(1.0, 1.0, h2d=0.5, compute=0.4, d2h=0.1)])
    assert len(notes) == 3 and "CV 25%" in notes[0] and "transfer-bound" in notes[1] and "host-bound" in notes[2]


def test_no_common_batch_is_one_line_error():
    engine = FakeEngine("A", [], batch=1)
    with pytest.raises(RoadsightError, match="no engine takes any of the batch sizes"):
        bench.make_configs([("A", engine)], [4])
    with pytest.raises(RoadsightError, match="--batch"):
        bench.parse_batches("1,x")


def test_bench_two_onnx_models_json_png_compare(models, cli, tmp_path):
    out = tmp_path / "run1"
    args = ["bench", "-m", str(models[0]), "-m", str(models[1]), "--batch", "1,2", "--runs", "8",
            "--warmup", "2", "--threads", "1", "--device", "cpu", "--out", str(out)]
    result = CliRunner(env={"COLUMNS": "160"}).invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    assert [(r["model"], r["batch"]) for r in report["model_only"]] == [("small.onnx", 1), ("small.onnx", 2), ("large.onnx", 1)]
    assert report["notes"][0] == "large.onnx: batch 2 skipped (fixed batch 1)"
    for r in report["model_only"]:
        samples = np.array(r["samples_ms"])
        assert len(samples) == 8 and r["latency_ms"]["median"] == pytest.approx(np.median(samples), abs=1e-3)
        assert r["throughput_ips"] == pytest.approx(r["batch"] * 1e3 / samples.mean(), rel=1e-2)
    large = report["model_only"][2]
    assert large["vs_first"]["speedup"] == pytest.approx(
        report["model_only"][0]["latency_ms"]["median"] / large["latency_ms"]["median"], rel=1e-2)
    described = {m["name"]: m for m in report["models"]}
    assert described["small.onnx"]["precision"] == "fp32" and described["small.onnx"]["batch"] == "dynamic"
    assert described["large.onnx"]["imgsz"] == "192x128" and described["large.onnx"]["threads"] == 1
    assert report["machine"]["cores"] >= 1 and report["versions"]["onnxruntime"]
    assert "NMS" in report["includes"]["model_only"]
    assert "small.onnx" in result.output and "speed-up" in result.output and "onnxruntime" in result.output
    png = cv2.imread(str(out / "bench.png"))
    assert png is not None and png.shape[0] > 200 and png.shape[1] > 600

    second = tmp_path / "run2"
    (second).mkdir()
    changed = json.loads((out / "bench.json").read_text())
    for r in changed["model_only"]:
        r["latency_ms"]["median"] /= 2
    (second / "bench.json").write_text(json.dumps(changed))
    compared = CliRunner().invoke(cli, ["bench", "--compare", str(out / "bench.json"), str(second / "bench.json")],
                                  terminal_width=160)
    assert compared.exit_code == 0, compared.output
    assert "run1 (A) vs run2 (B)" in compared.output and compared.output.count("2.00x") == 3


def test_compare_rejects_other_json(tmp_path):
    other = tmp_path / "x.json"
    other.write_text('{"a": 1}')
    with pytest.raises(RoadsightError, match="not a bench report"):
        load_report(other)


def test_png_skipped_without_matplotlib(models, tmp_path, monkeypatch):
    monkeypatch.setattr(benchplot.importlib.util, "find_spec", lambda name: None)
    opened = bench.open_engines([models[0]], "cpu", 1)
    try:
        results, _ = bench.model_only(opened, [1], runs=2, warmup=0)
    finally:
        opened[0][1].close()
    report = {"model_only": results, "machine": {}, "name": "x"}
    json_path, png_path, reason = bench.save(report, tmp_path / "out")
    assert json_path.is_file() and png_path is None and not (tmp_path / "out" / "bench.png").exists()
    assert reason.startswith("PNG skipped: matplotlib is not installed")


def test_pipeline_mode_per_stage(models, cli, tmp_path):
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for i in range(15):
        frame = np.full((64, 96, 3), 40, np.uint8)
        frame[:, :50, 1] = 220
        frame[8:24, 8 + i : 32 + i] = 255
        writer.write(frame)
    writer.release()
    out = tmp_path / "bench"
    args = ["bench", "-m", str(models[0]), "-m", str(models[1]), "--runs", "5", "--warmup", "1",
            "--source", str(clip), "--frames", "10", "--device", "cpu", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    runs = report["pipeline"]
    assert [(r["model"], r["outputs"]) for r in runs] == [
        ("small.onnx", "jsonl"), ("small.onnx", "draw+video+jsonl"), ("large.onnx", "jsonl"), ("large.onnx", "draw+video+jsonl")]
    model_only = {r["model"]: r for r in report["model_only"]}
    for run in runs:
        assert run["frames"] == 10 and run["state"] == "ended" and not run["error"] and run["frame_size"] == "96x64"
        assert set(run["work_ms"]) == {"decode", "preprocess", "infer", "postprocess", "track", "lanes", "ego", "sinks"}
        assert all(ms > 0 for ms in run["work_ms"].values())
        assert run["pre_post_ms"] == pytest.approx(run["work_ms"]["preprocess"] + run["work_ms"]["postprocess"], abs=2e-3)
        assert run["capture_to_result_ms"]["count"] == run["decode_ms"]["count"] == 10
        assert run["capture_to_result_ms"]["median"] >= run["stage_latency_ms"]["inferred"]["median"]
        reference = model_only[run["model"]]["throughput_ips"]
        assert run["model_only_ips"] == reference and run["fps_vs_model_only"] == pytest.approx(run["fps"] / reference, abs=1e-4)
    assert "vs model" in result.output and "draw+video+jsonl" in result.output and "truncated" not in result.output
    assert cv2.imread(str(out / "bench.png")) is not None
    drawn = report["draw_encode"]
    assert drawn["frames"] == 10 and drawn["frame_size"] == "96x64" and drawn["reference_model"] == "small.onnx"
    assert all(drawn[stage]["count"] == 10 and drawn[stage]["median"] > 0 for stage in ("draw", "encode", "draw_encode"))
    assert drawn["vs_model_only"] == pytest.approx(
        drawn["draw_encode"]["median"] / model_only["small.onnx"]["latency_ms"]["median"], rel=1e-3)
    assert "Draw + encode per 96x64 frame" in result.output


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed (an x86-64 runtime dependency)")
def test_every_model_on_every_device_with_the_precision_run(models, cli, tmp_path):
    out = tmp_path / "devices"
    args = ["bench", "-m", str(models[0]), "--runs", "3", "--warmup", "1", "--threads", "1",
            "--device", "cpu,openvino", "--precision", "f32", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    described = {m["name"]: m for m in report["models"]}
    assert [r["model"] for r in report["model_only"]] == ["small.onnx@cpu", "small.onnx@openvino"]
    assert described["small.onnx@cpu"]["backend"] == "onnxruntime" and described["small.onnx@cpu"]["runtime_precision"] is None
    ov = described["small.onnx@openvino"]
    assert (ov["backend"], ov["device"], ov["precision_hint"], ov["runtime_precision"]) == ("openvino", "openvino:CPU", "f32", "f32")
    assert "small.onnx@cpu: onnxruntime cpu, fp32 model, input" in result.output
    assert "small.onnx@openvino: openvino CPU, fp32 model, runs f32" in result.output


def test_auto_device_is_the_fastest_installed_cpu_backend(monkeypatch):
    import engines
    from engines import openvino

    monkeypatch.setattr(openvino, "openvino_available", lambda: False)
    assert engines.fastest_cpu_device() == "cpu"
    monkeypatch.setattr(openvino, "openvino_available", lambda: True)
    assert engines.fastest_cpu_device() == "openvino"
    assert bench.parse_devices(" cpu, openvino,cpu") == ["cpu", "openvino"] and bench.parse_devices("") == ["auto"]
