"""Shared data for the app tests: the tiny ONNX model and a small synthetic clip (tests/app/clips.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from clips import write_clip
from tiny_model import make_tiny_onnx


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("app-data")


@pytest.fixture(scope="session")
def tiny_onnx(data_dir) -> Path:
    return make_tiny_onnx(data_dir / "tiny.onnx", imgsz=(64, 96))


@pytest.fixture(scope="session")
def clip(data_dir) -> Path:
    return write_clip(data_dir / "clip.mp4")
