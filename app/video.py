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
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from app import cluster as ray_cluster
from app.pipeline import StreamSettings
from app.videoclip import Progress, Settings, Slot, error_row, open_engine, run_job
from app.videojobs import Job, Row, collect_inputs, make_jobs, write_summary
from engines.device import parse_device
from engines.driving import driving_options
from engines.errors import RoadsightError
from engines.media import frame_count


def plan_slots(model: str, device: str, workers: int | None, files: int, threads: int | None = None) -> list[Slot]:
    """Workers that fit the device: CPU cores split among K processes, or one worker per GPU."""
    import os

    from app.sysinfo import gpus

    parsed = parse_device(device)
    kind, plan_file = parsed.kind, Path(model).suffix.lower() in (".engine", ".plan")
    if kind in ("cuda", "tensorrt") or plan_file:
        kind = "cuda" if plan_file or kind == "cpu" else kind  # a TensorRT plan runs on cuda:N
        indices = [parsed.index] if parsed.index is not None else list(range(max(1, len(gpus()))))
        count = min(workers or len(indices), len(indices), max(files, 1))
        cores = os.cpu_count() or 1
        return [Slot(f"{kind}:{i}", threads or max(1, cores // count)) for i in indices[:count]]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    count = max(1, min(workers or max(1, cores // 2), max(files, 1)))
    return [Slot(device if kind == "openvino" else "cpu", threads or max(1, cores // count))] * count

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
    track: bool | None = None, camera: Path | None = None, cluster: str | None = None,
) -> list[Row]:
    """Process every input not finished earlier (on Ray with `cluster`); write OUT/summary.csv; returns the rows."""
    from rich.console import Console

    console = console or Console()
    out = Path(out)
    jobs = make_jobs(collect_inputs(inputs), out, video, jsonl)
    driving = driving_options(track, camera)
    settings = Settings(model=str(model), stream=StreamSettings(device=device, conf=conf, iou=iou, live=False, driving=driving))
    rows: dict[int, Row] = {}
    for job in jobs:
        record = job.finished()
        if record is not None:
            job.clear_partials()  # left by a run killed while redoing it
            rows[job.index] = Row.from_record({**record, "status": "skipped"})
    todo = [job for job in jobs if job.index not in rows]
    if cluster is not None:
        rows.update(ray_cluster.run(cluster, jobs, todo, settings, device, workers, threads, console))
        return _summary(jobs, rows, out)
    slots = plan_slots(str(model), device, workers, len(todo), threads)
    console.print(
        f"video: {len(jobs)} files, {len(jobs) - len(todo)} finished earlier (skipped), {len(todo)} to do; "
        f"{len(slots)} worker(s) on {slots[0].device}, {slots[0].threads} inference thread(s) each", highlight=False,
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
