"""`roadsight video --cluster ray`: one task per clip on a Ray cluster (local, `ray start` hosts, KubeRay).

Each worker is a Ray actor that opens the model once (again after a restart) and runs clips through
`app.videoclip.run_job`, the single-machine path: same partial names renamed on success, same completion
records, same rows. A worker process that dies mid-clip is restarted and the clip retried
(`max_restarts`, `max_task_retries`); the retry clears the dead attempt's partial files before writing,
and a clip that fails every attempt has them removed here. Ctrl-C cancels queued clips, kills the
workers and removes partial files; finished clips stay. Inputs, model and OUT must have the same path
on every node (a shared folder or a mounted bucket); URLs such as s3:// are refused.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import deque
from pathlib import Path

from app.videoclip import Progress, Settings, Slot, error_row, open_engine, run_job
from app.videojobs import Job, Row
from engines.device import parse_device
from engines.errors import MissingDependency, RoadsightError
from engines.media import frame_count

RETRIES = 3  # restarts of a dead worker, and retries of the clip it was running


def import_ray():
    """Ray, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingDependency("ray", "roadsight video --cluster ray", "pip install 'roadsight[cluster]'") from None
    return ray


def parse_address(cluster: str) -> str | None:
    """`ray` -> None (RAY_ADDRESS or a local Ray); `ray://HOST:PORT` as given."""
    if cluster == "ray":
        return None
    if cluster.startswith("ray://") and len(cluster) > len("ray://"):
        return cluster
    raise RoadsightError(
        f"--cluster {cluster}: unknown cluster. Expected 'ray' (the cluster at RAY_ADDRESS, else a local Ray) "
        f"or ray://HOST:PORT, got {cluster!r}."
    )


def check_out(out: Path) -> None:
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", str(out)):
        raise RoadsightError(
            f"--out {out}: URLs are not supported with --cluster. Expected a folder every worker can write "
            "(a shared mount, e.g. NFS, or a bucket mounted with s3fs/gcsfuse), got a URL."
        )


class ClipWorker:
    """A Ray actor: one engine on its slot, clips processed one after another."""

    def __init__(self, settings: Settings, slot: Slot):
        self.settings, self.slot = settings, slot
        self.engine = None

    def _engine(self):
        if self.engine is None:
            self.engine = open_engine(self.settings, self.slot)
        return self.engine

    def open(self) -> str:
        """Open the model: '' when it worked, else the one-line reason."""
        try:
            self._engine()
        except Exception as error:  # a bad model or device: reported once by the driver
            return (str(error).strip().splitlines() or [type(error).__name__])[0]
        return ""

    def process(self, job: Job, events) -> Row:
        """Run one clip; progress events go to the driver's `events` queue."""
        return run_job(job, self._engine(), self.settings, events.put_nowait)


def plan_slots(ray, device: str, model: str, workers: int | None, threads: int | None, files: int) -> tuple[list[Slot], dict]:
    """Workers over the cluster and each one's Ray resources: CPU threads, or one GPU each."""
    total = ray.cluster_resources()
    largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node.get("Alive")), default=0)
    kind = parse_device(device).kind
    if kind in ("cuda", "tensorrt") or Path(model).suffix.lower() in (".engine", ".plan"):
        gpus = int(total.get("GPU", 0))
        if not gpus:
            raise RoadsightError(f"--device {device}: the Ray cluster has no GPU. Expected nodes with GPUs, got only CPUs. Use --device cpu.")
        count = min(workers or gpus, max(files, 1))
        kind = "cuda" if kind == "cpu" else kind  # Ray shows each actor its own GPU as index 0
        return [Slot(f"{kind}:0", threads or 1)] * count, {"num_cpus": 1, "num_gpus": 1}
    cpus = int(total.get("CPU", 0))
    count = max(1, min(workers or max(1, cpus // 2), max(files, 1)))
    each = threads or max(1, min(cpus // count, int(largest)))
    if each > largest:
        raise RoadsightError(f"--threads {each}: no Ray node has that many CPUs. Expected at most {int(largest)}, got {each}.")
    return [Slot(device if kind == "openvino" else "cpu", each)] * count, {"num_cpus": each}  # CPU engines


def connect(ray, address: str | None) -> bool:
    """Join the cluster (address, else RAY_ADDRESS, else a new local Ray); True when this run started it."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "local"  # "local": a new Ray, never a stale one
    try:
        ray.init(address=address, include_dashboard=False if address == "local" else None, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as error:  # unreachable, refused, or no Ray Client
        where = "a local Ray" if address == "local" else address
        raise RoadsightError(f"--cluster: cannot reach {where}: {str(error).splitlines()[0]}. Expected a running Ray cluster (ray start --head).") from None
    return True


def run(cluster: str, jobs: list[Job], todo: list[Job], settings: Settings, device: str, workers: int | None,
        threads: int | None, console) -> dict[int, Row]:
    """Process `todo` on Ray with the local path's progress bars; returns the rows by job index."""
    address = parse_address(cluster)
    out = jobs[0].out
    check_out(out)
    if not todo:
        console.print(f"video: {len(jobs)} files, all finished earlier (skipped); Ray not needed", highlight=False)
        return {}
    ray = import_ray()
    out.mkdir(parents=True, exist_ok=True)
    # workers may run in another folder: absolute paths for the model and every output
    todo = [dataclasses.replace(job, out=job.out.resolve()) for job in todo]
    settings = dataclasses.replace(settings, model=os.path.abspath(settings.model))
    started = connect(ray, address)
    try:
        slots, resources = plan_slots(ray, device, settings.model, workers, threads, len(todo))
        console.print(
            f"video: {len(jobs)} files, {len(jobs) - len(todo)} finished earlier (skipped), {len(todo)} to do; "
            f"{len(slots)} Ray worker(s) on {slots[0].device}, {slots[0].threads} inference thread(s) each", highlight=False,
        )
        estimates = {job.index: frame_count(job.source) for job in todo}
        with Progress(jobs, estimates, console, skipped=len(jobs) - len(todo)) as progress:
            return _schedule(ray, todo, settings, slots, resources, progress)
    except KeyboardInterrupt:
        console.print("interrupted: Ray tasks cancelled, finished files are kept; rerun the same command to resume.")
        raise
    finally:
        if started:
            ray.shutdown()


def _schedule(ray, todo: list[Job], settings: Settings, slots: list[Slot], resources: dict, progress: Progress) -> dict[int, Row]:
    """Keep every worker on one clip until none is left; on any interruption stop them and clean up."""
    from ray.util.queue import Queue

    events = Queue()
    worker = ray.remote(ClipWorker).options(max_restarts=RETRIES, max_task_retries=RETRIES, **resources)
    actors = [worker.remote(settings, slot) for slot in slots]
    waiting = deque(todo)
    pending = {actor.open.remote(): (actor, None) for actor in actors}
    rows: dict[int, Row] = {}

    def drain() -> None:
        for event in events.get_nowait_batch(events.qsize()) if events.qsize() else []:
            progress.event(event)

    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.1)
            drain()
            for ref in ready:
                actor, job = pending.pop(ref)
                if job is None:
                    _opened(ray, ref)
                else:
                    rows[job.index], alive = _result(ray, ref, job)
                    progress.done(job, rows[job.index])
                    if not alive:
                        continue  # restarts spent: this worker takes no more clips
                if waiting:
                    job = waiting.popleft()
                    pending[actor.process.remote(job, events)] = (actor, job)
        drain()
        for job in waiting:  # every worker died
            rows[job.index] = error_row(job, RoadsightError(f"no Ray worker left: each died after {RETRIES} restarts"))
            progress.done(job, rows[job.index])
    except BaseException:
        # Clips not started wait here, not in Ray. A running task is stopped by killing its actor, not by
        # ray.cancel: that would resolve its ref at once while the task still runs (and may still create files).
        for actor in actors:
            ray.kill(actor, no_restart=True)
        ray.wait(list(pending), num_returns=len(pending), timeout=30)  # the workers are gone: nothing writes now
        for job in todo:
            if job.index not in rows:
                job.clear_partials()
        raise
    finally:
        events.shutdown(force=True)
    return rows


def _opened(ray, ref) -> None:
    try:
        reason = ray.get(ref)
    except ray.exceptions.RayError as error:
        reason = f"a Ray worker could not start: {(str(error).strip().splitlines() or [type(error).__name__])[0]}"
    if reason:
        raise RoadsightError(reason)


def _result(ray, ref, job: Job) -> tuple[Row, bool]:
    """The clip's row and whether its worker lives on; a clip that failed in Ray leaves no partial files."""
    try:
        return ray.get(ref), True
    except ray.exceptions.RayError as error:
        job.clear_partials()
        alive = not isinstance(error, ray.exceptions.RayActorError)
        return error_row(job, RoadsightError(f"Ray worker failed: {error}")), alive
