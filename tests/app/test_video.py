"""`roadsight video`: a folder of tiny clips with a corrupt one, resume after interruption, workers."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_model import make_tiny_onnx
from typer.testing import CliRunner

from app import video
from app.videojobs import collect_inputs, output_stems

H, W, FRAMES = 64, 96, 12


def write_clip(path: Path, seed: int, frames: int = FRAMES) -> Path:
    """A clip whose green channel is bright on the left `seed`-dependent share (drivable for the tiny model)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    split = 24 + 16 * seed
    for i in range(frames):
        frame = np.full((H, W, 3), 40, np.uint8)
        frame[:, :split, 1] = 220
        frame[8:24, 8 + i : 32 + i] = 255  # white block: detections on the tiny model
        writer.write(frame)
    writer.release()
    return path


def read_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def read_csv(path: Path) -> dict[str, dict]:
    with open(path) as handle:
        return {Path(row["file"]).name: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx", imgsz=(H, W))


@pytest.fixture
def clips(tmp_path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    for seed in range(3):
        write_clip(folder / f"clip{seed}.mp4", seed)
    (folder / "corrupt.mp4").write_bytes(os.urandom(3000))
    (folder / "notes.txt.bak").write_text("not a video")
    return folder


def test_folder_with_corrupt_file(model, clips, tmp_path):
    from app.cli import _register_all, app

    _register_all()
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["video", str(clips), "--model", str(model), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 1, result.output  # one file failed
    assert "corrupt.mp4" in result.output and "3 of 4 files ok" in result.output
    rows = read_csv(out / "summary.csv")
    assert set(rows) == {"clip0.mp4", "clip1.mp4", "clip2.mp4", "corrupt.mp4"}
    assert rows["corrupt.mp4"]["status"] == "error" and "cannot decode" in rows["corrupt.mp4"]["error"]
    assert not list(out.glob("corrupt*")) and not list(out.glob("*.part.*"))
    for seed in range(3):
        name = f"clip{seed}"
        row, decoded = rows[f"{name}.mp4"], read_frames(clips / f"{name}.mp4")
        records = [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
        assert row["status"] == "ok" and int(row["frames"]) == len(decoded) == len(records) == FRAMES
        assert [r["frame"] for r in records] == list(range(FRAMES))
        assert int(row["detections"]) == sum(len(r["detections"]) for r in records) > 0
        # the tiny model's drivable mask is green > 127.5 at frame size (frame size == input size here)
        expected = np.mean([(frame[:, :, 1] > 127.5).mean() for frame in decoded])
        assert float(row["mean_drivable_fraction"]) == pytest.approx(expected, abs=2e-4)
        annotated = read_frames(out / f"{name}.mp4")
        assert len(annotated) == FRAMES and annotated[0].shape == (H, W, 3)
    fractions = [float(rows[f"clip{s}.mp4"]["mean_drivable_fraction"]) for s in range(3)]
    assert fractions == sorted(fractions) and fractions[0] < fractions[2]  # the green share grows with seed


def test_resume_skips_finished_and_redoes_partial(model, clips, tmp_path):
    (clips / "corrupt.mp4").unlink()
    out = tmp_path / "out"
    video.run([str(clips)], str(model), out, workers=1)
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("clip[01].*")}
    # simulate a run killed while writing clip2: only partial outputs, no completion record
    for kind in ("mp4", "jsonl"):
        os.replace(out / f"clip2.{kind}", out / f"clip2.part.{kind}")
    (out / ".done" / "clip2.json").unlink()
    (out / "clip2.part.jsonl").write_text('{"frame": 0}\n')  # truncated
    time.sleep(0.01)
    rows = {Path(r.file).name: r for r in video.run([str(clips)], str(model), out, workers=1)}
    assert rows["clip0.mp4"].status == rows["clip1.mp4"].status == "skipped"
    assert rows["clip2.mp4"].status == "ok" and rows["clip2.mp4"].frames == FRAMES
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("clip[01].*")} == finished
    assert len((out / "clip2.jsonl").read_text().splitlines()) == FRAMES
    assert not list(out.glob("*.part.*"))
    # asking for an output a finished file lacks redoes it
    (out / "clip0.mp4").unlink()
    rows = {Path(r.file).name: r for r in video.run([str(clips)], str(model), out, workers=1)}
    assert rows["clip0.mp4"].status == "ok" and (out / "clip0.mp4").is_file()
    assert read_csv(out / "summary.csv")["clip1.mp4"]["status"] == "skipped"


def test_killed_subprocess_resumes(model, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for seed in range(6):
        write_clip(clips / f"c{seed}.mp4", seed % 3, frames=90)
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from app.cli import main; main()", "video", str(clips),
               "--model", str(model), "--out", str(out), "--workers", "1", "--no-video"]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 30
    while not list((out / ".done").glob("*.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {p.stem: (out / f"{p.stem}.jsonl").stat().st_mtime_ns for p in (out / ".done").glob("*.json")}
    assert before, f"the first file never finished (exit {process.returncode}): {log.read_text()[-500:]}"
    assert len(before) < 6, "killed too late to interrupt anything"
    rows = {Path(r.file).stem: r for r in video.run([str(clips)], str(model), out, video=False, workers=1)}
    assert {stem for stem, row in rows.items() if row.status == "skipped"} == set(before)
    assert all(row.status in ("ok", "skipped") and row.frames == 90 for row in rows.values())
    assert {stem: (out / f"{stem}.jsonl").stat().st_mtime_ns for stem in before} == before
    assert not list(out.glob("*.part.*")) and not list(out.glob("*.mp4"))
    assert all(len((out / f"c{s}.jsonl").read_text().splitlines()) == 90 for s in range(6))


def test_two_worker_processes_match_one(model, clips, tmp_path):
    (clips / "corrupt.mp4").unlink()
    one, two = tmp_path / "one", tmp_path / "two"
    video.run([str(clips)], str(model), one, video=False, workers=1)
    rows = video.run([str(clips / "*.mp4")], str(model), two, video=False, workers=2, threads=1)
    assert [r.status for r in rows] == ["ok"] * 3
    for seed in range(3):
        strip = [{k: v for k, v in json.loads(line).items() if k != "latency_ms"}
                 for line in (two / f"clip{seed}.jsonl").read_text().splitlines()]
        same = [{k: v for k, v in json.loads(line).items() if k != "latency_ms"}
                for line in (one / f"clip{seed}.jsonl").read_text().splitlines()]
        assert strip == same


def test_plan_slots(monkeypatch):
    import app.sysinfo

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert video.plan_slots("m.onnx", "cpu", None, files=10) == [video.Slot("cpu", 2)] * 4
    assert video.plan_slots("m.onnx", "cpu", 2, files=10) == [video.Slot("cpu", 4)] * 2
    assert video.plan_slots("m.onnx", "cpu", 4, files=1) == [video.Slot("cpu", 8)]
    assert video.plan_slots("m.onnx", "openvino", 2, files=10) == [video.Slot("openvino", 4)] * 2
    monkeypatch.setattr(app.sysinfo, "gpus", lambda: [{"name": "A"}, {"name": "B"}])
    slots = video.plan_slots("m.engine", "cpu", None, files=5)
    assert [s.device for s in slots] == ["cuda:0", "cuda:1"]
    assert [s.device for s in video.plan_slots("m.onnx", "cuda:1", 4, files=5)] == ["cuda:1"]
    assert [s.device for s in video.plan_slots("m.onnx", "tensorrt", 1, files=5)] == ["tensorrt:0"]
    assert [s.device for s in video.plan_slots("m.engine", "tensorrt:1", None, files=5)] == ["cuda:1"]


def test_inputs_globs_lists_and_name_clashes(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_clip(tmp_path / folder / "drive.mp4", 0, frames=2)
    listing = tmp_path / "list.txt"
    listing.write_text("a/drive.mp4\n# comment\nb/drive.mp4\n")
    paths = collect_inputs([str(listing), str(tmp_path / "*" / "drive.mp4")])
    assert paths == [(tmp_path / "a" / "drive.mp4").resolve(), (tmp_path / "b" / "drive.mp4").resolve()]
    stems = output_stems(paths)
    assert len(set(stems)) == 2 and all(s.endswith("drive") for s in stems)
    from engines.errors import RoadsightError

    with pytest.raises(RoadsightError, match="no such file"):
        collect_inputs([str(tmp_path / "missing.mp4")])
