"""Synthetic scenes: files in the BDD100K layout, labels that match the pixels, determinism, drive clips."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from model.bdd import BDDDataset
from model.classes import BDD10
from model.synth import generate, make_scene
from model.synth_render import LANE_LABEL_PX
from model.synth_video import write_video

W, H = 320, 180
ALL = list(BDD10)  # the generator writes det_20 spellings


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    records = generate(root, n=5, seed=11, val_fraction=0.4, width=W, height=H, workers=1)
    return root, records


def test_layout_and_splits(dataset):
    root, records = dataset
    assert [r.split for r in records] == ["train"] * 3 + ["val"] * 2
    for r in records:
        for folder, ext in (("images", "jpg"), ("det_annotations", "json"), ("da_seg_annotations", "png"), ("ll_seg_annotations", "png")):
            assert (root / folder / r.split / f"{r.name}.{ext}").is_file()
        label = json.loads((root / "det_annotations" / r.split / f"{r.name}.json").read_text())
        assert label["name"] == r.name and set(label["attributes"]) == {"weather", "scene", "timeofday"}


def test_loader_returns_the_generated_boxes(dataset):
    root, records = dataset
    for split in ("train", "val"):
        expected = [r for r in records if r.split == split]
        full = BDDDataset(root, split, class_map=ALL)
        vehicles = BDDDataset(root, split)  # default map: car/bus/truck/train -> vehicle
        assert len(full) == len(expected) and vehicles.names == ("vehicle",)
        for i, r in enumerate(expected):
            sample = full.read(i)
            assert sample.name == r.name and sample.image.shape == (H, W, 3)
            np.testing.assert_allclose(sample.boxes, np.array([b for _, b in r.objects], np.float32).reshape(-1, 4), atol=1e-3)
            assert [full.names[c] for c in sample.classes] == [c for c, _ in r.objects]
            v = vehicles.read(i)
            keep = [k for k, (c, _) in enumerate(r.objects) if c in ("car", "bus", "truck", "train")]
            np.testing.assert_allclose(v.boxes, sample.boxes[keep], atol=1e-3)
            assert (v.classes == 0).all()
            assert ((sample.boxes[:, 0] >= 0) & (sample.boxes[:, 2] <= W) & (sample.boxes[:, 1] >= 0) & (sample.boxes[:, 3] <= H)).all()
            assert (sample.boxes[:, 2] > sample.boxes[:, 0]).all() and (sample.boxes[:, 3] > sample.boxes[:, 1]).all()
    assert sum(len(r.objects) for r in records) > 0
    assert {c for r in records for c, _ in r.objects} <= set(BDD10)


def test_masks_are_binary_and_plausible(dataset):
    root, records = dataset
    for r in records:
        for folder in ("da_seg_annotations", "ll_seg_annotations"):
            mask = cv2.imread(str(root / folder / r.split / f"{r.name}.png"), cv2.IMREAD_GRAYSCALE)
            assert mask.shape == (H, W) and set(np.unique(mask)) <= {0, 255} and (mask > 0).any()
            assert not (mask[: H // 4] > 0).any(), "road and markings lie below the horizon"
        sample = BDDDataset(root, r.split).read([x.name for x in records if x.split == r.split].index(r.name))
        assert set(np.unique(sample.lane)) <= {0, 1} and set(np.unique(sample.drivable)) <= {0, 1}


def test_boxes_match_the_rendered_pixels():
    """Fully visible objects: the label box is the extent of the object's pixels (independent of the geometry)."""
    errors, ious = [], []
    for i in range(4):
        _, frame = make_scene(21, i, 640, 360)
        for lab in frame.labels:
            if lab.visible < 0.999 or lab.truncated:
                continue
            ys, xs = np.nonzero(frame.ids == lab.id)
            pix = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
            box = np.array(lab.box)
            errors.append(np.abs(pix - box))
            inter = np.prod(np.clip(np.minimum(pix[2:], box[2:]) - np.maximum(pix[:2], box[:2]), 0, None))
            if np.prod(box[2:] - box[:2]) >= 400:  # 1 px of rasterisation matters little from 20x20 px on
                ious.append(inter / (np.prod(pix[2:] - pix[:2]) + np.prod(box[2:] - box[:2]) - inter))
    assert len(errors) >= 5 and len(ious) >= 3
    errors = np.array(errors)
    assert np.median(errors) <= 1.0 and errors.max() <= 6.0
    assert min(ious) > 0.75 and np.mean(ious) > 0.9


def test_occluded_objects_keep_full_boxes_and_hidden_ones_are_dropped():
    seen_occluded = False
    for i in range(6):
        _, frame = make_scene(33, i, 640, 360)
        counts = np.bincount(np.maximum(frame.ids.ravel(), 0), minlength=max([l.id for l in frame.labels], default=0) + 1)
        for lab in frame.labels:
            assert counts[lab.id] > 0, "a kept object has visible pixels"
            if 0.05 < lab.visible < 0.9:
                seen_occluded = True
                ys, xs = np.nonzero(frame.ids == lab.id)
                # the visible part lies inside the (full) box
                assert xs.min() >= lab.box[0] - 1.5 and xs.max() + 1 <= lab.box[2] + 1.5
                assert ys.min() >= lab.box[1] - 1.5 and ys.max() + 1 <= lab.box[3] + 1.5
    assert seen_occluded


def test_lane_label_width():
    """A lane line is labelled ~8 px wide at 1280x720 even where the paint is thinner (far away)."""
    scene, frame = make_scene(5, 3)
    assert LANE_LABEL_PX == 8
    rows = range(int(frame.lane.shape[0] * 0.55), int(frame.lane.shape[0] * 0.6))
    widths = []
    for y in rows:
        row = np.concatenate([[0], frame.lane[y], [0]]).astype(np.int8)
        starts, ends = np.nonzero(np.diff(row) == 1)[0], np.nonzero(np.diff(row) == -1)[0]
        widths += list(ends - starts)
    assert widths and 6 <= np.median(widths) <= 14


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = make_scene(4, 2, W, H)[1], make_scene(4, 2, W, H)[1], make_scene(5, 2, W, H)[1]
    assert np.array_equal(a.image, b.image) and np.array_equal(a.lane, b.lane) and a.labels == b.labels
    assert not np.array_equal(a.image, c.image)


def test_files_do_not_depend_on_the_worker_count(dataset, tmp_path):
    root, records = dataset
    again = generate(tmp_path, n=5, seed=11, val_fraction=0.4, width=W, height=H, workers=2)
    assert again == records
    for r in records:
        for folder, ext in (("images", "jpg"), ("det_annotations", "json"), ("ll_seg_annotations", "png")):
            rel = Path(folder) / r.split / f"{r.name}.{ext}"
            assert (root / rel).read_bytes() == (tmp_path / rel).read_bytes()
    other = generate(tmp_path / "other", n=2, seed=12, val_fraction=0.0, width=W, height=H, workers=1)
    assert {r.name for r in other}.isdisjoint({r.name for r in records})


def test_drive_clip_is_coherent(tmp_path):
    n = 12
    path = write_video(tmp_path / "drive.mp4", n, seed=2)
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (720, 1280, 3)
        frames.append(cv2.resize(frame, (160, 90), interpolation=cv2.INTER_AREA).astype(np.float32))
    assert len(frames) == n
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    steps = [np.abs(frames[i + 1] - frames[i]).mean() for i in range(n - 1)]
    total = np.abs(frames[-1] - frames[0]).mean()
    assert total > 5 and max(steps) < 0.5 * total


def test_cli_writes_scenes_and_summary(tmp_path):
    out = tmp_path / "cli"
    run = subprocess.run([sys.executable, "-m", "app.cli", "data", "synth", "--out", str(out), "--n", "2", "--seed", "3", "--workers", "1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    text = " ".join(run.stdout.split())
    assert "Wrote 2 scenes (2 train / 0 val) at 1280x720" in text and "per image" in text
    assert len(list((out / "images" / "train").glob("*.jpg"))) == 2
    assert cv2.imread(str(next((out / "images" / "train").glob("*.jpg")))).shape == (720, 1280, 3)


def test_nothing_to_write_is_a_one_line_error(tmp_path):
    from engines.errors import RoadsightError
    from model.synth import synth_command

    with pytest.raises(RoadsightError) as err:
        synth_command(tmp_path / "x", n=0)
    assert "\n" not in str(err.value) and "Expected --n >= 1 or a --video" in str(err.value)
