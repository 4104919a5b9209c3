"""Media inputs: which files are images or videos, what a path, folder, glob or list names, frame counts.

Every command that takes files (`run`/`predict` sources, `calibrate`, `export --data`, `video`) expands
them here, so they agree on suffixes and patterns.
"""

from __future__ import annotations

import glob
from pathlib import Path

import cv2

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
LIST_SUFFIXES = (".txt", ".list")  # one path a line (relative to the list), '#' starts a comment line


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def expand(
    spec: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES + VIDEO_SUFFIXES, recursive: bool = True
) -> list[Path] | None:
    """The files `spec` names, or None when it names nothing that exists.

    A file is itself (a .txt/.list file: the paths it lists); a folder gives its files with `suffixes`
    (subfolders too when `recursive`), sorted; a glob pattern (`**` allowed) its matching files with
    `suffixes`, sorted.
    """
    path = Path(spec)
    if path.is_dir():
        files = path.rglob("*") if recursive else path.iterdir()
        return sorted(p for p in files if p.is_file() and p.suffix.lower() in suffixes)
    if path.is_file():
        return read_list(path) if path.suffix.lower() in LIST_SUFFIXES else [path]
    if glob.has_magic(str(spec)):
        found = (Path(p) for p in glob.glob(str(spec), recursive=True))
        return sorted(p for p in found if p.is_file() and p.suffix.lower() in suffixes)
    return None


def read_list(path: Path) -> list[Path]:
    """The paths listed in a text file, one a line, relative to the file's folder; blank and '#' lines skipped."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [p if p.is_absolute() else path.parent / p for p in (Path(line) for line in lines if line and not line.startswith("#"))]


def frame_count(path: str | Path) -> int:
    """Frames a video container announces (0 when unknown or unreadable)."""
    capture = cv2.VideoCapture(str(path))
    try:
        return max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0) if capture.isOpened() else 0
    finally:
        capture.release()
