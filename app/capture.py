"""Capture: one thread per source feeding a `FrameHub` with the live or the file policy.

Live sources keep only the newest frame (an unconsumed frame is replaced and counted as dropped); file
sources wait for room (back-pressure: nothing lost, in order). A file replayed as live is paced at its fps.
What a read without a frame means comes from the source (`Source.on_empty`): the end, a failure, or a
drop that is reconnected with back-off until `reconnect_timeout`; no source stops the others.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engines.errors import RoadsightError

from app.sources import OnEmpty, Source
from app.stats import SourceStats

BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0, 5.0)  # reconnect delays; the last repeats
logger = logging.getLogger(__name__)


@dataclass
class Frame:
    """One captured frame: which source (`source_id`), its index in that source, and when it arrived."""

    image: np.ndarray
    source_id: int
    index: int
    captured: float  # time.perf_counter()


class FrameHub:
    """Per-source frame buffers with the two policies, and a fair `take` for the preprocess stage."""

    def __init__(self, sources: list[Source], stats: list[SourceStats], capacity: int):
        self.sources = sources
        self.stats = stats
        self.capacity = capacity
        self.buffers: list[deque[Frame]] = [deque() for _ in sources]
        self.open = [True] * len(sources)
        self.cond = threading.Condition()
        self.due = set(range(len(sources)))  # sources not served yet in this round

    def put(self, frame: Frame, stopping: Callable[[], bool]) -> bool:
        """Add a frame (live: replace the unconsumed one; file: wait for room). False when stopping."""
        with self.cond:
            buffer = self.buffers[frame.source_id]
            if self.sources[frame.source_id].live:
                if buffer:
                    buffer.popleft()
                    self.stats[frame.source_id].dropped += 1
            else:
                while len(buffer) >= self.capacity and not stopping():
                    self.cond.wait(0.1)
                if stopping():
                    return False
            buffer.append(frame)
            self.cond.notify_all()
            return True

    def close(self, source_id: int) -> None:
        """No more frames from this source."""
        with self.cond:
            self.open[source_id] = False
            self.cond.notify_all()

    def _candidates(self) -> list[int]:
        """Sources with a frame that may go next: those not served yet in this round, or, when none of them
        has a frame, every source with one (the round then restarts: work-conserving)."""
        ready = [i for i, buffer in enumerate(self.buffers) if buffer]
        return [i for i in ready if i in self.due] or ready

    def _next(self) -> int | None:
        """The source to take from: one per source per round; the freshest live frame first, then files in
        source order."""
        candidates = self._candidates()
        if not candidates:
            return None
        if not self.due.intersection(candidates):
            self.due = set(range(len(self.buffers)))
        pick = max(candidates, key=lambda i: (True, self.buffers[i][-1].captured) if self.sources[i].live else (False, -i))
        self.due.discard(pick)
        return pick

    def _fresher_in(self) -> float:
        """Seconds to wait for a fresher frame: when every candidate frame is live and older than half its
        source's frame interval (the next one is then closer than the one waiting is old), until the next is
        due plus half an interval of slack for a late read; else 0. A source that has ended sends no fresher
        frame, so its last one is never waited on."""
        now, due_in = time.perf_counter(), []
        for i in self._candidates():
            source, captured = self.sources[i], self.buffers[i][-1].captured
            interval = 1.0 / source.fps if source.live and source.fps and self.open[i] else None
            if interval is None or now - captured <= interval / 2:
                return 0.0  # a file's frame, a live frame of unknown pace, an ended source's or a fresh one
            due_in.append(captured + 1.5 * interval - now)
        return max(min(due_in), 0.0) if due_in else 0.0

    def take(self, limit: int, stopping: Callable[[], bool]) -> list[Frame] | None:
        """Wait for frames and return up to `limit` (see `_next` for the order); None when all are done.

        For live sources this keeps results close to the present when the engine cannot run every frame:
        each source still gets its turn each round, the freshest frame goes first, and when every waiting
        frame is more than half a frame interval old the engine waits (at most until the next frame is due)
        for a newer one rather than spend a whole inference on a stale frame.
        """
        with self.cond:
            if (wait := self._fresher_in()) > 0:
                end = time.perf_counter() + wait
                while (left := end - time.perf_counter()) > 0 and self._fresher_in() > 0 and not stopping():
                    self.cond.wait(left)  # put() wakes it
            while True:
                frames: list[Frame] = []
                while len(frames) < limit and (pick := self._next()) is not None:
                    frames.append(self.buffers[pick].popleft())
                if frames:
                    self.cond.notify_all()
                    return frames
                if not any(self.open) or stopping():
                    return None
                self.cond.wait(0.1)


class Capture:
    """The capture loop of one source (a thread target): open, read, pace, hand over, recover, close."""

    def __init__(
        self,
        source: Source,
        source_id: int,
        stats: SourceStats,
        hub: FrameHub,
        stopping: threading.Event,
        reconnect_timeout: float,
        live_fps: float,
        log: Callable[[str], None],
    ):
        self.source, self.source_id, self.stats, self.hub = source, source_id, stats, hub
        self.stopping, self.reconnect_timeout, self.live_fps, self.log = stopping, reconnect_timeout, live_fps, log

    def __call__(self) -> None:
        source, stats, source_id = self.source, self.stats, self.source_id
        try:
            source.open()
        except RoadsightError as error:  # reported once, by the run's end (the status shows 'failed')
            stats.state, stats.error = "failed", str(error)
            self.hub.close(source_id)
            return
        stats.state = "running"
        replayed = source.live and source.recording  # a file played as a camera: paced at its fps
        pace = 1.0 / (source.fps or self.live_fps) if replayed else 0.0
        next_time = time.perf_counter()
        try:
            while not self.stopping.is_set():
                image = source.read()
                if image is None:
                    if not self._recover():
                        break
                    continue
                if pace:
                    next_time += pace
                    time.sleep(max(0.0, next_time - time.perf_counter()))
                frame = Frame(image=image, source_id=source_id, index=stats.captured, captured=time.perf_counter())
                stats.captured += 1
                if not self.hub.put(frame, self.stopping.is_set):
                    break
        except Exception as error:  # a broken source must never stop the others; its traceback goes to the log
            stats.state, stats.error = "failed", f"{source.name}: {type(error).__name__}: {error}"
            logger.exception("capture of %s failed", source.name)
        finally:
            if stats.state in ("running", "reconnecting"):
                stats.state = "stopped"
            stats.skipped = len(getattr(source, "skipped", ()))
            source.close()
            self.hub.close(source_id)

    def _recover(self) -> bool:
        """After a failed read: end, fail, or reconnect a network source. True when frames come again."""
        source, stats = self.source, self.stats
        if source.on_empty is OnEmpty.END:
            stats.state = "ended"
            if note := source.early_end(stats.captured):
                self.log(note)
            return False
        if source.on_empty is OnEmpty.FAIL:
            stats.state = "failed"
            stats.error = f"{source.name}: the {source.kind} stopped delivering frames after frame {stats.captured}."
            self.log(stats.error)
            return False
        timeout = self.reconnect_timeout
        if timeout <= 0:
            stats.state = "ended"
            self.log(f"{source.name}: stream ended after {stats.captured} frames (reconnect disabled)")
            return False
        stats.state = "reconnecting"
        self.log(f"{source.name}: no frame after frame {stats.captured}; reconnecting for up to {timeout:g} s")
        lost_at = time.perf_counter()
        for attempt in itertools.count():
            elapsed = time.perf_counter() - lost_at
            if self.stopping.is_set() or elapsed >= timeout:
                break
            if source.reopen(timeout - elapsed):
                gap = time.perf_counter() - lost_at
                stats.reconnects += 1
                stats.gap_s += gap
                stats.state = "running"
                self.log(f"{source.name}: reconnected after {gap:.1f} s")
                return True
            delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            self.stopping.wait(min(delay, max(0.0, timeout - (time.perf_counter() - lost_at))))
        if self.stopping.is_set():
            stats.state = "stopped"
            return False
        stats.state = "lost"
        stats.error = f"{source.name}: stream lost; no frame for {timeout:g} s after frame {stats.captured} (gave up)."
        self.log(stats.error)
        return False
