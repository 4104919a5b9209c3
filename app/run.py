"""`roadsight run`: sources -> pipeline -> sinks, with a live status line and a summary at the end."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from engines.driving import warnings_summary
from engines.errors import RoadsightError

from app.pipeline import Pipeline, PipelineOptions
from app.sinks import DumpSink, JsonlSink, SinkSet, VideoSink, WindowSink, check_output, per_source
from app.sources import Source, open_source, quiet_opencv
from app.stats import RunStats

DEFAULT_FPS = 30.0


@dataclass
class RunOptions:
    """Everything `roadsight run` takes (see its --help)."""

    model: Path
    sources: list[str]
    show: bool = False
    save: Path | None = None
    jsonl: Path | None = None
    dump_dir: Path | None = None
    conf: float = 0.25
    iou: float = 0.45
    live: bool | None = None
    reconnect_timeout: float = 30.0
    device: str = "cpu"
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)


def build_sinks(sources: list[Source], options: RunOptions) -> list[SinkSet]:
    """Check every output path first, then open one SinkSet per source (suffix _i with several)."""
    n = len(sources)
    plan = []
    for i, source in enumerate(sources):
        save, jsonl, dump = (per_source(p, i, n) for p in (options.save, options.jsonl, options.dump_dir))
        for path, option, folder in ((save, "--save", False), (jsonl, "--jsonl", False), (dump, "--dump-dir", True)):
            if path is not None:
                check_output(path, option, folder)
        plan.append((source, save, jsonl, dump))
    sinks: list[SinkSet] = []
    try:
        for source, save, jsonl, dump in plan:
            video = None
            if save is not None:
                video = VideoSink(save, lambda s=source: s.fps or DEFAULT_FPS, real_time=source.live)
            sinks.append(
                SinkSet(
                    video=video,
                    jsonl=JsonlSink(jsonl) if jsonl else None,
                    dump=DumpSink(dump) if dump else None,
                    window=WindowSink(f"roadsight: {source.name}") if options.show else None,
                )
            )
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def status_table(stats: RunStats) -> Table:
    """One line per source: state, fps, capture-to-result latency (median/p99), drops, reconnects."""
    table = Table(box=None, show_header=False, pad_edge=False)
    for source in stats.sources:
        fps, p50, p99 = source.recent_fps_latency()
        table.add_row(
            Text(source.name, style="bold"),
            source.state,
            f"{source.processed} frames",
            f"{fps:5.1f} fps",
            f"latency {p50:.0f}/{p99:.0f} ms (median/p99)",
            f"drops {source.dropped}",
            f"reconnects {source.reconnects}",
        )
    return table


def summary_table(stats: RunStats) -> Group:
    """The end-of-run summary: per source, then pipeline vs model throughput and per-stage times."""
    summary = stats.summary()
    table = Table(title="roadsight run (latency: capture to result)", title_justify="left")
    for column in ("source", "state", "frames", "drops", "skips", "reconn.", "gap s", "fps", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("source", "state") else "right")
    for row in summary["sources"]:
        latency = row["latency_ms"]
        table.add_row(
            row["name"],
            row["state"],
            f"{row['processed']}/{row['captured']}",
            str(row["dropped"]),
            str(row["skipped"]),
            str(row["reconnects"]),
            f"{row['gap_s']:.1f}",
            f"{row['fps']:.1f}",
            *((f"{latency[k]:.1f}" if latency["count"] else "-") for k in ("median", "p90", "p99")),
        )
    work = summary["work_ms_per_frame"]
    stage_medians = []
    for source in stats.sources:  # the first source with results: the stages are shared
        stage_medians = [f"{stage} {statistics.median(v):.1f}" for stage, v in source.stage_ms.items() if v]
        if stage_medians:
            break
    lines = [
        f"pipeline {summary['fps']:.1f} fps end-to-end over {summary['wall_s']:.1f} s; model alone "
        f"{summary['model_fps']:.1f} fps (infer {work['infer']:.2f} ms/frame, {summary['batches']} batches)",
        f"work per frame: preprocess {work['preprocess']:.2f} + postprocess {work['postprocess']:.2f} = "
        f"{summary['pre_post_ms']:.2f} ms, sinks {work['sinks']:.2f} ms",
    ]
    if stage_medians:
        lines.append("stage latency median (ms since previous stage): " + ", ".join(stage_medians))
    return Group(table, *(Text(line) for line in lines))


def outputs_written(sinks: list[SinkSet]) -> list[str]:
    """'saved out.mp4 (60 frames)'-style lines for the files the run wrote."""
    lines = []
    for sink in sinks:
        if sink.video and sink.video.frames:
            lines.append(f"saved {sink.video.path} ({sink.video.frames} frames)")
        if sink.jsonl:
            lines.append(f"saved {sink.jsonl.path} ({sink.jsonl.lines} lines)")
        if sink.dump:
            lines.append(f"saved frames in {sink.dump.folder}")
    return lines


def run(options: RunOptions, console: Console | None = None) -> RunStats:
    """Run the pipeline for `roadsight run`; returns the stats (failed sources are in them).

    Raises RoadsightError for bad arguments (before anything starts) and for fatal errors.
    """
    import engines

    console = console or Console(stderr=True)
    if not options.model.is_file():
        raise RoadsightError(
            f"--model {options.model}: no such file. Expected an .onnx, .engine or .pt model, got none. Check the path."
        )
    quiet_opencv()
    sources = [open_source(spec, options.live) for spec in options.sources]
    sinks = build_sinks(sources, options)
    options.pipeline.conf, options.pipeline.iou = options.conf, options.iou
    options.pipeline.reconnect_timeout = options.reconnect_timeout

    error: RoadsightError | None = None
    with Live(status_table(RunStats([])), console=console, refresh_per_second=4, transient=True) as live:
        pipeline = Pipeline(
            sources,
            lambda: engines.load(options.model, options.device),
            sinks,
            options.pipeline,
            log=lambda message: console.print(message, style="yellow", markup=False, highlight=False),
            on_tick=lambda stats: live.update(status_table(stats)),
        )
        try:
            pipeline.run()
        except RoadsightError as caught:
            error = caught
    console.print(summary_table(pipeline.stats))
    if (line := warnings_summary(pipeline.driving)) is not None:
        console.print(line, highlight=False)
    for line in outputs_written(sinks):
        console.print(line, highlight=False)
    if error is not None:
        raise error
    return pipeline.stats
