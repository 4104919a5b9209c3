"""`roadsight video --cluster ray` on a local 2-CPU Ray: same outputs as one process, a killed worker, Ctrl-C, resume."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch_free
from conftest import write_clip
from rich.console import Console
from tiny_model import make_tiny_onnx
from typer.testing import CliRunner

from app import video
from engines.errors import RoadsightError

OVERLAY_ROWS = 16  # the annotated video's fps/latency label (a timing, different on every run) is above this row
QUIET = dict(console=Console(file=io.StringIO()))


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray with 2 CPUs for the whole module (starting Ray takes seconds)."""
    ray = pytest.importorskip("ray", reason="ray (the cluster extra) is not installed")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx", imgsz=(64, 96))


def clip_folder(folder: Path, frames: list[int], corrupt: bool = False) -> Path:
    folder.mkdir()
    for i, count in enumerate(frames):
        write_clip(folder / f"clip{i}.mp4", frames=count)
    if corrupt:
        (folder / "corrupt.mp4").write_bytes(os.urandom(3000))
    return folder


def jsonl(path: Path) -> list[dict]:
    """Per-frame records without the latency (a timing)."""
    return [{k: v for k, v in json.loads(line).items() if k != "latency_ms"} for line in path.read_text().splitlines()]


def summary(path: Path) -> dict[str, dict]:
    """summary.csv rows by file name, without the timing columns."""
    with open(path) as handle:
        return {Path(r["file"]).name: {k: v for k, v in r.items() if k not in ("fps", "seconds")} for r in csv.DictReader(handle)}


def frames(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    decoded = []
    while (read := capture.read())[0]:
        decoded.append(read[1])
    capture.release()
    return np.array(decoded)


def partials(out: Path) -> list[Path]:
    return list(out.glob("*.part.*"))


def test_corrupt_clip_and_same_outputs_as_one_process(ray_session, model, tmp_path):
    from app.cli import _register_all, app

    clips = clip_folder(tmp_path / "clips", [20, 30, 40], corrupt=True)
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    video.run([str(clips)], str(model), local, workers=1, **QUIET)
    _register_all()
    result = CliRunner().invoke(app, ["video", str(clips), "--model", str(model), "--out", str(ray_out), "--cluster", "ray", "--workers", "2"])
    assert result.exit_code == 1, result.output  # the corrupt clip, as on one machine
    output = " ".join(result.output.split())  # the console wraps at the terminal's width
    assert "2 Ray worker(s)" in output and "3 of 4 files ok" in output
    rows = summary(ray_out / "summary.csv")
    assert rows == summary(local / "summary.csv")
    assert rows["corrupt.mp4"]["status"] == "error" and "cannot decode" in rows["corrupt.mp4"]["error"]
    assert not list(ray_out.glob("corrupt*")) and not partials(ray_out)
    for i, count in enumerate([20, 30, 40]):
        assert rows[f"clip{i}.mp4"]["status"] == "ok" and int(rows[f"clip{i}.mp4"]["frames"]) == count
        assert jsonl(ray_out / f"clip{i}.jsonl") == jsonl(local / f"clip{i}.jsonl")
        mine, theirs = frames(ray_out / f"clip{i}.mp4"), frames(local / f"clip{i}.mp4")
        assert mine.shape == theirs.shape and len(mine) == count
        # equal below the label, up to the lossy codec predicting some blocks from the label's neighbourhood
        difference = np.abs(mine[:, OVERLAY_ROWS:].astype(int) - theirs[:, OVERLAY_ROWS:])
        assert (difference > 0).mean() < 0.01


def holders(path: Path) -> set[int]:
    """Processes that have `path` open (Linux /proc)."""
    pids = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == str(path):
                pids.add(int(fd.parts[2]))
        except OSError:  # the process or descriptor went away
            continue
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker holding a clip through Linux /proc")
def test_worker_killed_mid_clip_is_retried(ray_session, model, tmp_path):
    clips = clip_folder(tmp_path / "clips", [300, 300, 300])
    out = tmp_path / "out"
    result: list = []
    runner = threading.Thread(target=lambda: result.append(video.run([str(clips)], str(model), out, cluster="ray", workers=2, **QUIET)))
    runner.start()
    killed, deadline = None, time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and runner.is_alive():
        for stem in ("clip0", "clip1", "clip2"):
            pids = holders((out / f"{stem}.part.jsonl").resolve())
            if pids:
                killed, pid, at = stem, pids.pop(), time.time()
                os.kill(pid, signal.SIGKILL)
                break
        time.sleep(0.02)
    runner.join(timeout=180)
    assert killed is not None, "no worker was seen writing a clip"
    assert not runner.is_alive() and result, "the run did not finish"
    rows = {Path(r.file).stem: r for r in result[0]}
    assert all(r.status == "ok" and r.frames == 300 for r in rows.values()), rows
    assert (out / ".done" / f"{killed}.json").stat().st_mtime > at  # completed after the kill: by the retry
    assert [r["frame"] for r in jsonl(out / f"{killed}.jsonl")] == list(range(300))
    assert len(frames(out / f"{killed}.mp4")) == 300
    assert not partials(out)


@pytest.mark.slow
def test_ctrl_c_keeps_finished_clips_and_rerun_resumes(ray_session, model, tmp_path, monkeypatch):
    from app import cluster

    clips = clip_folder(tmp_path / "clips", [30, 300, 300, 300])
    out = tmp_path / "out"
    done = cluster.Progress.done

    def ctrl_c_after_first_clip(progress, job, row) -> None:  # Ctrl-C lands as the first clip is reported
        done(progress, job, row)
        raise KeyboardInterrupt

    monkeypatch.setattr(cluster.Progress, "done", ctrl_c_after_first_clip)
    with pytest.raises(KeyboardInterrupt):
        video.run([str(clips)], str(model), out, cluster="ray", workers=2, **QUIET)
    monkeypatch.undo()
    done = {p.stem: (out / f"{p.stem}.jsonl").stat().st_mtime_ns for p in (out / ".done").glob("*.json")}
    assert "clip0" in done and len(done) < 4, done
    assert not partials(out)
    rows = {Path(r.file).stem: r for r in video.run([str(clips)], str(model), out, cluster="ray", workers=2, **QUIET)}
    assert {stem for stem, row in rows.items() if row.status == "skipped"} == set(done)
    assert all(row.status in ("ok", "skipped") for row in rows.values())
    assert {stem: (out / f"{stem}.jsonl").stat().st_mtime_ns for stem in done} == done
    assert [len(jsonl(out / f"clip{i}.jsonl")) for i in range(4)] == [30, 300, 300, 300]
    assert not partials(out)


def test_one_line_errors(model, tmp_path, monkeypatch):
    clips = clip_folder(tmp_path / "clips", [2])
    with pytest.raises(RoadsightError, match=r"--cluster spark: unknown cluster.*ray://HOST:PORT"):
        video.run([str(clips)], str(model), tmp_path / "out", cluster="spark", **QUIET)
    with pytest.raises(RoadsightError, match=r"URLs are not supported"):
        video.run([str(clips)], str(model), Path("s3://bucket/out"), cluster="ray", **QUIET)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the cluster extra were not installed
    with pytest.raises(RoadsightError, match=r"ray is not installed.*pip install 'roadsight\[cluster\]'"):
        video.run([str(clips)], str(model), tmp_path / "out", cluster="ray", **QUIET)


class FakeRay:
    """What `plan_slots` reads from Ray: the cluster's totals and its nodes."""

    def __init__(self, nodes: list[dict]):
        self._nodes = [{"Alive": True, "Resources": node} for node in nodes]

    def cluster_resources(self) -> dict:
        return {key: sum(node["Resources"].get(key, 0) for node in self._nodes) for key in ("CPU", "GPU")}

    def nodes(self) -> list[dict]:
        return self._nodes


def test_plan_slots_over_the_cluster():
    from app.cluster import plan_slots

    four_by_two = FakeRay([{"CPU": 2}] * 4)
    slots, resources = plan_slots(four_by_two, "cpu", "m.onnx", None, None, files=10)
    assert slots == [video.Slot("cpu", 2)] * 4 and resources == {"num_cpus": 2}
    slots, resources = plan_slots(four_by_two, "cpu", "m.onnx", 8, None, files=3)
    assert slots == [video.Slot("cpu", 2)] * 3 and resources == {"num_cpus": 2}  # 3 files: 3 workers, 8 CPUs // 3
    with pytest.raises(RoadsightError, match="--threads 4: no Ray node has that many CPUs"):
        plan_slots(four_by_two, "cpu", "m.onnx", 2, 4, files=3)
    with pytest.raises(RoadsightError, match="the Ray cluster has no GPU"):
        plan_slots(four_by_two, "cuda", "m.onnx", None, None, files=3)
    gpus = FakeRay([{"CPU": 8, "GPU": 2}, {"CPU": 8, "GPU": 1}])
    slots, resources = plan_slots(gpus, "cpu", "m.engine", None, None, files=10)
    assert slots == [video.Slot("cuda:0", 1)] * 3 and resources == {"num_cpus": 1, "num_gpus": 1}
    slots, _ = plan_slots(gpus, "tensorrt:1", "m.onnx", 2, None, files=10)
    assert slots == [video.Slot("tensorrt:0", 1)] * 2


def test_ray_path_is_torch_free():
    pytest.importorskip("ray", reason="ray (the cluster extra) is not installed")
    code = "import ray, ray.util.queue, app.cluster; print('TRAINING STACK LOADED:', training_stack_loaded())"
    result = subprocess.run(torch_free.script(code), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith(torch_free.NONE_LOADED), result.stderr[-2000:]
