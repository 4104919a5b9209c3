"""Find and sample calibration frames spread over every video and image folder given.

Sources are folders (searched recursively for images and videos), video files, single images or glob
patterns. Each video is one group and the images of each folder form one group; the frame budget is
shared evenly between groups (a group smaller than its share gives the rest to the others), so a long
video cannot crowd out the others. Inside a video the frames are evenly spaced (with a seeded offset);
inside a folder they are a seeded random choice. Degenerate frames (constant, or uncorrelated noise) are
skipped, and a source made mostly of them is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.errors import RoadsightError
from engines.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, expand, frame_count

MIN_STD = 4.0  # grey levels: below this a frame is (nearly) constant
MIN_NEIGHBOUR_CORR = 0.3  # natural images correlate > 0.8 between neighbouring pixels; iid noise ~0
MAX_DEGENERATE_SHARE = 0.5  # more degenerate frames than this among those read -> refuse the source
SEEK_GAP = 60  # frames: seek instead of decoding through a gap larger than this


@dataclass(frozen=True)
class Group:
    """A video (path, frame count) or a folder's images (files); `size` frames available."""

    name: str
    video: Path | None = None
    frames: int = 0
    files: tuple[Path, ...] = ()

    @property
    def size(self) -> int:
        return self.frames if self.video is not None else len(self.files)


@dataclass(frozen=True)
class FrameRef:
    """Where one calibration frame came from: a file, or a video and its frame index."""

    path: str
    index: int = -1  # -1: a still image

    def __str__(self) -> str:
        return self.path if self.index < 0 else f"{self.path}#{self.index}"


def find_groups(sources: list[str]) -> list[Group]:
    """Expand the sources into groups (one per video, one per folder of images); empty -> RoadsightError."""
    if not sources:
        raise RoadsightError("calibrate: no --source given. Expected a folder, video or glob, got none.")
    videos: dict[Path, int] = {}
    folders: dict[Path, list[Path]] = {}
    for source in sources:
        for path in expand(source) or []:
            suffix = path.suffix.lower()
            if suffix in VIDEO_SUFFIXES and path not in videos:
                videos[path] = frame_count(path)
            elif suffix in IMAGE_SUFFIXES:
                folders.setdefault(path.parent, [])
                if path not in folders[path.parent]:
                    folders[path.parent].append(path)
    groups = [Group(str(p), video=p, frames=n) for p, n in videos.items() if n > 0]
    groups += [Group(str(d), files=tuple(sorted(files))) for d, files in sorted(folders.items())]
    if not groups:
        raise RoadsightError(
            f"calibrate: no frames found in {', '.join(sources)}. Expected images ({', '.join(IMAGE_SUFFIXES)}) or "
            f"readable videos ({', '.join(VIDEO_SUFFIXES)}), got none. Check the paths; calibrating on nothing "
            "(or random data) gives useless INT8 scales."
        )
    return groups


def allocate(sizes: list[int], n: int) -> list[int]:
    """Share n frames between groups of `sizes` evenly, capped at each size (water-filling)."""
    quota = [0] * len(sizes)
    left, open_groups = n, [i for i, s in enumerate(sizes) if s > 0]
    while left > 0 and open_groups:
        share = max(left // len(open_groups), 1)
        for i in list(open_groups):
            take = min(share, sizes[i] - quota[i], left)
            quota[i] += take
            left -= take
            if quota[i] >= sizes[i]:
                open_groups.remove(i)
            if left == 0:
                break
    return quota


def plan(groups: list[Group], n: int, seed: int = 0) -> list[FrameRef]:
    """Which frames to read: `n` (or all there are) spread over the groups, in a seeded shuffled order."""
    rng = np.random.default_rng(seed)
    refs: list[FrameRef] = []
    for group, k in zip(groups, allocate([g.size for g in groups], n)):
        if k == 0:
            continue
        if group.video is not None:
            step = group.frames / k
            indices = np.floor((np.arange(k) + rng.random()) * step).astype(int).clip(0, group.frames - 1)
            refs += [FrameRef(str(group.video), int(i)) for i in np.unique(indices)]
        else:
            chosen = rng.choice(len(group.files), size=k, replace=False)
            refs += [FrameRef(str(group.files[i])) for i in sorted(chosen)]
    return refs


class _VideoReader:
    """Sequential access to one video: grab() through small gaps, seek over large ones."""

    def __init__(self, path: str):
        self.path, self.capture, self.position = path, cv2.VideoCapture(path), 0

    def read(self, index: int) -> np.ndarray | None:
        if index < self.position or index - self.position > SEEK_GAP:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            self.position = index
        while self.position < index and self.capture.grab():
            self.position += 1
        ok, frame = self.capture.read()
        self.position += 1
        return frame if ok else None

    def close(self) -> None:
        self.capture.release()


def read_frames(refs: list[FrameRef]) -> Iterator[tuple[FrameRef, np.ndarray | None]]:
    """Decode the planned frames one at a time, in order (None for unreadable ones).

    A video stays open while consecutive refs use it (plan() emits each video's frames together, in
    increasing order), so only one decoded frame is held at a time.
    """
    video: _VideoReader | None = None
    try:
        for ref in refs:
            if ref.index < 0:
                yield ref, cv2.imread(ref.path, cv2.IMREAD_COLOR)
                continue
            if video is None or video.path != ref.path:
                if video is not None:
                    video.close()
                video = _VideoReader(ref.path)
            yield ref, video.read(ref.index)
    finally:
        if video is not None:
            video.close()


def degenerate(frame: np.ndarray) -> str | None:
    """Why a BGR frame is unfit for calibration ('constant' or 'noise'), or None if it looks like a scene."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    if grey.std() < MIN_STD:
        return "constant"
    a, b = grey[:, :-1].ravel(), grey[:, 1:].ravel()
    corr = np.corrcoef(a, b)[0, 1]
    return "noise" if not np.isfinite(corr) or corr < MIN_NEIGHBOUR_CORR else None


def sample_frames(
    sources: list[str],
    n: int,
    seed: int = 0,
    on_frame: Callable[[], None] | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[list[np.ndarray], list[FrameRef], dict[str, int]]:
    """Read up to n usable frames spread over the sources, shuffled with `seed`.

    `transform` (e.g. the letterbox) is applied to each kept frame as it is read, so full-size frames
    are not all held in memory at once.

    Returns (frames BGR uint8, their FrameRefs, counts {'planned', 'unreadable', 'constant', 'noise'}).
    Raises RoadsightError when nothing is found or most frames are constant or noise.
    """
    if n < 1:
        raise RoadsightError(f"calibrate: --n {n}. Expected at least 1 frame, got {n}.")
    refs = plan(find_groups(sources), n, seed)
    counts = {"planned": len(refs), "unreadable": 0, "constant": 0, "noise": 0}
    frames, kept = [], []
    for ref, frame in read_frames(refs):
        if on_frame is not None:
            on_frame()
        if frame is None:
            counts["unreadable"] += 1
            continue
        reason = degenerate(frame)
        if reason:
            counts[reason] += 1
            continue
        frames.append(transform(frame) if transform is not None else frame)
        kept.append(ref)
    bad = counts["constant"] + counts["noise"]
    if not frames or bad > MAX_DEGENERATE_SHARE * max(len(refs) - counts["unreadable"], 1):
        raise RoadsightError(
            f"calibrate: {bad} of {len(refs)} sampled frames are constant or random noise "
            f"({counts['constant']} constant, {counts['noise']} noise, {counts['unreadable']} unreadable). "
            f"Expected real driving frames, got {len(frames)} usable. INT8 scales from such data are meaningless: "
            "point --source at recorded video or images."
        )
    order = np.random.default_rng(seed + 1).permutation(len(frames))
    return [frames[i] for i in order], [kept[i] for i in order], counts
