"""`roadsight run` as a user runs it: a subprocess, signals, one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import count_frames, write_clip

ENV = {**os.environ, "COLUMNS": "120"}


def roadsight(*args: str) -> list[str]:
    return [sys.executable, "-c", "from app.cli import main; main()", "run", *args]


def wait_for_lines(path: Path, count: int, process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {count} lines in {path} (exit code {process.poll()})")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_drains_and_closes_outputs(tmp_path, tiny_onnx, signum):
    clip = write_clip(tmp_path / "long.avi", frames=300, fps=30.0)  # replayed live: 10 s unless stopped
    video, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    process = subprocess.Popen(
        roadsight("-m", str(tiny_onnx), "-s", str(clip), "--live", "--save", str(video), "--jsonl", str(jsonl)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )
    try:
        wait_for_lines(jsonl, 15, process)
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "stopping" in err
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]  # every line is complete JSON
    assert 15 <= len(lines) < 300
    frames = [line["frame"] for line in lines]
    assert frames == sorted(set(frames))
    # The video is finalised and real-timed at the clip's 30 fps: one frame per captured frame interval.
    assert abs(count_frames(video) - (frames[-1] - frames[0] + 1)) <= 3


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d, m, c: ["-m", m, "-s", str(d / "missing.mp4")], "no such file"),
        (lambda d, m, c: ["-m", m, "-s", c, "--jsonl", str(d / "f.txt" / "o.jsonl")], "cannot be written"),
        (lambda d, m, c: ["-m", m, "-s", str(d / "bad.mp4")], "cannot decode"),
        (lambda d, m, c: ["-m", m, "-s", c, "--save", str(d / "o.gif")], "unsupported video type"),
    ],
    ids=["missing-source", "unwritable-output", "corrupt-video", "video-type"],
)
def test_errors_are_one_line_with_exit_code_1(tmp_path, tiny_onnx, clip, make_args, message):
    (tmp_path / "f.txt").write_text("a file, not a folder")
    (tmp_path / "bad.mp4").write_bytes(os.urandom(5000))
    result = subprocess.run(
        roadsight(*make_args(tmp_path, str(tiny_onnx), str(clip))), capture_output=True, text=True, timeout=60, env=ENV
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and message in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1


def test_runs_without_torch(tmp_path, tiny_onnx, clip):
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['ultralytics'] = None\n"
        "from app.cli import main; main()"
    )
    jsonl = tmp_path / "o.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", code, "run", "-m", str(tiny_onnx), "-s", str(clip), "--jsonl", str(jsonl)],
        capture_output=True, text=True, timeout=60, env=ENV,
    )
    assert result.returncode == 0, result.stderr
    assert len(jsonl.read_text().splitlines()) == 60 and "pipeline" in result.stderr
