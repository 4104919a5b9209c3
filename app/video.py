"""`roadsight video`: run one model over many video files, resumably, several files at once.

Each worker owns one engine: on the CPU, K worker processes split the cores (ONNX Runtime intra-op
threads = cores // K); on NVIDIA GPUs, one worker per GPU. With one worker everything runs in this
process. Each file goes through the streaming pipeline of `roadsight run` (app.pipeline: decode,
preprocess, infer, postprocess and sinks overlap in threads; files lose no frame) into an annotated
`NAME.mp4` and/or `NAME.jsonl`, under temporary names renamed when complete (`app.videojobs`).
A file that fails is reported and skipped; the others go on.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from app.videojobs import Job, Row, collect_inputs, make_jobs, write_summary
from engines.errors import RoadsightError

Event = tuple[str, int, int]  # ("start", job index, estimated frames) | ("frames", job index, count)


@dataclass(frozen=True)
class Settings:
    """What every worker needs to open its engine and run the pipeline."""

    model: str
    conf: float = 0.25
    iou: float = 0.45


@dataclass(frozen=True)
class Slot:
    """One worker: its device and ONNX Runtime intra-op threads (0: ONNX Runtime's choice)."""

    device: str
    threads: int


def plan_slots(model: str, device: str, workers: int | None, files: int, threads: int | None = None) -> list[Slot]:
    """Workers that fit the device: CPU cores split among K processes, or one worker per GPU."""
    import os

    from app.sysinfo import gpus

    kind, _, index = device.lower().partition(":")
    plan_file = Path(model).suffix.lower() in (".engine", ".plan")
    if kind in ("cuda", "tensorrt") or plan_file:
        kind = "cuda" if plan_file or kind == "cpu" else kind  # a TensorRT plan runs on cuda:N
        indices = [int(index)] if index else list(range(max(1, len(gpus()))))
        count = min(workers or len(indices), len(indices), max(files, 1))
        cores = os.cpu_count() or 1
        return [Slot(f"{kind}:{i}", threads or max(1, cores // count)) for i in indices[:count]]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    count = max(1, min(workers or max(1, cores // 2), max(files, 1)))
    return [Slot("cpu", threads or max(1, cores // count))] * count


def open_engine(settings: Settings, slot: Slot):
    """Open the model on the slot's device (ONNX Runtime with the slot's thread count)."""
    import engines

    options = {"intra_op_threads": slot.threads} if Path(settings.model).suffix.lower() == ".onnx" else {}
    return engines.load(settings.model, device=slot.device, **options)


def frame_count(path: Path) -> int:
    """Frames the container announces (0 when unknown or unreadable)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    return max(count, 0)


class Tally:
    """Counts what the sinks write: frames, detections and the drivable fraction per frame."""

    def __init__(self, sinks):
        self.sinks = sinks
        self.frames = self.detections = self.drivable_frames = 0
        self.drivable_sum = 0.0

    def write(self, frame, perception, status=None) -> bool:
        self.frames += 1
        self.detections += len(perception)
        if perception.drivable is not None:
            self.drivable_sum += float(perception.drivable.mean())
            self.drivable_frames += 1
        return self.sinks.write(frame, perception, status)

    def close(self) -> None:
        self.sinks.close()


def process(job: Job, engine, settings: Settings, report: Callable[[Event], None]) -> Row:
    """Run one file through the pipeline into partial outputs, then commit them; returns the CSV row."""
    from app.benchpipe import LentEngine
    from app.pipeline import Pipeline, PipelineOptions
    from app.sinks import JsonlSink, SinkSet, VideoSink
    from app.sources import open_source

    source = open_source(str(job.source), live=False)
    report(("start", job.index, frame_count(job.source)))
    job.clear_partials()
    sinks = Tally(SinkSet(
        video=VideoSink(job.partial("mp4"), lambda: source.fps or 30.0) if job.video else None,
        jsonl=JsonlSink(job.partial("jsonl")) if job.jsonl else None,
    ))
    reported = 0

    def tick(stats) -> None:
        nonlocal reported
        done = stats.sources[0].processed
        if done > reported:
            report(("frames", job.index, done - reported))
            reported = done

    notes: list[str] = []
    options = PipelineOptions(conf=settings.conf, iou=settings.iou)
    start = time.perf_counter()
    try:
        stats = Pipeline([source], lambda: LentEngine(engine), [sinks], options, log=notes.append, on_tick=tick).run(handle_signals=False)
    except BaseException:
        job.clear_partials()
        raise
    tick(stats)
    seconds = time.perf_counter() - start
    state = stats.sources[0]
    if state.failed or sinks.frames == 0:
        job.clear_partials()
        reason = state.error or "no frames decoded. Expected a readable video, got an empty or corrupt file."
        raise RoadsightError(reason if reason.startswith(job.source.name) else f"{job.source.name}: {reason}")
    row = Row(
        file=str(job.source), status="ok", frames=sinks.frames, fps=round(sinks.frames / seconds, 2),
        video_fps=round(source.fps or 0.0, 3), detections=sinks.detections, seconds=round(seconds, 3),
        outputs=";".join(job.final(k).name for k in job.kinds),
        mean_drivable_fraction=round(sinks.drivable_sum / sinks.drivable_frames, 4) if sinks.drivable_frames else None,
        error="; ".join(_plain(note) for note in notes),
    )
    job.commit(row)
    return row


def _plain(message: str) -> str:
    """A pipeline log line without rich markup."""
    from rich.text import Text

    return Text.from_markup(message).plain


def error_row(job: Job, error: BaseException) -> Row:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = text if text.startswith(job.source.name) else f"{job.source.name}: {text}"
    return Row(file=str(job.source), status="error", error=text)


def run_job(job: Job, engine, settings: Settings, report: Callable[[Event], None]) -> Row:
    """`process`, with any failure of this one file turned into an error row."""
    try:
        return process(job, engine, settings, report)
    except Exception as error:  # a corrupt file may raise anything from OpenCV; the others must go on
        return error_row(job, error)


# --- worker processes ---------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(settings: Settings, slots: list[Slot], counter, queue) -> None:
    with counter.get_lock():
        number = counter.value
        counter.value += 1
    _WORKER["engine"] = open_engine(settings, slots[number % len(slots)])
    _WORKER["settings"] = settings
    _WORKER["report"] = queue.put


def _worker_job(job: Job) -> Row:
    return run_job(job, _WORKER["engine"], _WORKER["settings"], _WORKER["report"])


class Progress:
    """Overall and per-file rich progress bars (with ETA) fed by worker events."""

    def __init__(self, jobs: list[Job], estimates: dict[int, int], console, skipped: int = 0):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.jobs, self.estimates, self.console = jobs, estimates, console
        self.bars = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)
        self.overall = self.bars.add_task(f"all {skipped}/{len(jobs)} files", total=sum(estimates.values()) or None)
        self.tasks: dict[int, int] = {}
        self.seen: dict[int, int] = {}
        self.finished = skipped

    def __enter__(self) -> "Progress":
        self.bars.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self.bars.__exit__(*exc_info)

    def event(self, event: Event) -> None:
        kind, index, value = event
        if kind == "start" and index not in self.tasks:
            self.tasks[index] = self.bars.add_task(f"  {self.jobs[index].source.name}", total=value or None)
            self.seen[index] = 0
        elif kind == "frames" and index in self.tasks:
            self.seen[index] += value
            self.bars.advance(self.tasks[index], value)
            self.bars.advance(self.overall, value)

    def done(self, job: Job, row: Row) -> None:
        """Close the file's bar, settle the overall count and print one line for the file."""
        task = self.tasks.pop(job.index, None)
        if task is not None:
            self.bars.remove_task(task)
        rest = self.estimates.get(job.index, 0) - self.seen.pop(job.index, 0)
        if rest > 0:
            self.bars.advance(self.overall, rest)
        self.finished += 1
        self.bars.update(self.overall, description=f"all {self.finished}/{len(self.jobs)} files")
        if row.status == "ok":
            self.console.print(f"[green]done[/] {job.source.name}: {row.frames} frames, {row.fps:.1f} fps, {row.detections} detections", highlight=False)
        else:
            self.console.print(f"[red]failed[/] {row.error}", highlight=False)


def _run_pool(todo: list[Job], settings: Settings, slots: list[Slot], progress: Progress) -> dict[int, Row]:
    context = multiprocessing.get_context("spawn")  # no fork after ONNX Runtime/CUDA threads exist
    queue, counter = context.Queue(), context.Value("i", 0)
    rows: dict[int, Row] = {}

    def drain() -> None:
        while not queue.empty():
            try:
                progress.event(queue.get_nowait())
            except Exception:  # queue.Empty races with empty(); nothing left to read
                return

    with ProcessPoolExecutor(len(slots), mp_context=context, initializer=_init_worker,
                             initargs=(settings, slots, counter, queue)) as pool:
        futures = {pool.submit(_worker_job, job): job for job in todo}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                drain()
                for future in finished:
                    job = futures[future]
                    try:
                        rows[job.index] = future.result()
                    except BrokenProcessPool as error:
                        rows[job.index] = error_row(job, RoadsightError(f"worker process died: {error}"))
                    progress.done(job, rows[job.index])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return rows


def run(
    inputs: list[str], model: str, out: Path, video: bool = True, jsonl: bool = True, workers: int | None = None,
    device: str = "cpu", threads: int | None = None, conf: float = 0.25, iou: float = 0.45, console=None,
    cluster: str | None = None,
) -> list[Row]:
    """Process every input not finished earlier (on Ray with `cluster`); write OUT/summary.csv; returns the rows."""
    from rich.console import Console

    console = console or Console()
    out = Path(out)
    jobs = make_jobs(collect_inputs(inputs), out, video, jsonl)
    settings = Settings(str(model), conf, iou)
    rows: dict[int, Row] = {}
    for job in jobs:
        record = job.finished()
        if record is not None:
            job.clear_partials()  # left by a run killed while redoing it
            rows[job.index] = Row.from_record({**record, "status": "skipped"})
    todo = [job for job in jobs if job.index not in rows]
    if cluster is not None:
        from app import cluster as ray_cluster

        rows.update(ray_cluster.run(cluster, jobs, todo, settings, device, workers, threads, console))
        return _summary(jobs, rows, out)
    slots = plan_slots(str(model), device, workers, len(todo), threads)
    console.print(
        f"video: {len(jobs)} files, {len(jobs) - len(todo)} finished earlier (skipped), {len(todo)} to do; "
        f"{len(slots)} worker(s) on {slots[0].device}, {slots[0].threads} ORT thread(s) each", highlight=False,
    )
    if todo:
        out.mkdir(parents=True, exist_ok=True)
        engine = open_engine(settings, slots[0])  # fails early, in one line, on a bad model or device
        if len(slots) > 1:
            engine.close()
        estimates = {job.index: frame_count(job.source) for job in todo}
        try:
            with Progress(jobs, estimates, console, skipped=len(jobs) - len(todo)) as progress:
                if len(slots) == 1:
                    for job in todo:
                        rows[job.index] = run_job(job, engine, settings, progress.event)
                        progress.done(job, rows[job.index])
                else:
                    rows.update(_run_pool(todo, settings, slots, progress))
        except KeyboardInterrupt:
            console.print("interrupted: finished files are kept; rerun the same command to resume.")
            raise
        finally:
            if len(slots) == 1:
                engine.close()
    return _summary(jobs, rows, out)


def _summary(jobs: list[Job], rows: dict[int, Row], out: Path) -> list[Row]:
    ordered = [rows[job.index] for job in jobs]
    write_summary(ordered, out / "summary.csv")
    return ordered
