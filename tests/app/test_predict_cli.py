"""`roadsight predict` end to end through a subprocess, and the torch-free runtime."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch_free
from tiny_model import make_tiny_onnx


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for i in range(3):
        frame = np.full((128, 192, 3), 20, np.uint8)
        frame[32:64, 16 + 48 * i : 48 + 48 * i] = 255  # one white square, moving right
        cv2.imwrite(str(folder / f"frame{i}.png"), frame)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")


def test_predict_folder_writes_annotated_images_and_json(images, model, tmp_path):
    out = tmp_path / "pred"
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "predict", "--model", str(model), "--source", str(images), "--save-dir", str(out), "--conf", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "3 images" in run.stdout and str(out) in run.stdout.replace("\n", "")
    assert sorted(p.name for p in out.iterdir()) == [f"frame{i}.{ext}" for i in range(3) for ext in ("json", "png")]
    for i in range(3):
        record = json.loads((out / f"frame{i}.json").read_text())
        assert record["frame"] == i and record["size"] == [128, 192] and record["source"].endswith(f"frame{i}.png")
        boxes = np.array([[d["box"][k] for k in ("x1", "y1", "x2", "y2")] for d in record["detections"]])
        # the white square (frame px x 16+48i..48+48i, y 32..64) covers four 16x16 cells in full
        assert len(boxes) == 4 and boxes[:, 0].min() == pytest.approx(8 + 48 * i) and boxes[:, 2].max() == pytest.approx(56 + 48 * i)
        annotated = cv2.imread(str(out / f"frame{i}.png"))
        original = cv2.imread(str(images / f"frame{i}.png"))
        assert annotated.shape == original.shape and (annotated != original).any()


def test_predict_on_missing_source_is_one_line(model, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "predict", "--model", str(model), "--source", str(tmp_path / "nothing*.jpg")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1 and "no images found" in run.stderr and "Traceback" not in run.stderr


def test_predict_with_onnx_never_imports_torch(images, model, tmp_path):
    run = subprocess.run(
        torch_free.cli("predict", "--model", str(model), "--source", str(images), "--save-dir", str(tmp_path / "out")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert torch_free.NONE_LOADED in run.stdout and len(list((tmp_path / "out").glob("*.json"))) == 3


def test_predict_refuses_a_video_and_names_run(model, tmp_path):
    from clips import write_clip

    from app.predict import run_predict
    from engines.errors import RoadsightError

    clip = write_clip(tmp_path / "clip.avi", frames=2)
    with pytest.raises(RoadsightError, match="Use `roadsight run` for videos"):
        run_predict(model, str(clip), tmp_path / "out")
