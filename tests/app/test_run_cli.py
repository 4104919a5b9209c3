"""`roadsight run` as a user runs it: a subprocess, signals, one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch_free
from clips import count_frames, write_clip

from app.pipeline import StreamSettings
from app.run import RunOptions, run
from engines.errors import RoadsightError

ENV = {**os.environ, "COLUMNS": "120"}


def roadsight(*args: str) -> list[str]:
    """`roadsight run ARGS` with torch, torchvision and ultralytics unimportable: `run` must never need them."""
    return torch_free.cli("run", *args)


def wait_for_lines(path: Path, count: int, process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {count} lines in {path} (exit code {process.poll()})")


def test_ctrl_c_drains_and_closes_outputs(tmp_path, tiny_onnx):
    clip = write_clip(tmp_path / "long.avi", frames=300, fps=30.0)  # replayed live: 10 s unless stopped
    video, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    process = subprocess.Popen(
        roadsight("-m", str(tiny_onnx), "-s", str(clip), "--live", "--save", str(video), "--jsonl", str(jsonl)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )
    try:
        wait_for_lines(jsonl, 15, process)
        process.send_signal(signal.SIGINT)
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
        (lambda d, m, c: ["-m", m, "-s", str(d / "bad.mp4"), "-s", c, "--jsonl", str(d / "o.jsonl")], "1 of 2 sources failed"),
    ],
    ids=["missing-source", "corrupt-video"],
)
def test_errors_are_one_line_with_exit_code_1(tmp_path, tiny_onnx, clip, make_args, message):
    (tmp_path / "bad.mp4").write_bytes(os.urandom(5000))
    result = subprocess.run(
        roadsight(*make_args(tmp_path, str(tiny_onnx), str(clip))), capture_output=True, text=True, timeout=60, env=ENV
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and message in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"jsonl": "f.txt/o.jsonl"}, "cannot be written"),
        ({"save": "o.gif"}, "unsupported video type"),
        ({"dump_dir": "f.txt"}, "cannot be written"),
    ],
)
def test_bad_outputs_fail_before_starting(tmp_path, tiny_onnx, clip, outputs, message):
    (tmp_path / "f.txt").write_text("a file, not a folder")
    options = RunOptions(tiny_onnx, [str(clip)], **{k: tmp_path / v for k, v in outputs.items()})
    with pytest.raises(RoadsightError, match=message) as info:
        run(options)
    assert "\n" not in str(info.value)


def test_sigterm_drains_in_process(tmp_path, tiny_onnx):
    clip = write_clip(tmp_path / "long.avi", frames=300, fps=30.0)
    jsonl = tmp_path / "o.jsonl"
    options = RunOptions(tiny_onnx, [str(clip)], save=tmp_path / "o.mp4", jsonl=jsonl, stream=StreamSettings(live=True))
    sender = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    sender.start()
    started = time.monotonic()
    stats = run(options).sources[0]
    sender.join()
    assert time.monotonic() - started < 5 and stats.state == "stopped"
    lines = jsonl.read_text().splitlines()
    assert 0 < len(lines) == stats.processed and all(json.loads(line) for line in lines)
    assert count_frames(tmp_path / "o.mp4") > 0


def test_source_that_fails_at_open_is_one_error_and_leaves_no_output(tmp_path, tiny_onnx):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    jsonl = tmp_path / "out.jsonl"
    result = subprocess.run(roadsight("-m", str(tiny_onnx), "-s", str(bad), "--jsonl", str(jsonl)),
                            capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "cannot decode" in line]
    assert len(errors) == 1 and errors[0].startswith("error:"), result.stderr
    assert "p50" not in result.stderr and not jsonl.exists()  # no empty summary, no empty JSONL


def test_status_and_summary_tables_fit_80_columns():
    from rich.console import Console

    from app.run import status_table, summary_table
    from app.stats import RunStats, SourceStats

    sources = [SourceStats("rtsp://user:***@camera-front-left.example.net:554/stream1", live=True),
               SourceStats("drive.mp4", live=False)]
    for source in sources:
        source.state, source.captured, source.processed, source.dropped, source.reconnects = "reconnecting", 12345, 12000, 345, 12
        source.stage_ms["preprocessed"].append(1.5)
        for i in range(5):
            source.add_result({"captured": i, "preprocessed": i + 0.01, "inferred": i + 0.05, "postprocessed": i + 0.06, "written": i + 0.0999})
    stats = RunStats(sources)
    console = Console(width=80, record=True, color_system=None)
    console.print(status_table(stats))
    status = console.export_text().splitlines()
    assert len(status) == 3 and all(len(line) <= 80 for line in status)  # header + one unwrapped line per source
    assert status[1].startswith("rtsp://user:***@") and "reconnecting" in status[1] and "12005" in status[1]
    assert "rec ms" in status[0] and status[1].split()[-3] == "-"  # no recording: no recording lag
    console.print(summary_table(stats))
    assert all(len(line) <= 80 for line in console.export_text().splitlines())
