"""`roadsight demo`: end to end without torch, the cached synthetic clip, the shipped model and its errors."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch_free
from clips import CLIP_SIZE, count_frames, write_clip
from rich.console import Console

from app import demo, zoo
from app.pipeline import StreamSettings
from engines.errors import RoadsightError

ENV = {**os.environ, "COLUMNS": "200"}
SHIPPED = zoo.shipped_variants()
NEEDS_SHIPPED = pytest.mark.skipif(
    not {"int8-cpu", "fp32"} <= SHIPPED.keys(),
    reason="this install ships no trained model (app/models/roadsight-n.onnx and roadsight-n.int8-cpu.onnx are absent)",
)

def roadsight_demo(*args: str, cwd: Path, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        torch_free.cli("demo", *args),
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env or ENV,
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_demo_end_to_end_without_torch(tmp_path, tiny_onnx):
    clip = write_clip(tmp_path / "drive.mp4", frames=40)
    out = tmp_path / "out"
    result = roadsight_demo("--model", str(tiny_onnx), "--source", str(clip), "--out", str(out), "--runs", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert torch_free.NONE_LOADED in result.stdout
    files = {name: out / name for name in ("demo.mp4", "demo.jsonl", "demo.json", "bench.json")}
    assert all(path.is_file() for path in files.values()), sorted(p.name for p in out.iterdir())

    records = read_jsonl(files["demo.jsonl"])
    frames = count_frames(clip)
    assert frames == 40 and len(records) == frames == count_frames(files["demo.mp4"])
    assert [r["frame"] for r in records] == list(range(frames))
    width, height = CLIP_SIZE
    for i, record in enumerate(records):
        # the tiny model: drivable = green band (20 + i rows of the clip), lane = blue channel (the white
        # 40x40 square at x = 4i, y = 40), vehicles = cells of that square (red channel)
        # (within 8 frame rows: the network sees the frame at 0.3x, one network row is 3.3 frame rows)
        assert record["drivable_fraction"] == pytest.approx((20 + i) / height, abs=8 / height)
        assert record["lane_pixels"] == pytest.approx(40 * 40, rel=0.15)
        assert record["detections"], f"frame {i}: no detection"
        for det in record["detections"]:
            cx, cy = (det["box"]["x1"] + det["box"]["x2"]) / 2, (det["box"]["y1"] + det["box"]["y2"]) / 2
            assert 4 * i - 27 <= cx <= 4 * i + 67 and 13 <= cy <= 107, (i, det)

    growth = records[-1]["drivable_fraction"] - records[0]["drivable_fraction"]
    assert growth == pytest.approx((frames - 1) / height, abs=4 / height)  # the band grows one row per frame
    summary = json.loads(files["demo.json"].read_text())
    seen = summary["detected"]
    counts = [len(r["detections"]) for r in records]
    assert seen["frames"] == frames and seen["detections"] == sum(counts) and seen["max_detections"] == max(counts)
    assert seen["mean_drivable_fraction"] == pytest.approx(sum(r["drivable_fraction"] for r in records) / frames, abs=1e-4)
    assert summary["pipeline"]["frames"] == frames and summary["pipeline"]["fps"] > 0
    assert summary["shipped"] is False and summary["synthetic_clip"] is False and summary["files"]["clip"] is None

    bench = json.loads(files["bench.json"].read_text())
    assert [m["name"] for m in bench["models"]] == ["tiny.onnx"]  # no X.onnx beside an X.int8-*.onnx: timed alone
    assert bench["model_only"][0]["latency_ms"]["count"] == 5

    report = result.stdout
    assert "roadsight demo: tiny.onnx" in report and "fps over 40 frames" in report
    assert f"{seen['detections_per_frame']:.2f} vehicles/frame" in report and "lane pixels/frame" in report
    assert "model-only tiny.onnx (fp32" in report and "p99" in report  # OpenVINO adds ", runs <precision>"
    for name in ("demo.mp4", "demo.jsonl", "demo.json", "bench.json"):
        assert str(out / name) in report


def test_int8_model_is_timed_against_its_fp32_sibling(tmp_path, tiny_onnx, clip):
    models = tmp_path / "models"
    models.mkdir()
    fp32, int8 = models / "tiny.onnx", models / "tiny.int8-cpu.onnx"
    shutil.copy(tiny_onnx, fp32)
    shutil.copy(tiny_onnx, int8)  # same network under the INT8 name: only the pairing is under test
    assert demo.resolve_models(int8) == (int8, fp32)
    assert demo.resolve_models(fp32) == (fp32, None)

    report = Console(record=True, width=200)
    summary = demo.run(demo.DemoOptions(source=str(clip), model=int8, out=tmp_path / "out", runs=4,
                                        stream=StreamSettings(device="cpu")),
                       console=Console(stderr=True, quiet=True), out_console=report)
    timed = summary["model_only"]
    assert [t["model"] for t in timed] == ["tiny.onnx", "tiny.int8-cpu.onnx"]  # FP32 first: ratios are vs FP32
    bench = json.loads((tmp_path / "out" / "bench.json").read_text())
    medians = {r["model"]: r["latency_ms"]["median"] for r in bench["model_only"]}
    assert timed[1]["speedup_vs_first"] == pytest.approx(medians["tiny.onnx"] / medians["tiny.int8-cpu.onnx"], rel=1e-2)
    text = report.export_text()
    assert "tiny.int8-cpu.onnx is" in text and "4 interleaved runs" in text


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed (an x86-64 runtime dependency)")
def test_auto_device_runs_openvino_and_times_the_reference_on_onnx_runtime_too(tmp_path, tiny_onnx, clip):
    models = tmp_path / "models"
    models.mkdir()
    fp32, int8 = models / "tiny.onnx", models / "tiny.int8-trt.onnx"
    shutil.copy(tiny_onnx, fp32)
    shutil.copy(tiny_onnx, int8)
    report = Console(record=True, width=200)
    summary = demo.run(demo.DemoOptions(source=str(clip), model=int8, out=tmp_path / "out", runs=3),
                       console=Console(stderr=True, quiet=True), out_console=report)
    assert summary["device"] == "openvino"
    assert [t["model"] for t in summary["model_only"]] == [
        "tiny.onnx@cpu", "tiny.int8-trt.onnx@cpu", "tiny.onnx@openvino", "tiny.int8-trt.onnx@openvino"]
    assert summary["model_only"][2]["precision"].startswith("fp32, runs ")  # the precision OpenVINO actually ran
    text = report.export_text()
    assert "roadsight demo: tiny.int8-trt.onnx with OpenVINO" in text
    assert "tiny.int8-trt.onnx@openvino is" in text and "the speed of tiny.onnx@cpu" in text


def test_shipped_int8_model_follows_the_backend():
    assert demo.SHIPPED_INT8 == {"openvino": "int8-trt", "cpu": "int8-cpu"}
    if {"int8-trt", "int8-cpu"} <= SHIPPED.keys():
        assert demo.resolve_models(None, "openvino")[0] == SHIPPED["int8-trt"]
        assert demo.resolve_models(None, "cpu")[0] == SHIPPED["int8-cpu"]
    assert demo.resolve_device("cuda", None) == "cuda" and demo.resolve_device("auto", Path("m.engine")) == "auto"


def test_synthetic_clip_is_rendered_once_and_reused(tmp_path, tiny_onnx, monkeypatch):
    import model.synth_video

    small = {"frames": 6, "size": (320, 192)}
    real_clip = demo.demo_clip
    monkeypatch.setattr(demo, "demo_clip", lambda folder, console=None: real_clip(folder, console=console, **small))
    options = demo.DemoOptions(model=tiny_onnx, out=tmp_path / "out", runs=0)
    quiet = Console(stderr=True, quiet=True)
    first = demo.run(options, console=quiet, out_console=Console(quiet=True))
    clip = Path(first["files"]["clip"])
    assert first["synthetic_clip"] and clip.parent == options.out and count_frames(clip) == 6
    assert not list(options.out.glob("*.part.*")) and first["model_only"] == [] and not (options.out / "bench.json").exists()

    def no_render(*args, **kwargs):
        raise AssertionError("the cached clip was rendered again")

    monkeypatch.setattr(model.synth_video, "write_video", no_render)
    report = Console(record=True, width=200)
    second = demo.run(options, console=quiet, out_console=report)
    assert second["files"]["clip"] == str(clip) and second["detected"]["frames"] == 6
    assert len(read_jsonl(options.out / "demo.jsonl")) == 6 == count_frames(options.out / "demo.mp4")
    text = report.export_text()
    assert "synthetic clip" in text and "cached, reused next time" in text


def test_synthetic_clip_renders_without_torch(tmp_path):
    code = """
        from pathlib import Path
        from app import demo
        path, rendered = demo.demo_clip(Path(sys.argv[1]), frames=3, size=(320, 192))
        print(path, rendered, training_stack_loaded())
        """
    result = subprocess.run(torch_free.script(code, str(tmp_path)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    clip = tmp_path / "synthetic-drive-320x192-3f-seed0.mp4"
    assert result.stdout.split() == [str(clip), "True", "[]"] and count_frames(clip) == 3


def test_show_without_display_fails_before_rendering(tmp_path, tiny_onnx):
    env = {k: v for k, v in ENV.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = tmp_path / "out"
    result = roadsight_demo("--model", str(tiny_onnx), "--show", "--out", str(out), cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--show: no display" in errors[0] and "Drop --show" in errors[0]
    assert not list(out.glob("*.mp4"))  # nothing was rendered


def test_missing_model_and_unknown_variant_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(RoadsightError, match="unknown variant 'fp16'"):
        zoo.shipped_model("fp16")
    monkeypatch.setitem(zoo.VARIANTS, "int8-cpu", "no-such-model.int8-cpu.onnx")
    with pytest.raises(RoadsightError, match=r"^this install ships no trained model: .*no-such-model.* pass --model\.$"):
        zoo.shipped_model()
    with pytest.raises(RoadsightError, match="ships no trained model"):
        demo.resolve_models(None)
    with pytest.raises(RoadsightError, match="no such file"):
        demo.resolve_models(tmp_path / "missing.onnx")
    card = zoo.model_card()
    assert card is not None and "synthetic" in card.read_text() and "BDD100K" in card.read_text()


@pytest.mark.skipif("int8-cpu" in SHIPPED, reason="this checkout ships a trained model: the no-model error cannot occur")
def test_demo_without_a_shipped_model_asks_for_one(tmp_path):
    result = roadsight_demo("--out", str(tmp_path / "out"), cwd=tmp_path, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "ships no trained model" in errors[0] and "--model" in errors[0]


@NEEDS_SHIPPED
def test_demo_with_the_shipped_model(tmp_path):
    clip = write_clip(tmp_path / "drive.mp4", frames=12)
    out = tmp_path / "out"
    result = roadsight_demo("--source", str(clip), "--out", str(out), "--runs", "5", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    openvino = importlib.util.find_spec("openvino") is not None  # auto: OpenVINO runs the Q/DQ model, else ORT its u8 one
    name = "roadsight-n.int8-trt.onnx" if openvino else "roadsight-n.int8-cpu.onnx"
    assert torch_free.NONE_LOADED in result.stdout and f"roadsight demo: {name}" in result.stdout
    assert len(read_jsonl(out / "demo.jsonl")) == 12 == count_frames(out / "demo.mp4")
    bench = json.loads((out / "bench.json").read_text())
    expected = [("roadsight-n.onnx", "fp32"), (name, name.split(".")[1])]
    if openvino:
        expected = [(f"{n}@{device}", p) for device in ("cpu", "openvino") for n, p in expected]
    assert [(m["name"], m["precision"]) for m in bench["models"]] == expected
    assert "model card:" in result.stdout and f"{expected[-1][0]} is" in result.stdout
