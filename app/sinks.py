"""Outputs of `roadsight run`, as context managers: window, annotated video, JSONL, frame dumps.

Every sink is checked before the run starts (`check_output`), writes per frame (the JSONL is flushed
after every line, so a killed run leaves only complete lines) and is closed exactly once, which
finalises the video container. `SinkSet` groups the sinks of one source: for a file every sink gets
every frame, in order; for a live source the JSONL gets each result at once and the recording (video,
frame dump) is drawn and encoded by an `app.recorder.Recorder` thread from the newest result.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from engines.draw import draw
from engines.errors import RoadsightError
from engines.perception import Perception

from app.recorder import Recorder, Status

VIDEO_FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
MAX_REPEAT_S = 10.0  # a live video repeats a frame for at most this long to cover a gap


def per_source(path: Path | None, index: int, count: int) -> Path | None:
    """`out.mp4` -> `out_1.mp4` for source 1 when there are several sources; unchanged for one."""
    if path is None or count == 1:
        return path
    return path.with_name(f"{path.stem}_{index}{path.suffix}")


def check_output(path: Path, option: str, folder: bool = False) -> None:
    """Fail with one line before the run when `path` cannot be written (parent, permissions, suffix)."""
    try:
        if folder:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".roadsight-write-test"
            probe.touch()
            probe.unlink()
            return
        if path.is_dir():
            raise RoadsightError(f"{option} {path}: is a folder. Expected a file path, got a folder.")
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "ab"):
            pass
        if not existed:
            path.unlink()
    except OSError as error:
        raise RoadsightError(
            f"{option} {path}: cannot be written ({error.strerror or error}). Expected a writable path, got "
            "this one. Choose another folder or fix its permissions."
        ) from None


class VideoSink:
    """Annotated frames into a video file; opened at the first frame (its size), released on close().

    `fps` may be a callable, read at the first frame. Files play at `fps` with every frame; with
    `real_time`, frames are placed by their capture time (repeated to cover gaps, skipped when they come
    faster than `fps`) so the video keeps wall-clock time. A gap longer than MAX_REPEAT_S, or any gap when
    `write(fill=False)` (a recorder that fell behind: filling would cost it more encoding and put it further
    behind), is not filled: the timeline moves on and the slots left out are counted in `unfilled`.
    """

    def __init__(self, path: Path, fps: float | Callable[[], float], real_time: bool = False):
        if path.suffix.lower() not in VIDEO_FOURCC:
            raise RoadsightError(
                f"--save {path}: unsupported video type. Expected one of {', '.join(VIDEO_FOURCC)}, "
                f"got {path.suffix or 'none'!r}."
            )
        self.path, self.fps, self.real_time = path, fps, real_time
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0  # written, repeats included
        self.results = 0  # distinct results written
        self.paced_out = 0  # real time: results that came sooner than the next frame slot (not written)
        self.unfilled = 0  # real time: frame slots of gaps left out (see the class docstring)
        self.first_time: float | None = None

    def write(self, frame: np.ndarray, captured: float, fill: bool = True) -> None:
        if self.writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            self.fps = self.fps() if callable(self.fps) else self.fps  # a source knows its fps once open
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise RoadsightError(
                    f"--save {self.path}: OpenCV cannot open a video writer for it. Expected a writable {self.path.suffix} "
                    "file and a codec for it. Try another folder, or .avi (MJPG)."
                )
            self.first_time = captured
        if (frame.shape[1], frame.shape[0]) != self.size:  # a stream that came back at another resolution
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        repeats = 1
        if self.real_time and self.frames:
            repeats = int(round((captured - self.first_time) * self.fps)) + 1 - self.frames
            limit = int(MAX_REPEAT_S * self.fps) if fill else 1
            if repeats > limit:  # leave the rest of the gap out: the timeline moves on by it
                self.first_time += (repeats - limit) / self.fps
                self.unfilled += repeats - limit
                repeats = limit
        for _ in range(repeats):
            self.writer.write(frame)
        self.frames += max(repeats, 0)
        self.results += repeats > 0
        self.paced_out += repeats <= 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


class JsonlSink:
    """One `Perception.to_json()` line per frame, flushed at once."""

    def __init__(self, path: Path, masks: bool = False):
        self.path, self.masks = path, masks
        self.file = open(path, "w", encoding="utf-8")
        self.lines = 0

    def write(self, perception: Perception) -> None:
        self.file.write(perception.to_json(self.masks) + "\n")
        self.file.flush()
        self.lines += 1

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()


class DumpSink:
    """Annotated frames as JPEG files `<index:06d>.jpg` in a folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, frame: np.ndarray, index: int) -> None:
        path = self.folder / f"{index:06d}.jpg"
        if not cv2.imwrite(str(path), frame):
            raise RoadsightError(
                f"--dump-dir {self.folder}: cannot write {path.name}. Expected a writable folder, got a failed write."
            )

    def close(self) -> None:
        """Nothing to release."""


class WindowSink:
    """An OpenCV window on the calling (main) thread; q, Esc or closing it stops the run."""

    def __init__(self, title: str):
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise RoadsightError(
                "--show: no display. Expected $DISPLAY or $WAYLAND_DISPLAY, got neither. Run with --save out.mp4 "
                "instead, or connect a display (ssh -X, export DISPLAY=:0)."
            )
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise RoadsightError(
                "--show: this OpenCV has no GUI (a headless build). Expected opencv-python with GUI support, got "
                "none. Install opencv-python instead of opencv-python-headless, or use --save."
            ) from None
        self.title = title

    def write(self, frame: np.ndarray) -> bool:
        """Show the frame; False when the user asked to stop."""
        cv2.imshow(self.title, frame)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass


class SinkSet:
    """All outputs of one source. `live`: the recording (video, dump) runs in a `Recorder` thread."""

    def __init__(
        self,
        video: VideoSink | None = None,
        jsonl: JsonlSink | None = None,
        dump: DumpSink | None = None,
        window: WindowSink | None = None,
        live: bool = False,
    ):
        self.video, self.jsonl, self.dump, self.window, self.live = video, jsonl, dump, window, live
        name = f"record-{video.path.name if video else 'frames'}"
        self.recorder = Recorder(self._record, name=name) if live and (video or dump) else None
        self.closed = False

    def write(self, frame: np.ndarray, perception: Perception, status: Status = None) -> bool:
        """Write one result; False when a window asked to stop. status: (fps, latency ms) for the overlay.

        Files: drawn once, then video, dump, window, `written` stamped, JSONL. Live: `written` stamped and
        the JSONL line written first, the recording offered to its thread, then the window.
        """
        if self.live:
            perception.stamp("written")
            if self.jsonl:
                self.jsonl.write(perception)
            if self.recorder is not None:
                self.recorder.offer(frame, perception, status)
            return self.window.write(self._annotate(frame, perception, status)) if self.window else True
        annotated = self._annotate(frame, perception, status) if self.video or self.dump or self.window else None
        if annotated is not None:
            self._record(frame, perception, status, annotated)
        perception.stamp("written")
        if self.jsonl:
            self.jsonl.write(perception)
        return self.window.write(annotated) if self.window else True

    @staticmethod
    def _annotate(frame: np.ndarray, perception: Perception, status: Status) -> np.ndarray:
        fps, latency = status if status else (None, None)
        return draw(frame, perception, fps=fps, latency_ms=latency, copy=True)

    def _record(self, frame: np.ndarray, perception: Perception, status: Status, annotated: np.ndarray | None = None,
                behind: bool = False) -> None:
        """Write the annotated frame to the video (placed by capture time) and the frame dump; `behind`: the
        recorder skipped results since the last one, so the gap is not filled (see VideoSink)."""
        annotated = self._annotate(frame, perception, status) if annotated is None else annotated
        if self.video:
            self.video.write(annotated, perception.timestamps.get("captured", 0.0), fill=not behind)
        if self.dump:
            self.dump.write(annotated, perception.frame_index)

    def close(self) -> None:
        """Finish the recording, then close every sink once (the video container is finalised here)."""
        if self.closed:
            return
        self.closed = True
        if self.recorder is not None:
            self.recorder.close()
        for sink in (self.video, self.jsonl, self.dump, self.window):
            if sink is not None:
                sink.close()

    def __enter__(self) -> SinkSet:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
