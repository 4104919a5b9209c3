"""Frame sources chosen by URI, like jetson-utils' videoSource.

    0, 1, ...                 camera index (live)
    /dev/video0, v4l2:///dev/video0   V4L2 device (live)
    csi://0                   Jetson CSI camera (nvarguscamerasrc pipeline; needs OpenCV with GStreamer)
    "videotestsrc ! ... ! appsink"    any GStreamer pipeline ending in appsink (live)
    rtsp://, rtsps://, rtmp://, http(s)://, udp://, tcp://, srt://   network stream (live, reconnects)
    clip.mp4, file://clip.mp4 video file (every frame, in order)
    images/, "images/*.jpg"   image folder or glob (every image, sorted)

Protocol: `open()` (RoadsightError when it cannot), `read() -> np.ndarray | None`, `close()`, and
`reopen(timeout_s)` for network sources. A read that returns None means what the source's `on_empty`
says: the end (files, folders, GStreamer pipelines), a failure (a camera that stops) or a drop to
reconnect (network streams).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from enum import Enum
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from engines.errors import RoadsightError
from engines.media import IMAGE_SUFFIXES, expand, is_image

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt", "rtp")
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 5_000
CSI_PIPELINE = (
    "nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width=(int)1280, height=(int)720, "
    "framerate=(fraction)30/1 ! nvvidconv flip-method=0 ! video/x-raw, format=(string)BGRx ! "
    "videoconvert ! video/x-raw, format=(string)BGR ! appsink max-buffers=1 drop=true sync=false"
)
JETSON_RTSP_PIPELINE = (
    "rtspsrc location={url} latency=0 ! rtph264depay ! h264parse ! nvv4l2decoder ! nvvidconv ! "
    "video/x-raw, format=(string)BGRx ! videoconvert ! video/x-raw, format=(string)BGR ! "
    "appsink max-buffers=1 drop=true sync=false"
)


@cache
def has_gstreamer() -> bool:
    """True when this OpenCV was built with the GStreamer backend."""
    return bool(re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()))


@cache
def has_gst_element(name: str) -> bool:
    """True when `gst-inspect-1.0 name` finds the element (e.g. nvv4l2decoder on a Jetson)."""
    if not shutil.which("gst-inspect-1.0"):
        return False
    try:
        return subprocess.run(["gst-inspect-1.0", name], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def quiet_opencv() -> None:
    """Silence OpenCV's and FFmpeg's own stderr warnings: sources report their problems as one line."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg opens a capture
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def require_gstreamer(spec: str) -> None:
    if not has_gstreamer():
        raise RoadsightError(
            f"--source {spec}: this OpenCV {cv2.__version__} has no GStreamer. Expected 'GStreamer: YES' in "
            "cv2.getBuildInformation(), got NO. Fix: `pip uninstall opencv-python "
            "opencv-python-headless` and use JetPack's system OpenCV (python3-opencv), or build OpenCV with "
            "-D WITH_GSTREAMER=ON; or pass a file, camera index or URL (FFmpeg) instead."
        )


def display_name(spec: str) -> str:
    """The source as shown in logs and JSON: passwords in URLs masked, pipelines shortened."""
    spec = re.sub(r"(://[^:/@]+):[^@/]+@", r"\1:***@", spec)
    return spec if len(spec) <= 60 else spec[:57] + "..."


def _sane_fps(value: float) -> float | None:
    """OpenCV's CAP_PROP_FPS, or None when it is 0, NaN or an RTP clock (>= 1000)."""
    return value if value and 0 < value < 1000 else None


class OnEmpty(Enum):
    """What a read without a frame means for a source."""

    END = "end"  # the source is over (a file, a folder, a GStreamer pipeline's end of stream)
    FAIL = "fail"  # the device stopped delivering (a camera unplugged): a failure
    RECONNECT = "reconnect"  # a network stream dropped: reopen it with back-off


class Source:
    """A frame source. `live`: keep only the newest frame (default by kind); `on_empty`: what a read
    without a frame means; `recording`: a file with its own pace (replayed at its fps when live)."""

    kind = "source"
    live = False
    on_empty = OnEmpty.END
    recording = False

    def __init__(self, spec: str):
        self.spec = spec
        self.name = display_name(spec)
        self.fps: float | None = None
        self.frame_count: int | None = None  # known length of a file, if any

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the source; safe to call twice."""

    def reopen(self, timeout_s: float) -> bool:
        """Try once to open a dropped source again within `timeout_s`; True on success."""
        return False

    def early_end(self, captured: int) -> str | None:
        """A line to log when the source ends after `captured` frames sooner than it announced, else None."""
        return None


class CaptureSource(Source):
    """Anything cv2.VideoCapture reads: camera index, V4L2 device, video file, URL, GStreamer pipeline."""

    def __init__(
        self,
        spec: str,
        target: str | int,
        api: int,
        kind: str,
        live: bool,
        on_empty: OnEmpty,
        fallback: tuple[str, int] | None = None,
    ):
        """`fallback` (target, api) is tried when `target` cannot be opened, and kept once it worked."""
        super().__init__(spec)
        self.target, self.api, self.kind, self.live, self.on_empty = target, api, kind, live, on_empty
        self.recording = kind == "video"
        self.fallback = fallback
        self.cap: cv2.VideoCapture | None = None

    @staticmethod
    def _params(api: int, open_timeout_ms: int) -> list[int]:
        if api != cv2.CAP_FFMPEG:
            return []
        return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]

    def _capture(self, target: str | int, api: int, open_timeout_ms: int) -> cv2.VideoCapture | None:
        try:
            cap = cv2.VideoCapture(target, api, self._params(api, open_timeout_ms))
        except cv2.error:
            return None
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _open(self, open_timeout_ms: int) -> bool:
        self.close()
        self.cap = self._capture(self.target, self.api, open_timeout_ms)
        if self.cap is None and self.fallback is not None:
            self.cap = self._capture(*self.fallback, open_timeout_ms)
            if self.cap is not None:  # e.g. the hardware decoder does not take this codec: stay on FFmpeg
                (self.target, self.api), self.fallback = self.fallback, None
        if self.cap is None:
            return False
        self.fps = _sane_fps(self.cap.get(cv2.CAP_PROP_FPS))
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if self.kind == "video" and count > 0 else None
        return True

    def open(self) -> None:
        if not self._open(OPEN_TIMEOUT_MS):
            what = {"video": "cannot decode it (corrupt, truncated or not a video?)"}.get(self.kind, "cannot open it")
            raise RoadsightError(
                f"--source {self.name}: {what}. Expected a readable {self.kind}, got nothing from OpenCV "
                f"({cv2.videoio_registry.getBackendName(self.api) if self.api else 'any backend'}). "
                "Check the path/URL, the device and its permissions."
            )

    def reopen(self, timeout_s: float) -> bool:
        # Each attempt may take 2 s even when less of the give-up time is left: a stream needs time to probe.
        return self._open(min(OPEN_TIMEOUT_MS, max(2000, int(timeout_s * 1000))))

    def early_end(self, captured: int) -> str | None:
        if self.kind == "gstreamer":  # through OpenCV, its end of stream and its errors look the same
            return f"{self.name}: the pipeline delivered no more frames after frame {captured}"
        if self.frame_count and captured < self.frame_count - 1:
            return f"{self.name}: ended at frame {captured} of {self.frame_count} (truncated file?)"
        return None

    def read(self) -> np.ndarray | None:
        if self.cap is None:
            return None
        try:
            ok, frame = self.cap.read()
        except cv2.error:
            return None
        return frame if ok and frame is not None and frame.size else None

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class ImageSource(Source):
    """A sorted list of image files; unreadable images are skipped (counted in `skipped`)."""

    kind = "images"
    recording = True

    def __init__(self, spec: str, paths: list[Path]):
        super().__init__(spec)
        self.paths = paths
        self.position = 0
        self.current: Path | None = None  # the file of the last frame read
        self.skipped: list[Path] = []
        self.frame_count = len(paths)

    def open(self) -> None:
        self.position = 0

    def read(self) -> np.ndarray | None:
        while self.position < len(self.paths):
            path = self.paths[self.position]
            self.position += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                self.current = path
                return frame
            self.skipped.append(path)
        return None


def _image_paths(spec: str) -> list[Path] | None:
    """Images of a folder (not its subfolders) or glob pattern, a single image file, or None when `spec` is
    none of these (e.g. a video file)."""
    if Path(spec).is_file():
        return [Path(spec)] if is_image(spec) else None
    return expand(spec, IMAGE_SUFFIXES, recursive=False)


def open_source(spec: str, live: bool | None = None) -> Source:
    """Build the Source for a URI/path (not opened yet); `live` overrides the kind's default policy.

    Raises a one-line RoadsightError for a missing file, an empty folder, or a GStreamer source on an
    OpenCV without GStreamer.
    """
    text = spec.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if text.isdigit():
        source: Source = CaptureSource(spec, int(text), cv2.CAP_ANY, "camera", live=True, on_empty=OnEmpty.FAIL)
    elif scheme == "csi":
        require_gstreamer(spec)
        sensor = text.split("://", 1)[1] or "0"
        source = CaptureSource(spec, CSI_PIPELINE.format(sensor=sensor), cv2.CAP_GSTREAMER, "camera", live=True, on_empty=OnEmpty.FAIL)
    elif scheme == "v4l2" or text.startswith("/dev/video"):
        device = text.split("://", 1)[1] if scheme else text
        if not Path(device).exists():
            raise RoadsightError(
                f"--source {spec}: no such device. Expected an existing {device}, got none. Is the camera plugged in?"
            )
        source = CaptureSource(spec, device, cv2.CAP_V4L2, "camera", live=True, on_empty=OnEmpty.FAIL)
    elif "!" in text and not scheme:
        require_gstreamer(spec)
        source = CaptureSource(spec, text, cv2.CAP_GSTREAMER, "gstreamer", live=True, on_empty=OnEmpty.END)
    elif scheme in NETWORK_SCHEMES:
        if scheme == "rtsp":  # TCP: no smeared frames from lost UDP packets (unless the user set options)
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        source = CaptureSource(spec, text, cv2.CAP_FFMPEG, "stream", live=True, on_empty=OnEmpty.RECONNECT)
        if scheme == "rtsp" and has_gstreamer() and has_gst_element("nvv4l2decoder"):  # Jetson hardware decode
            gst = (JETSON_RTSP_PIPELINE.format(url=text), cv2.CAP_GSTREAMER)
            source = CaptureSource(spec, *gst, "stream", live=True, on_empty=OnEmpty.RECONNECT, fallback=(text, cv2.CAP_FFMPEG))
    else:
        path_text = text[len("file://"):] if scheme == "file" else text
        if scheme not in ("", "file"):
            raise RoadsightError(
                f"--source {spec}: unknown scheme {scheme}://. Expected a camera index, csi://N, /dev/videoN, a "
                f"GStreamer pipeline, {', '.join(s + '://' for s in NETWORK_SCHEMES)}, a file, folder or glob."
            )
        images = _image_paths(path_text)
        if images is not None:
            if not images:
                raise RoadsightError(f"--source {spec}: no images found. Expected {'/'.join(IMAGE_SUFFIXES)} files, got none.")
            source = ImageSource(spec, images)
        elif Path(path_text).is_file():
            source = CaptureSource(spec, path_text, cv2.CAP_ANY, "video", live=False, on_empty=OnEmpty.END)
        else:
            raise RoadsightError(
                f"--source {spec}: no such file or folder. Expected an existing path or a URI, got none. Check the path."
            )
    if live is not None:
        source.live = live
    return source

