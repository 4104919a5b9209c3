"""Frame discovery and sampling: spread over videos/folders, exact frames, refusal of empty/degenerate data."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from calib_helpers import bar_index, scene, write_video

from calibration.frames import allocate, degenerate, find_groups, plan, sample_frames
from engines.errors import RoadsightError


def test_allocate_shares_evenly_and_caps_small_groups():
    assert allocate([1000, 1000], 10) == [5, 5]
    assert allocate([2, 1000, 1000], 10) == [2, 4, 4]
    assert allocate([3, 4], 100) == [3, 4]  # fewer frames than asked: all of them
    assert sum(allocate([7, 0, 9, 50], 33)) == 33


def test_plan_spreads_over_every_video_evenly(tmp_path):
    long = write_video(tmp_path / "long.avi", 60, seed=1)
    short = write_video(tmp_path / "short.avi", 20, seed=2)
    groups = find_groups([str(tmp_path)])
    assert sorted(g.size for g in groups) == [20, 60]
    refs = plan(groups, 10, seed=3)
    per_video = {p: sorted(r.index for r in refs if r.path == p) for p in (str(long), str(short))}
    assert len(per_video[str(long)]) == 5 and len(per_video[str(short)]) == 5  # not proportional to length
    gaps = np.diff(per_video[str(long)])
    assert gaps.min() >= 11 and gaps.max() <= 13  # evenly spaced over all 60 frames, not the first N
    assert per_video[str(long)][-1] >= 48


def test_sampled_video_frames_are_the_planned_ones(tmp_path):
    write_video(tmp_path / "clip.avi", 30, seed=4)
    frames, refs, counts = sample_frames([str(tmp_path / "clip.avi")], 6, seed=0)
    assert counts["planned"] == 6 and len(frames) == 6
    assert [bar_index(f) for f in frames] == [r.index for r in refs]  # decoded frame == its reference


def test_folders_are_sampled_randomly_but_reproducibly(image_dir):
    _, refs_a, _ = sample_frames([str(image_dir)], 5, seed=1)
    _, refs_b, _ = sample_frames([str(image_dir)], 5, seed=1)
    _, refs_c, _ = sample_frames([str(image_dir)], 5, seed=2)
    names = [str(r) for r in refs_a]
    assert names == [str(r) for r in refs_b] and len(set(names)) == 5
    assert set(names) != {str(r) for r in refs_c}
    assert sorted(names) != [str(image_dir / f"f{i:02d}.png") for i in range(5)]  # not simply the first 5


def test_glob_and_mixed_sources(tmp_path, image_dir):
    write_video(tmp_path / "a.avi", 10)
    groups = find_groups([str(image_dir / "f0*.png"), str(tmp_path / "*.avi")])
    assert sorted(g.size for g in groups) == [10, 10]


def test_no_frames_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(RoadsightError, match="no frames found"):
        sample_frames([str(tmp_path), str(tmp_path / "missing*.jpg")], 8)


@pytest.mark.parametrize("kind", ["constant", "noise"])
def test_degenerate_data_is_refused(tmp_path, kind):
    rng = np.random.default_rng(0)
    for i in range(6):
        img = np.full((72, 128, 3), 40 + i, np.uint8) if kind == "constant" else rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
    with pytest.raises(RoadsightError, match="constant or random noise"):
        sample_frames([str(tmp_path)], 6)


def test_degenerate_check_accepts_scenes():
    assert degenerate(scene(0)) is None
    assert degenerate(np.full((40, 40, 3), 7, np.uint8)) == "constant"
    assert degenerate(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)) == "noise"


def test_seeking_over_large_gaps_reads_the_right_frames(tmp_path, monkeypatch):
    import calibration.frames as frames_module

    monkeypatch.setattr(frames_module, "SEEK_GAP", 2)  # force seeks between the planned frames
    write_video(tmp_path / "clip.avi", 40, seed=5)
    frames, refs, _ = sample_frames([str(tmp_path / "clip.avi")], 5, seed=2)
    assert len(frames) == 5 and [bar_index(f) for f in frames] == [r.index for r in refs]
