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

from app.pipeline import Pipeline, StreamSettings
from app.sinks import DumpSink, JsonlSink, SinkSet, VideoSink, WindowSink, check_output, per_source
from app.sources import Source, open_source, quiet_opencv
from app.stats import RunStats, summarize

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
    stream: StreamSettings = field(default_factory=StreamSettings)


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
                    live=source.live,
                )
            )
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def status_table(stats: RunStats, sinks: list[SinkSet] = ()) -> Table:
    """One row per source: state, results, fps, capture-to-result latency and, for a live recording, its
    own lag behind the results (p50/p99 ms), drops, reconnects. Fits an 80-column terminal (a long
    source name is cut short with an ellipsis)."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("source", max_width=18, overflow="ellipsis", no_wrap=True)
    for column in ("state", "frames", "fps", "p50/p99 ms", "rec ms", "drops", "reconn"):
        table.add_column(column, justify="left" if column == "state" else "right", no_wrap=True)
    recorders = [sink.recorder for sink in sinks] or [None] * len(stats.sources)
    for source, recorder in zip(stats.sources, recorders):
        fps, p50, p99 = source.recent_fps_latency()
        lag = "{:.0f}/{:.0f}".format(*recorder.recent_lag()) if recorder else "-"
        table.add_row(
            source.name, source.state, str(source.processed), f"{fps:.1f}", f"{p50:.0f}/{p99:.0f}", lag,
            str(source.dropped), str(source.reconnects),
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
    """'saved out.mp4 (60 frames)'-style lines for the files the run wrote; a live recording also says
    how far it lagged behind the results and which frames it repeated or skipped to keep real time."""
    lines = []
    for sink in sinks:
        video, recorder = sink.video, sink.recorder
        if video and video.frames and recorder is None:
            lines.append(f"saved {video.path} ({video.frames} frames)")
        elif video and video.frames:
            lag = summarize(recorder.lag_ms)
            lines.append(
                f"saved {video.path} ({video.frames} frames at {video.fps:g} fps, real time: {video.results} results, "
                f"{video.frames - video.results} repeats covering gaps, {recorder.skipped + video.paced_out} results "
                f"skipped, {video.unfilled / video.fps:.1f} s left out while behind); recording lag behind the results "
                f"p50 {lag['median']:.1f} / p99 {lag['p99']:.1f} ms"
            )
        if sink.jsonl:
            lines.append(f"saved {sink.jsonl.path} ({sink.jsonl.lines} lines)")
        if sink.dump:
            lines.append(f"saved frames in {sink.dump.folder}")
    return lines


def run(options: RunOptions, console: Console | None = None) -> RunStats:
    """Run the pipeline for `roadsight run`; returns the stats (failed sources are in them).

    Raises RoadsightError for bad arguments (before anything starts), for fatal errors, and when every
    source failed before giving a frame (then no summary is printed and the empty outputs are removed).
    """
    import engines

    console = console or Console(stderr=True)
    if not options.model.is_file():
        raise RoadsightError(
            f"--model {options.model}: no such file. Expected an .onnx, .engine or .pt model, got none. Check the path."
        )
    if options.model.suffix.lower() in (".engine", ".plan"):
        from engines.tensorrt import describe_runtime

        console.print(f"found {describe_runtime('running a .engine')}", highlight=False)
    quiet_opencv()
    settings = options.stream
    sources = [open_source(spec, settings.live) for spec in options.sources]
    sinks = build_sinks(sources, options)

    error: RoadsightError | None = None
    with Live(status_table(RunStats([])), console=console, refresh_per_second=4, transient=True) as live:
        pipeline = Pipeline(
            sources=sources,
            engine_factory=lambda: engines.load(options.model, settings.device),
            sinks=sinks,
            settings=settings,
            log=lambda message: console.print(message, style="yellow", markup=False, highlight=False),
            on_tick=lambda stats: live.update(status_table(stats, sinks)),
        )
        try:
            pipeline.run()
        except RoadsightError as caught:
            error = caught
    stats = pipeline.stats
    if error is None and all(s.failed and not s.processed for s in stats.sources):
        remove_empty_outputs(sinks)
        raise RoadsightError("; ".join(s.error for s in stats.sources))
    console.print(summary_table(stats))
    if (line := warnings_summary(pipeline.driving)) is not None:
        console.print(line, highlight=False)
    for line in outputs_written(sinks):
        console.print(line, highlight=False)
    if error is not None:
        raise error
    return stats


def remove_empty_outputs(sinks: list[SinkSet]) -> None:
    """Delete the JSONL files of a run that wrote nothing (a video without frames is never created)."""
    for sink in sinks:
        if sink.jsonl and not sink.jsonl.lines:
            sink.jsonl.path.unlink(missing_ok=True)
