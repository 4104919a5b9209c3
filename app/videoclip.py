"""One video file through the streaming pipeline: the settings every worker shares, its slot, the per-file work
(`run_job`) and the progress bars fed by its events. Used by `app.video` (local workers) and `app.cluster` (Ray).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from app.pipeline import StreamSettings
from app.videojobs import Job, Row
from engines.errors import RoadsightError
from engines.media import frame_count

Event = tuple[str, int, int]  # ("start", job index, estimated frames) | ("frames", job index, count)


@dataclass(frozen=True)
class Settings:
    """What every worker needs to open its engine and run the pipeline (the device comes from its Slot)."""

    model: str
    stream: StreamSettings = field(default_factory=StreamSettings)


@dataclass(frozen=True)
class Slot:
    """One worker: its device and ONNX Runtime intra-op threads (0: ONNX Runtime's choice)."""

    device: str
    threads: int




def open_engine(settings: Settings, slot: Slot):
    """Open the model on the slot's device (ONNX Runtime with the slot's thread count)."""
    import engines

    options = {"intra_op_threads": slot.threads} if Path(settings.model).suffix.lower() == ".onnx" else {}
    if slot.device.lower().startswith("openvino"):
        options = {"threads": slot.threads}
    return engines.load(settings.model, device=slot.device, **options)


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
    from app.pipeline import LentEngine, Pipeline
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
    start = time.perf_counter()
    pipeline = Pipeline(sources=[source], engine_factory=lambda: LentEngine(engine), sinks=[sinks], settings=settings.stream,
                        log=notes.append, on_tick=tick)
    try:
        stats = pipeline.run(handle_signals=False)
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
    except RoadsightError as error:
        return error_row(job, error)
    except Exception as error:  # a corrupt file may raise anything from OpenCV; the others go on, the traceback is logged
        logging.getLogger(__name__).exception("%s failed", job.source)
        return error_row(job, error)



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
