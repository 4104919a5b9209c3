"""`roadsight predict`: run a model on images, save annotated copies and one JSON per image."""

from __future__ import annotations

import glob
import statistics
from pathlib import Path

import cv2
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from engines.errors import RoadsightError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def image_paths(source: str) -> list[Path]:
    """An image file, a folder (its images, sorted) or a glob pattern -> image paths."""
    path = Path(source)
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
        paths = [path]
    else:
        paths = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise RoadsightError(
            f"--source {source}: no images found. Expected an image file, a folder or a glob of "
            f"{'/'.join(s[1:] for s in IMAGE_SUFFIXES)} files, got none."
        )
    return paths


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
    paths = image_paths(source)
    save_dir.mkdir(parents=True, exist_ok=True)
    records, latencies, skipped = [], [], []
    with engines.load(model, device=device) as engine:
        predictor = engines.Predictor(engine, conf=conf, iou=iou)
        columns = (TextColumn("[bold]predict"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[name]}"), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("predict", total=len(paths), name="")
            for index, path in enumerate(paths):
                progress.update(task, name=path.name)
                frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if frame is None:
                    skipped.append(path.name)
                    progress.advance(task)
                    continue
                [perception] = predictor([frame])
                perception.frame_index, perception.source = index, str(path)
                cv2.imwrite(str(save_dir / path.name), draw(frame, perception))
                (save_dir / f"{path.stem}.json").write_text(perception.to_json(masks=masks) + "\n")
                records.append(perception.to_dict())
                latencies.append(perception.latencies_ms())
                progress.advance(task)
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
