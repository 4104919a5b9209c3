"""The streaming pipeline: capture -> preprocess -> infer -> postprocess -> sinks, overlapped in threads.

1. One capture thread per source puts frames into a `FrameHub`. Live sources keep only the newest frame
   (an unconsumed frame is replaced and counted as dropped); file sources wait for room (back-pressure,
   nothing lost, in order). Network sources reconnect with back-off until `reconnect_timeout`.
2. The preprocess thread takes up to the engine's batch of frames (round-robin over sources) and letterboxes
   them. With live sources it takes frames only once the engine is free, so a frame never ages in a queue;
   with files only, one batch is prepared while the engine runs the previous one.
3. The infer thread creates the engine (it owns its CUDA context) and runs it.
4. The postprocess thread turns outputs into Perceptions (timestamps captured/preprocessed/inferred/
   postprocessed).
5. The calling thread writes the sinks (a window must live on the main thread) and stamps `written`.

Stop (Ctrl-C, SIGTERM, a window's q, the end of every source) drains: queued frames are finished and every
sink is closed. A fatal error (engine, sink) aborts: the stages stop and the error is raised after the
sinks are closed. One failing source is recorded in its stats and never stops the others.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from engines.base import Engine
from engines.errors import RoadsightError
from engines.predictor import Predictor

from app.sinks import SinkSet
from app.sources import Frame, Source
from app.stats import RunStats, SourceStats

END = None  # queue sentinel
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0, 5.0)  # reconnect delays; the last repeats


@dataclass
class PipelineOptions:
    """conf/iou: detection thresholds; reconnect_timeout: seconds a network source may stay down (0: the
    first drop ends it); file_buffer: frames a file source may read ahead; live_fps: pace for a file
    replayed as a live source when its fps is unknown."""

    conf: float = 0.25
    iou: float = 0.45
    reconnect_timeout: float = 30.0
    file_buffer: int = 8
    live_fps: float = 30.0


class FrameHub:
    """Per-source frame buffers with the two policies, and a round-robin `take` for the preprocess stage."""

    def __init__(self, sources: list[Source], stats: list[SourceStats], capacity: int):
        self.live = [s.live for s in sources]
        self.stats = stats
        self.capacity = capacity
        self.buffers: list[deque[Frame]] = [deque() for _ in sources]
        self.open = [True] * len(sources)
        self.cond = threading.Condition()
        self.start = 0

    def put(self, frame: Frame, stopping: Callable[[], bool]) -> bool:
        """Add a frame (live: replace the unconsumed one; file: wait for room). False when stopping."""
        with self.cond:
            buffer = self.buffers[frame.source_id]
            if self.live[frame.source_id]:
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

    def take(self, limit: int, stopping: Callable[[], bool]) -> list[Frame] | None:
        """Wait for frames and return up to `limit`, one per source per round; None when all are done."""
        with self.cond:
            while True:
                frames: list[Frame] = []
                n = len(self.buffers)
                while len(frames) < limit and any(self.buffers):
                    for k in range(n):
                        buffer = self.buffers[(self.start + k) % n]
                        if buffer and len(frames) < limit:
                            frames.append(buffer.popleft())
                    self.start = (self.start + 1) % n
                if frames:
                    self.cond.notify_all()
                    return frames
                if not any(self.open) or stopping():
                    return None
                self.cond.wait(0.1)


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
        options: PipelineOptions | None = None,
        log: Callable[[str], None] = print,
        on_tick: Callable[[RunStats], None] | None = None,
    ):
        self.sources, self.engine_factory, self.sinks = sources, engine_factory, sinks
        self.options = options or PipelineOptions()
        self.log, self.on_tick = log, on_tick
        self.stats = RunStats([SourceStats(s.name, s.live) for s in sources])
        self.hub = FrameHub(sources, self.stats.sources, self.options.file_buffer)
        self.live_mode = any(s.live for s in sources)
        depth = 1 if self.live_mode else 2
        self.slots = threading.Semaphore(depth)  # batches the infer thread may have waiting
        self.pre_q: queue.Queue = queue.Queue()
        self.infer_q: queue.Queue = queue.Queue(maxsize=depth)
        self.out_q: queue.Queue = queue.Queue(maxsize=2 * depth)
        self.stopping = threading.Event()  # drain and finish
        self.aborted = threading.Event()  # finish now (fatal error or second Ctrl-C)
        self.ready = threading.Event()
        self.error: str | None = None
        self.predictor: Predictor | None = None

    # --- control -------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop capturing; frames already captured are still processed and written."""
        self.stopping.set()

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
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
    def _capture(self, source_id: int) -> None:
        source, stats = self.sources[source_id], self.stats.sources[source_id]
        try:
            source.open()
        except RoadsightError as error:
            stats.state, stats.error = "failed", str(error)
            self.log(str(error))
            self.hub.close(source_id)
            return
        stats.state = "running"
        pace = 1.0 / (source.fps or self.options.live_fps) if source.live and not source.network and source.kind in ("video", "images") else 0.0
        next_time = time.perf_counter()
        try:
            while not self.stopping.is_set():
                image = source.read()
                if image is None:
                    if not self._recover(source, stats):
                        break
                    continue
                if pace:
                    next_time += pace
                    time.sleep(max(0.0, next_time - time.perf_counter()))
                frame = Frame(image, source_id, stats.captured, time.perf_counter())
                stats.captured += 1
                if not self.hub.put(frame, self.stopping.is_set):
                    break
        except Exception as error:  # a broken source must never stop the others
            stats.state, stats.error = "failed", f"{source.name}: {type(error).__name__}: {error}"
            self.log(stats.error)
        finally:
            if stats.state in ("running", "reconnecting"):
                stats.state = "stopped"
            stats.skipped = len(getattr(source, "skipped", ()))
            source.close()
            self.hub.close(source_id)

    def _recover(self, source: Source, stats: SourceStats) -> bool:
        """After a failed read: end, fail, or reconnect a network source. True when frames come again."""
        if source.kind in ("video", "images"):
            stats.state = "ended"
            if source.frame_count and source.kind == "video" and stats.captured < source.frame_count - 1:
                self.log(f"{source.name}: ended at frame {stats.captured} of {source.frame_count} (truncated file?)")
            return False
        if source.kind == "gstreamer":  # end of stream and errors look the same through OpenCV
            stats.state = "ended"
            self.log(f"{source.name}: the pipeline delivered no more frames after frame {stats.captured}")
            return False
        if not source.network:
            stats.state, stats.error = "failed", f"{source.name}: the {source.kind} stopped delivering frames after frame {stats.captured}."
            self.log(stats.error)
            return False
        timeout = self.options.reconnect_timeout
        if timeout <= 0:
            stats.state = "ended"
            self.log(f"{source.name}: stream ended after {stats.captured} frames (reconnect disabled)")
            return False
        stats.state = "reconnecting"
        self.log(f"{source.name}: no frame after frame {stats.captured}; reconnecting for up to {timeout:g} s")
        lost_at = time.perf_counter()
        for attempt in range(10**9):
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
        stats.state, stats.error = "lost", f"{source.name}: stream lost; no frame for {timeout:g} s after frame {stats.captured} (gave up)."
        self.log(stats.error)
        return False

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
                start = time.perf_counter()
                batch, params = predictor.preprocess([f.image for f in frames])
                done = time.perf_counter()
                self.stats.add_busy("preprocess", done - start, len(frames))
                self.pre_q.put((frames, batch, params, done))
        except Exception as error:
            self._fail(f"preprocess: {type(error).__name__}: {error}")
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
            self.predictor = Predictor(engine, self.options.conf, self.options.iou)
            self.ready.set()
            while (item := self._get(self.pre_q)) is not END:
                if not self.live_mode:
                    self.slots.release()  # files: the next batch is prepared while this one runs
                frames, batch, params, preprocessed = item
                start = time.perf_counter()
                outputs = self.predictor.infer(batch)
                inferred = time.perf_counter()
                if self.live_mode:
                    self.slots.release()  # live: take the next (newest) frame only now, so it never waits
                self.stats.add_busy("infer", inferred - start, len(frames))
                if not self._put(self.infer_q, (frames, outputs, params, preprocessed, inferred)):
                    break
        except RoadsightError as error:
            self._fail(str(error))
        except Exception as error:
            self._fail(f"infer: {type(error).__name__}: {error}")
        finally:
            self._put(self.infer_q, END)
            if engine is not None:
                engine.close()

    def _postprocess(self) -> None:
        try:
            if not self._wait_ready():
                return
            while (item := self._get(self.infer_q)) is not END:
                frames, outputs, params, preprocessed, inferred = item
                start = time.perf_counter()
                perceptions = self.predictor.postprocess(outputs, params)
                self.stats.add_busy("postprocess", time.perf_counter() - start, len(frames))
                for frame, perception in zip(frames, perceptions):
                    perception.frame_index = frame.index
                    perception.source = self.sources[frame.source_id].name
                    perception.timestamps = {
                        "captured": frame.captured,
                        "preprocessed": preprocessed,
                        "inferred": inferred,
                        "postprocessed": perception.timestamps["postprocessed"],
                    }
                if not self._put(self.out_q, list(zip(frames, perceptions))):
                    break
        except Exception as error:
            self._fail(f"postprocess: {type(error).__name__}: {error}")
        finally:
            self._put(self.out_q, END)

    def _write(self) -> None:
        """Sink stage, on the calling thread."""
        next_tick = 0.0
        while True:
            try:
                item = self.out_q.get(timeout=0.05)
            except queue.Empty:
                item = ()
            if item is END or self.aborted.is_set():
                break
            for frame, perception in item:
                start = time.perf_counter()
                stats = self.stats.sources[frame.source_id]
                fps, latency, _ = stats.recent_fps_latency()
                try:
                    if not self.sinks[frame.source_id].write(frame.image, perception, (fps, latency) if fps else None):
                        self.stop()  # the window was closed
                except RoadsightError as error:
                    return self._fail(str(error))
                except OSError as error:
                    return self._fail(f"output: {error}")
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
        """Run until every source ends, stop() or a signal; raise RoadsightError on a fatal error."""
        previous = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        workers = [threading.Thread(target=self._infer, name="infer", daemon=True)]
        workers += [threading.Thread(target=self._preprocess, name="preprocess", daemon=True)]
        workers += [threading.Thread(target=self._postprocess, name="postprocess", daemon=True)]
        captures = [threading.Thread(target=self._capture, args=(i,), name=f"capture-{i}", daemon=True) for i in range(len(self.sources))]
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
        if self.error:
            raise RoadsightError(self.error)
        return self.stats
