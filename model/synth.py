"""`roadsight data synth`: procedural driving scenes written in the BDD100K multi-task layout (YOLOP's).

numpy + OpenCV only. Scene i of seed S is drawn from `np.random.default_rng([S, i])`, so a seed fixes the
set and scenes are independent of the number of workers. Files per scene NAME (`synth{S}_{i:06d}`):
images/SPLIT/NAME.jpg (1280x720, JPEG quality drawn per scene), det_annotations/SPLIT/NAME.json (BDD100K
per-image JSON), da_seg_annotations/SPLIT/NAME.png and ll_seg_annotations/SPLIT/NAME.png (0/255).
Lane lines are labelled 8 px wide at 1280x720 (see `model.synth_render`). The last round(n * val_fraction)
scenes go to val/.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from engines.errors import RoadsightError
from model.domain import Domain, load_domain
from model.synth_render import LANE_LABEL_PX, Frame, render
from model.synth_scene import Scene, sample_scene

FOLDERS = ("images", "det_annotations", "da_seg_annotations", "ll_seg_annotations")


@dataclass
class SceneRecord:
    """What was written for one scene: its name, split and ground-truth objects (category, xyxy box)."""

    name: str
    split: str
    objects: list[tuple[str, tuple[float, float, float, float]]]
    timeofday: str


def scene_name(seed: int, index: int) -> str:
    return f"synth{seed}_{index:06d}"


def make_scene(seed: int, index: int, width: int = 1280, height: int = 720, domain: Domain | None = None) -> tuple[Scene, Frame]:
    """Draw and render scene `index` of `seed` from `domain` (default classic; deterministic)."""
    scene = sample_scene(np.random.default_rng([seed, index]), width, height, domain=domain)
    return scene, render(scene)


def bdd_json(name: str, scene: Scene, frame: Frame) -> dict:
    """BDD100K per-image label JSON for a rendered scene."""
    objects = [
        {
            "category": lab.category,
            "id": k,
            "attributes": {"occluded": lab.visible < 0.9, "truncated": lab.truncated, "trafficLightColor": "none"},
            "box2d": dict(zip(("x1", "y1", "x2", "y2"), lab.box)),
        }
        for k, lab in enumerate(frame.labels)
    ]
    return {
        "name": name,
        "attributes": {"weather": scene.weather, "scene": scene.scene_type, "timeofday": scene.timeofday},
        "frames": [{"timestamp": 10000, "objects": objects}],
    }


def write_scene(root: Path, split: str, name: str, scene: Scene, frame: Frame) -> None:
    """Write the four files of one scene."""
    ok = cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, scene.jpeg])
    ok &= cv2.imwrite(str(root / "da_seg_annotations" / split / f"{name}.png"), frame.drivable * 255)
    ok &= cv2.imwrite(str(root / "ll_seg_annotations" / split / f"{name}.png"), frame.lane * 255)
    if not ok:
        raise RoadsightError(f"data synth: cannot write {name} under {root}. Expected a writable folder, got a write failure. Check disk space and permissions.")
    (root / "det_annotations" / split / f"{name}.json").write_text(json.dumps(bdd_json(name, scene, frame)))


def _job(args: tuple) -> tuple[int, SceneRecord]:
    root, seed, index, split, width, height, domain = args
    scene, frame = make_scene(seed, index, width, height, domain)
    name = scene_name(seed, index)
    write_scene(root, split, name, scene, frame)
    return index, SceneRecord(name, split, [(lab.category, lab.box) for lab in frame.labels], scene.timeofday)


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _progress(console: Console | None) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=console is None)


def generate(out: Path, n: int, seed: int = 0, val_fraction: float = 0.2, width: int = 1280, height: int = 720,
             workers: int = 2, console: Console | None = None, domain: Domain | None = None) -> list[SceneRecord]:
    """Generate `n` scenes of `domain` (default classic) under `out`; returns their records (the ground truth) in index order."""
    if n < 0 or not 0.0 <= val_fraction <= 1.0:
        raise RoadsightError(f"data synth: n={n}, val_fraction={val_fraction}. Expected n >= 0 and 0 <= val_fraction <= 1, got those. Fix the options.")
    n_val = int(round(n * val_fraction))
    splits = ["train"] * (n - n_val) + ["val"] * n_val
    for folder in FOLDERS:
        for split in set(splits):
            (out / folder / split).mkdir(parents=True, exist_ok=True)
    jobs = [(out, seed, i, splits[i], width, height, domain) for i in range(n)]
    records: dict[int, SceneRecord] = {}
    workers = max(1, min(workers, n, os.cpu_count() or 1))
    t0 = time.perf_counter()
    # forkserver: workers never inherit the parent's threads (OpenCV's pool, OpenVINO, ONNX Runtime): a fork can hang
    pool = mp.get_context("forkserver").Pool(workers, initializer=_init_worker) if workers > 1 else None
    results = pool.imap_unordered(_job, jobs, chunksize=4) if pool else map(_job, jobs)
    try:
        with _progress(console) as bar:
            task = bar.add_task("scenes", total=n, rate="")
            for index, record in results:
                records[index] = record
                bar.update(task, advance=1, rate=f"{len(records) / max(time.perf_counter() - t0, 1e-6):.1f} scenes/s")
    finally:
        if pool is not None:
            if len(records) < n:  # an error or Ctrl-C: stop the workers
                pool.terminate()
            else:
                pool.close()
            pool.join()
    return [records[i] for i in range(n)]


def summary(records: list[SceneRecord], out: Path, seconds: float, width: int, height: int) -> str:
    """One paragraph: counts, boxes per image, conditions, where the files are."""
    n = len(records)
    splits = Counter(r.split for r in records)
    cats = Counter(c for r in records for c, _ in r.objects)
    boxes = sum(cats.values())
    light = Counter(r.timeofday for r in records)
    per_cat = ", ".join(f"{k} {v}" for k, v in cats.most_common())
    vehicles = sum(cats[c] for c in ("car", "bus", "truck", "train"))
    return (
        f"Wrote {n} scenes ({splits['train']} train / {splits['val']} val) at {width}x{height} to {out} in {seconds:.0f} s: "
        f"{boxes} boxes ({boxes / max(n, 1):.1f} per image; {vehicles / max(n, 1):.1f} vehicles per image; {per_cat or 'none'}), "
        f"{', '.join(f'{k} {v}' for k, v in light.most_common())}. Layout: {out}/images/SPLIT/*.jpg, det_annotations/SPLIT/*.json "
        f"(BDD100K per-image JSON), da_seg_annotations/ and ll_seg_annotations/ (PNG 0/255; lane lines {LANE_LABEL_PX} px wide at "
        f"1280x720). Train with `roadsight train --data {out}`."
    )


def synth_command(out: Path, n: int, seed: int = 0, val_fraction: float = 0.2, video: Path | None = None, frames: int = 300,
                  workers: int = 2, fps: float = 30.0, domain: str | Path = "classic", condition: str | None = None) -> list[SceneRecord]:
    """CLI body of `roadsight data synth`: scenes, then the optional drive clip, then a summary paragraph."""
    from model.synth_video import write_video

    if n == 0 and video is None:
        raise RoadsightError("data synth: nothing to write. Expected --n >= 1 or a --video path, got --n 0 and no --video. Add one of them.")
    dom = load_domain(domain, condition)
    console = Console()
    t0 = time.perf_counter()
    records = generate(out, n, seed, val_fraction, workers=workers, console=console, domain=dom)
    if n:
        console.print(f"Domain: {dom.name}. " + summary(records, out, time.perf_counter() - t0, 1280, 720))
    if video is not None:
        with _progress(console) as bar:
            task = bar.add_task("video", total=frames, rate="")
            write_video(video, frames, seed, fps=fps, advance=lambda: bar.update(task, advance=1), truth=True)
        console.print(f"Drive clip: {video} ({frames} frames, 1280x720, {fps:g} fps, mp4v; seed {seed}); ground truth "
                      f"{video.with_suffix('.gt.jsonl')}, camera {video.with_suffix('.camera.yaml')}.")
    return records
