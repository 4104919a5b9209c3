"""The calibration cache reproduces the inference input bit for bit and refuses other models' sizes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from tiny_model import make_tiny_onnx

from calibration.cache import CalibCache, calibrate, read_meta
from engines.errors import RoadsightError
from engines.preprocess import letterbox


def test_cache_batches_equal_inference_preprocessing(tmp_path, image_dir):
    model = make_tiny_onnx(tmp_path / "m.onnx", imgsz=(64, 96))
    path, cache = calibrate(model, [str(image_dir)], n=5, out=tmp_path / "calib.npz", seed=0)
    loaded = CalibCache.load(path)
    assert loaded.images.dtype == np.uint8 and loaded.images.shape == (5, 64, 96, 3)
    assert loaded.frames == cache.frames and len(set(loaded.frames)) == 5
    originals = [cv2.imread(f) for f in loaded.frames]  # 128x72 frames: really letterboxed (scaled + padded)
    want, _ = letterbox(originals, (64, 96))
    got = loaded.array()
    assert got.dtype == np.float32 and got.shape == (5, 3, 64, 96)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.concatenate(list(loaded.batches(2))), want)


def test_cache_refuses_other_input_size(tmp_path, image_dir):
    model = make_tiny_onnx(tmp_path / "m.onnx", imgsz=(64, 96))
    path, _ = calibrate(model, [str(image_dir)], n=3, out=tmp_path / "c.npz")
    other = read_meta(make_tiny_onnx(tmp_path / "big.onnx", imgsz=(96, 128)))
    cache = CalibCache.load(path)
    cache.check_fits(read_meta(model))
    with pytest.raises(RoadsightError, match="128x96"):
        cache.check_fits(other)


def test_load_rejects_foreign_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(RoadsightError, match="not a roadsight calibration cache"):
        CalibCache.load(tmp_path / "x.npz")
    with pytest.raises(RoadsightError, match="does not exist"):
        CalibCache.load(tmp_path / "missing.npz")
