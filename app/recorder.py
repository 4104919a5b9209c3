"""The recording of a live source, in its own thread, always from the newest result.

A live source's results go to the JSONL at once; drawing and encoding them must not delay that. The
`Recorder` holds one result at a time: `offer()` replaces a result the thread has not taken yet (counted
in `skipped`), and the thread renders it (`app.sinks.SinkSet` draws it and writes the video, placed by
capture time, and the frame dump) and records its lag (result ready -> written). Files (lossless mode)
do not use it: their sinks write every frame, in order. On Linux the thread runs at the lowest CPU priority
(nice +19: about 1/70 of a normal thread's share when both want the CPU), so on a saturated CPU the
recording, not the results, falls behind.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from engines.perception import Perception

from app.stats import Reservoir

Status = tuple[float, float] | None  # (fps, latency ms) for the overlay
RECORD_NICE = 19  # the recording thread's CPU priority offset: the lowest (results first)


class Recorder:
    """Run `render(frame, perception, status, behind=...)` on the newest offered result, on a thread of its own;
    `behind` is True when results were skipped since the last one rendered."""

    def __init__(self, render: Callable[..., None], name: str = "record"):
        self.render = render
        self.offered = self.skipped = 0
        self.lag_ms = Reservoir()
        self.recent: deque[float] = deque(maxlen=120)
        self.error: BaseException | None = None
        self._slot: tuple | None = None
        self._behind = False  # a result was replaced since the last one rendered
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def offer(self, frame: np.ndarray, perception: Perception, status: Status) -> None:
        """Hand over a result (replacing one not taken yet); raises the thread's error, if it had one."""
        with self._cond:
            if self.error is not None:
                raise self.error
            self.offered += 1
            if self._slot is not None:
                self.skipped += 1
                self._behind = True
            self._slot = (frame, perception, status, time.perf_counter())
            self._cond.notify()

    def _run(self) -> None:
        try:  # Linux: per thread, inherited by the encoder threads OpenCV starts from here
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RECORD_NICE)
        except (AttributeError, OSError):
            pass
        while True:
            with self._cond:
                while self._slot is None and not self._closing:
                    self._cond.wait()
                if self._slot is None:
                    return
                (frame, perception, status, offered), self._slot = self._slot, None
                behind, self._behind = self._behind, False
            try:
                self.render(frame, perception, status, behind=behind)
            except BaseException as error:  # raised to the pipeline by the next offer()
                with self._cond:
                    self.error = error
                return
            lag = (time.perf_counter() - offered) * 1e3
            self.lag_ms.append(lag)
            self.recent.append(lag)

    def recent_lag(self) -> tuple[float, float]:
        """(median, p99) lag in ms over the last ~120 recorded results (0, 0 before the first)."""
        if not self.recent:
            return 0.0, 0.0
        p50, p99 = np.percentile(list(self.recent), [50, 99])
        return float(p50), float(p99)

    def close(self) -> None:
        """Render the result still waiting, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
