"""The one media-inputs module and the one device parser."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engines.device import Device, parse_device
from engines.errors import RoadsightError
from engines.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, expand, frame_count


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.jpg", "notes.txt", "clip.mp4", "sub/c.png", "sub/d.avi"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_expand_folder_glob_file_and_list(tree):
    names = lambda paths: [p.relative_to(tree).as_posix() for p in paths]  # noqa: E731
    assert names(expand(tree)) == ["a.jpg", "b.png", "clip.mp4", "sub/c.png", "sub/d.avi"]
    assert names(expand(tree, IMAGE_SUFFIXES, recursive=False)) == ["a.jpg", "b.png"]
    assert names(expand(str(tree / "**" / "*"), VIDEO_SUFFIXES)) == ["clip.mp4", "sub/d.avi"]
    assert expand(tree / "b.png") == [tree / "b.png"]
    (tree / "list.txt").write_text("# two clips\nclip.mp4\n\nsub/d.avi\n")
    assert names(expand(tree / "list.txt")) == ["clip.mp4", "sub/d.avi"]
    assert expand(tree / "missing") is None and expand(str(tree / "*.bmp")) == []


def test_frame_count_reads_the_container(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    for _ in range(7):
        writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.release()
    assert frame_count(path) == 7 and frame_count(tmp_path / "missing.avi") == 0


@pytest.mark.parametrize(
    ("text", "kinds", "expected"),
    [("cpu", ("cpu", "cuda"), Device("cpu")), ("CUDA:1", ("cpu", "cuda"), Device("cuda", 1)),
     ("tensorrt", ("cpu", "cuda", "tensorrt"), Device("tensorrt"))],
)
def test_parse_device(text, kinds, expected):
    device = parse_device(text, kinds)
    assert device == expected and parse_device(str(device), kinds) == device


@pytest.mark.parametrize(("text", "message"), [("gpu", "unknown device"), ("cuda:x", "cannot read the index"),
                                               ("cpu:0", "unknown device"), ("tensorrt", "unknown device")])
def test_parse_device_errors_are_one_line(text, message):
    with pytest.raises(RoadsightError, match=message) as info:
        parse_device(text, ("cpu", "cuda"), "a .pt checkpoint")
    assert "\n" not in str(info.value) and "cpu, cuda[:N]" in str(info.value)
