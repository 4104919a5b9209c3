"""Test-wide settings: ultralytics stays offline and writes nothing to $HOME; a fixed terminal width."""

import os
import tempfile

import pytest

os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_AUTOINSTALL"] = "false"
os.environ["YOLO_VERBOSE"] = "false"
os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="roadsight-test-ultralytics-")


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """rich wraps its output at the terminal's width (80 without one): every test, and every command it starts,
    sees a 200-column terminal, so no assertion depends on where the suite runs. Tests of narrow output set
    their own width."""
    monkeypatch.setenv("COLUMNS", "200")
