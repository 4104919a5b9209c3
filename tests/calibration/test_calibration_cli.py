"""The calibrate / quantize / outliers commands end to end on tiny models and files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import typer
from onnx import numpy_helper
from tiny_model import make_tiny_onnx
from typer.testing import CliRunner

from calibration import cli
from calibration.cache import CalibCache
from engines.errors import RoadsightError


def _app() -> typer.Typer:
    app = typer.Typer()
    cli.register(app)
    return app


def test_calibrate_writes_cache_and_refuses_nothing(tmp_path, image_dir):
    model = make_tiny_onnx(tmp_path / "m.onnx", imgsz=(64, 96))
    out = tmp_path / "calib.npz"
    runner = CliRunner()
    result = runner.invoke(_app(), ["calibrate", "-m", str(model), "-s", str(image_dir), "--n", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    cache = CalibCache.load(out)
    assert len(cache) == 4 and cache.images.shape[1:3] == (64, 96)
    assert "4 frames at 96x64" in " ".join(result.output.split())  # rich wraps at the terminal's width
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(_app(), ["calibrate", "-m", str(model), "-s", str(empty), "-o", str(tmp_path / "x.npz")])
    assert isinstance(result.exception, RoadsightError) and "no frames found" in str(result.exception)
    assert not (tmp_path / "x.npz").exists()


def test_quantize_and_outliers_commands(tiny_roadnet, image_dir, tmp_path):
    weights, model = tiny_roadnet
    calib = tmp_path / "calib.npz"
    runner = CliRunner()
    assert runner.invoke(_app(), ["calibrate", "-m", str(model), "-s", str(image_dir), "--n", "6", "-o", str(calib)]).exit_code == 0
    out = tmp_path / "q.onnx"
    result = runner.invoke(_app(), ["quantize", "-m", str(model), "-c", str(calib), "-t", "trt", "--backend", "ort", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(result.output[result.output.index("{") :])
    assert report["quantize"]["backend"] == "ort" and report["quantize"]["summary"]["int8 Conv"] > 40
    assert out.is_file()
    png = tmp_path / "o.png"
    result = runner.invoke(_app(), ["outliers", "-w", str(weights), "-d", str(image_dir), "--n", "3", "--json", "--plot", str(png)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    stats = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert stats["frames"] == 3 and "head 1" in stats["stats"] and png.is_file()


def _bdd(root, n: int = 4):
    """A BDD-layout val split the tiny model reads perfectly (white cell = vehicle, G = drivable, B = lane)."""
    for sub in ("images", "det_annotations", "da_seg_annotations", "ll_seg_annotations"):
        (root / sub / "val").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        image = cv2.GaussianBlur(rng.integers(0, 80, (64, 96, 3), dtype=np.uint8), (9, 9), 3)
        image[40:, :, 1] = 178  # drivable at G = 0.7
        image[:, 8 + 8 * i : 12 + 8 * i, 0] = 255  # lane column (blue)
        cx, cy = 2 + i, 2
        image[cy * 8 : cy * 8 + 8, cx * 8 : cx * 8 + 8] = 255
        cv2.imwrite(str(root / "images/val" / f"f{i}.png"), image)
        x, y = cx * 8 + 4, cy * 8 + 4
        objects = [{"category": "car", "box2d": {"x1": x - 8, "y1": y - 8, "x2": x + 8, "y2": y + 8}}]
        (root / "det_annotations/val" / f"f{i}.json").write_text(json.dumps({"name": f"f{i}", "frames": [{"objects": objects}]}))
        cv2.imwrite(str(root / "da_seg_annotations/val" / f"f{i}.png"), (image[:, :, 1] > 127).astype(np.uint8) * 255)
        cv2.imwrite(str(root / "ll_seg_annotations/val" / f"f{i}.png"), (image[:, :, 0] > 127).astype(np.uint8) * 255)
    return root


def test_quantize_gate_exit_codes(tmp_path):
    """--val/--max-drop: a sane quantization passes; a negative max drop fails with the table and exit 1."""
    data = _bdd(tmp_path / "data")
    model = make_tiny_onnx(tmp_path / "m.onnx", imgsz=(64, 96))
    calib = tmp_path / "c.npz"
    runner = CliRunner()
    assert runner.invoke(_app(), ["calibrate", "-m", str(model), "-s", str(data / "images"), "-o", str(calib)]).exit_code == 0
    args = ["quantize", "-m", str(model), "-c", str(calib), "-t", "cpu", "--val", str(data)]
    ok = runner.invoke(_app(), [*args, "--max-drop", "1"])
    assert ok.exit_code == 0, ok.output + repr(ok.exception)
    assert "drivable mIoU" in ok.output and "FAIL" not in ok.output
    bad = runner.invoke(_app(), [*args, "--max-drop", "-1"])
    assert isinstance(bad.exception, RoadsightError) and "accuracy gate failed" in str(bad.exception)
    assert "FAIL" in bad.output


def test_gate_catches_broken_quantization_through_cli(tmp_path, monkeypatch):
    """A quantizer that breaks the model (seg threshold moved) is caught by the gate, not shipped silently."""
    from calibration import quantize as quantize_module

    data = _bdd(tmp_path / "data")
    model = make_tiny_onnx(tmp_path / "m.onnx", imgsz=(64, 96))
    calib = tmp_path / "c.npz"
    runner = CliRunner()
    assert runner.invoke(_app(), ["calibrate", "-m", str(model), "-s", str(data / "images"), "-o", str(calib)]).exit_code == 0
    real = quantize_module._ort_quantize

    def broken(src, out, *args):
        real(src, out, *args)
        proto = onnx.load(str(out))
        for node in proto.graph.node:
            if node.op_type == "Constant" and node.output[0] == "seg_offset":
                node.attribute[0].t.CopyFrom(numpy_helper.from_array(np.array(0.8, np.float32), "seg_offset"))
        onnx.save(proto, str(out))

    monkeypatch.setattr(quantize_module, "_ort_quantize", broken)
    bad = runner.invoke(_app(), ["quantize", "-m", str(model), "-c", str(calib), "-t", "cpu", "--val", str(data), "--max-drop", "2"])
    assert isinstance(bad.exception, RoadsightError) and "drivable_miou" in str(bad.exception)
