"""The streaming pipeline: capture -> preprocess -> infer -> postprocess -> sinks, overlapped in threads.

1. One capture thread per source (app/capture.py) puts frames into a `FrameHub`. Live sources keep only the newest frame
   (an unconsumed frame is replaced and counted as dropped); file sources wait for room (back-pressure,
   nothing lost, in order). Network sources reconnect with back-off until `reconnect_timeout`.
2. The preprocess thread takes up to the engine's batch of frames (one per source per round; live frames
   freshest first, and a stale one only after a short wait for its successor: `FrameHub.take`) and letterboxes
   them. With live sources it takes frames only once the engine is free, so a frame never ages in a queue;
   with files only, one batch is prepared while the engine runs the previous one.
3. The infer thread creates the engine (it owns its CUDA context) and runs it.
4. The postprocess thread turns outputs into Perceptions.
5. The calling thread writes the sinks (a window must live on the main thread).

One `Batch` travels through every queue; it stamps when each stage finished and is the only place a
Perception gets its frame index, source name and timestamps (`engines.perception.STAGES`).
Stop (Ctrl-C, SIGTERM, a window's q, the end of every source) drains: queued frames are finished and every
sink is closed. A fatal error aborts: the stages stop and the error is raised after the sinks are closed —
a RoadsightError as its one line, anything else (a bug) with its traceback. One failing source is recorded
in its stats and never stops the others.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engines.base import Engine
from engines.driving import DrivingOptions, driving_stages
from engines.errors import RoadsightError
from engines.perception import Perception
from engines.predictor import Predictor
from engines.preprocess import Letterbox

from app.capture import Capture, Frame, FrameHub
from app.sinks import SinkSet
from app.sources import Source
from app.stats import RunStats, SourceStats

END = None  # queue sentinel


@dataclass(frozen=True)
class StreamSettings:
    """How frames are run, shared by `run`, `demo`, `video` and `bench`.

    device: where the model runs (`engines.device`); conf/iou: detection thresholds; live: force the
    newest-frame (True) or every-frame (False) policy, None: by source; reconnect_timeout: seconds a
    network source may stay down (0: the first drop ends it); file_buffer: frames a file source may read
    ahead; live_fps: pace of a file replayed as live when its fps is unknown.
    """

    device: str = "cpu"
    conf: float = 0.25
    iou: float = 0.45
    live: bool | None = None
    reconnect_timeout: float = 30.0
    file_buffer: int = 8
    live_fps: float = 30.0
    driving: DrivingOptions | None = None  # track ids, lanes, ego facts after Perception (engines/driving.py)


@dataclass
class Batch:
    """Frames on their way through the stages (the item of every queue) and when each stage finished."""

    frames: list[Frame]
    tensor: np.ndarray | None = None  # preprocess ->
    params: list[Letterbox] = field(default_factory=list)
    outputs: dict[str, np.ndarray] | None = None  # infer ->
    perceptions: list[Perception] = field(default_factory=list)  # postprocess ->
    stamps: dict[str, float] = field(default_factory=dict)

    def stamp(self, stage: str) -> float:
        """Record that the batch finished `stage` now; returns the time."""
        self.stamps[stage] = now = time.perf_counter()
        return now

    def finish(self, perceptions: list[Perception], source_names: list[str]) -> None:
        """Attach the Perceptions: each gets its frame's index, source name and timestamps."""
        for frame, perception in zip(self.frames, perceptions):
            perception.frame_index, perception.source = frame.index, source_names[frame.source_id]
            perception.stamp("captured", frame.captured)
            for stage, at in self.stamps.items():
                perception.stamp(stage, at)
        self.perceptions = perceptions


class LentEngine:
    """An open engine lent to one pipeline run: the pipeline's close() leaves it open for the next."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def close(self) -> None:
        """The owner closes the engine."""


class Pipeline:
    """Run `sources` through one engine into per-source `sinks`; `run()` returns the RunStats.

    engine_factory is called in the infer thread (e.g. `lambda: engines.load(path, device)`); log
    receives one-line messages; on_tick(stats) is called about 4 times a second from the calling thread.
    """

    def __init__(
        self,
        sources: list[Source],
        engine_factory: Callable[[], Engine],
        sinks: list[SinkSet],
        settings: StreamSettings | None = None,
        log: Callable[[str], None] = print,
        on_tick: Callable[[RunStats], None] | None = None,
    ):
        self.sources, self.engine_factory, self.sinks = sources, engine_factory, sinks
        self.settings = settings or StreamSettings()
        self.log, self.on_tick = log, on_tick
        self.names = [s.name for s in sources]
        self.stats = RunStats([SourceStats(s.name, s.live) for s in sources])
        self.hub = FrameHub(sources, self.stats.sources, self.settings.file_buffer)
        self.live_mode = any(s.live for s in sources)
        depth = 1 if self.live_mode else 2
        self.slots = threading.Semaphore(depth)  # batches the infer thread may have waiting
        self.pre_q: queue.Queue[Batch | None] = queue.Queue()
        self.infer_q: queue.Queue[Batch | None] = queue.Queue(maxsize=depth)
        self.out_q: queue.Queue[Batch | None] = queue.Queue(maxsize=2 * depth)
        self.stopping = threading.Event()  # drain and finish
        self.aborted = threading.Event()  # finish now (fatal error or second Ctrl-C)
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.predictor: Predictor | None = None
        self.driving = driving_stages(self.settings.driving, sources)

    # --- control -------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop capturing; frames already captured are still processed and written."""
        self.stopping.set()

    def _fail(self, error: BaseException) -> None:
        """Abort the run; `run()` raises the first error (a RoadsightError's one line, a bug's traceback)."""
        if self.error is None:
            self.error = error
        self.stopping.set()
        self.aborted.set()

    def _put(self, q: queue.Queue, item) -> bool:
        """Blocking put that gives up when the run is aborted."""
        while not self.aborted.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue):
        """Blocking get that returns END when the run is aborted."""
        while not self.aborted.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return END

    # --- stages --------------------------------------------------------------------------------------
    def _capture(self, source_id: int) -> Capture:
        settings = self.settings
        return Capture(
            source=self.sources[source_id],
            source_id=source_id,
            stats=self.stats.sources[source_id],
            hub=self.hub,
            stopping=self.stopping,
            reconnect_timeout=settings.reconnect_timeout,
            live_fps=settings.live_fps,
            log=self.log,
        )

    def _preprocess(self) -> None:
        try:
            if not self._wait_ready():
                return
            predictor = self.predictor
            limit = predictor.max_batch or len(self.sources)
            while not self.aborted.is_set():
                if not self.slots.acquire(timeout=0.1):
                    continue
                frames = self.hub.take(limit, self.stopping.is_set)
                if frames is None:
                    break
                batch = Batch(frames)
                start = time.perf_counter()
                batch.tensor, batch.params = predictor.preprocess([f.image for f in frames])
                self.stats.add_busy("preprocess", batch.stamp("preprocessed") - start, len(frames))
                self.pre_q.put(batch)
        except Exception as error:
            self._fail(error)
        finally:
            self.pre_q.put(END)

    def _wait_ready(self) -> bool:
        while not self.ready.wait(0.1):
            if self.aborted.is_set():
                return False
        return True

    def _infer(self) -> None:
        engine = None
        try:
            engine = self.engine_factory()
            self.predictor = Predictor(engine, self.settings.conf, self.settings.iou)
            self.ready.set()
            while (batch := self._get(self.pre_q)) is not END:
                if not self.live_mode:
                    self.slots.release()  # files: the next batch is prepared while this one runs
                start = time.perf_counter()
                batch.outputs, batch.tensor = self.predictor.infer(batch.tensor), None
                inferred = batch.stamp("inferred")
                if self.live_mode:
                    self.slots.release()  # live: take the next (newest) frame only now, so it never waits
                self.stats.add_busy("infer", inferred - start, len(batch.frames))
                if not self._put(self.infer_q, batch):
                    break
        except Exception as error:
            self._fail(error)
        finally:
            self._put(self.infer_q, END)
            if engine is not None:
                engine.close()

    def _postprocess(self) -> None:
        try:
            if not self._wait_ready():
                return
            while (batch := self._get(self.infer_q)) is not END:
                start = time.perf_counter()
                perceptions = self.predictor.postprocess(batch.outputs, batch.params)
                self.stats.add_busy("postprocess", batch.stamp("postprocessed") - start, len(batch.frames))
                batch.finish(perceptions, self.names)
                for frame, perception in zip(batch.frames, perceptions):
                    if self.driving[frame.source_id] is not None:
                        self._drive(frame, perception)
                batch.outputs = None
                if not self._put(self.out_q, batch):
                    break
        except Exception as error:
            self._fail(error)
        finally:
            self._put(self.out_q, END)

    def _drive(self, frame, perception) -> None:
        """The driving stage of the frame's source; its parts are timed as stages track, lanes and ego."""
        source = self.sources[frame.source_id]
        timestamp = frame.captured if source.live else frame.index / (source.fps or self.settings.live_fps)
        perception.driving = self.driving[frame.source_id].update(perception, timestamp)
        for stage, ms in perception.driving.timing_ms.items():
            self.stats.add_busy(stage, ms / 1e3, 1)

    def _write(self) -> None:
        """Sink stage, on the calling thread."""
        next_tick = 0.0
        while True:
            try:
                batch = self.out_q.get(timeout=0.05)
            except queue.Empty:
                batch = Batch([])
            if batch is END or self.aborted.is_set():
                break
            for frame, perception in zip(batch.frames, batch.perceptions):
                start = time.perf_counter()
                stats = self.stats.sources[frame.source_id]
                fps, latency, _ = stats.recent_fps_latency()
                try:
                    if not self.sinks[frame.source_id].write(frame.image, perception, (fps, latency) if fps else None):
                        self.stop()  # the window was closed
                except OSError as error:  # a full disk, a vanished folder: the user's to fix
                    failure = RoadsightError(f"output: {error}. Expected room and permission to write, got this error.")
                    failure.__cause__ = error
                    return self._fail(failure)
                except Exception as error:
                    return self._fail(error)
                stats.add_result(perception.timestamps)
                self.stats.add_busy("sinks", time.perf_counter() - start, 1)
            if self.on_tick and time.perf_counter() >= next_tick:
                next_tick = time.perf_counter() + 0.25
                self.on_tick(self.stats)

    # --- run -----------------------------------------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        if self.stopping.is_set():
            self.log("second interrupt: aborting without draining")
            self.aborted.set()
        else:
            self.log(f"{signal.Signals(signum).name}: stopping; finishing queued frames (again to abort)")
            self.stop()

    def run(self, handle_signals: bool = True) -> RunStats:
        """Run until every source ends, stop() or a signal; raise the first fatal error after closing the sinks."""
        previous = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        workers = [threading.Thread(target=self._infer, name="infer", daemon=True)]
        workers += [threading.Thread(target=self._preprocess, name="preprocess", daemon=True)]
        workers += [threading.Thread(target=self._postprocess, name="postprocess", daemon=True)]
        captures = [
            threading.Thread(target=self._capture(i), name=f"capture-{i}", daemon=True) for i in range(len(self.sources))
        ]
        self.stats.started = time.perf_counter()
        try:
            workers[0].start()
            while not self.ready.wait(0.05) and not self.aborted.is_set():
                pass
            if not self.aborted.is_set():
                for thread in captures + workers[1:]:
                    thread.start()
                self._write()
        finally:
            self.stopping.set()
            self.aborted.set()
            for thread in workers:
                if thread.is_alive():
                    thread.join(timeout=5)
            for sink in self.sinks:
                sink.close()
            self.stats.ended = time.perf_counter()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for thread in captures:  # a capture blocked in a network read ends on its own (daemon)
                if thread.is_alive():
                    thread.join(timeout=0.5)
        if self.error is not None:
            raise self.error
        return self.stats
