"""`roadsight predict`: run a model on images, save annotated copies and one JSON per image.

The images come from the same `ImageSource` as `roadsight run` (a file, a folder or a glob)."""

from __future__ import annotations

import statistics
from pathlib import Path

import cv2
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.sources import ImageSource, open_source
from engines.errors import RoadsightError


def run_predict(
    model: Path,
    source: str,
    save_dir: Path,
    conf: float = 0.25,
    iou: float = 0.45,
    device: str = "cpu",
    masks: bool = False,
    console: Console | None = None,
) -> list[dict]:
    """Predict every image of `source`; write SAVE_DIR/NAME (annotated) and SAVE_DIR/STEM.json. Returns the records."""
    import engines
    from engines.draw import draw

    console = console or Console()
    images = open_source(source, live=False)
    if not isinstance(images, ImageSource):
        raise RoadsightError(
            f"--source {source}: not an image, folder or glob of images. Expected images, got a {images.kind}. "
            "Use `roadsight run` for videos, cameras and streams."
        )
    save_dir.mkdir(parents=True, exist_ok=True)
    records, latencies = [], []
    with engines.load(model, device=device) as engine:
        predictor = engines.Predictor(engine, conf=conf, iou=iou)
        columns = (TextColumn("[bold]predict"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[name]}"), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("predict", total=len(images.paths), name="")
            images.open()
            while (frame := images.read()) is not None:
                path = images.current
                progress.update(task, name=path.name, completed=images.position)
                [perception] = predictor([frame])
                perception.frame_index, perception.source = images.position - 1, str(path)
                cv2.imwrite(str(save_dir / path.name), draw(frame, perception))
                (save_dir / f"{path.stem}.json").write_text(perception.to_json(masks=masks) + "\n")
                records.append(perception.to_dict())
                latencies.append(perception.latencies_ms())
    skipped = [p.name for p in images.skipped]
    _summary(console, engine, records, latencies, skipped, save_dir)
    return records


def _summary(console: Console, engine, records: list[dict], latencies: list[dict], skipped: list[str], save_dir: Path) -> None:
    detections = sum(len(r["detections"]) for r in records)
    console.print(
        f"[bold]{len(records)}[/] images, [bold]{detections}[/] detections with {engine.path.name} "
        f"({engine.backend}, {engine.meta.precision}, input {engine.meta.imgsz[1]}x{engine.meta.imgsz[0]})"
    )
    if latencies:
        medians = ", ".join(f"{k} {statistics.median(l[k] for l in latencies):.1f}" for k in latencies[0])
        console.print(f"median ms per image (time since the previous stage): {medians}")
    if skipped:
        console.print(f"[yellow]skipped {len(skipped)} unreadable file(s):[/] {', '.join(skipped[:5])}")
    console.print(f"results in [bold]{save_dir}[/] (annotated images + one JSON per image)")
