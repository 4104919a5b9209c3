"""Bookkeeping for `roadsight video`: which files, where their outputs go, what is finished, the CSV.

Outputs of an input `NAME.ext` in OUT: `NAME.mp4` (annotated video) and/or `NAME.jsonl` (one
Perception per frame). They are written as `NAME.part.mp4` / `NAME.part.jsonl` and renamed when the
file is complete; then `OUT/.done/NAME.json` records the file's summary. A file counts as finished
when its record exists and lists every output now asked for, so a killed run leaves only `.part`
files, which the next run overwrites.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from engines.errors import RoadsightError
from engines.media import VIDEO_SUFFIXES, expand

DONE_DIR = ".done"
CSV_FIELDS = ("file", "status", "frames", "fps", "video_fps", "detections", "mean_drivable_fraction",
              "seconds", "outputs", "error")


def collect_inputs(items: list[str]) -> list[Path]:
    """Folders (videos inside, recursively), globs, .txt lists (one path a line) and files -> unique paths."""
    paths: list[Path] = []
    for item in items:
        found = expand(item, VIDEO_SUFFIXES)
        if found is None:
            raise RoadsightError(
                f"{item}: no such file, folder or pattern. Expected a video, a folder of videos, a glob or a .txt list, "
                "got nothing there."
            )
        if not found:
            raise RoadsightError(f"{item}: no videos found. Expected files ending in {', '.join(VIDEO_SUFFIXES[:5])}, ..., got none.")
        paths.extend(found)
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    if not unique:
        raise RoadsightError("video: no inputs. Expected one or more videos, folders, globs or lists, got none.")
    return unique


def output_stems(paths: list[Path]) -> list[str]:
    """One output name per input: the file stem, prefixed with parent folders where stems collide."""
    stems = [p.stem for p in paths]
    out = []
    for path, stem in zip(paths, stems):
        if stems.count(stem) > 1:
            parents = [part for part in path.parent.parts[-2:] if part not in ("/", "")]
            stem = "_".join([*parents, path.stem])
        out.append(stem)
    return out


@dataclass
class Job:
    """One input file and its outputs under `out`."""

    index: int
    source: Path
    stem: str
    out: Path
    video: bool
    jsonl: bool

    def final(self, kind: str) -> Path:
        return self.out / f"{self.stem}.{kind}"

    def partial(self, kind: str) -> Path:
        return self.out / f"{self.stem}.part.{kind}"

    @property
    def kinds(self) -> list[str]:
        return [kind for kind, wanted in (("mp4", self.video), ("jsonl", self.jsonl)) if wanted]

    @property
    def record(self) -> Path:
        return self.out / DONE_DIR / f"{self.stem}.json"

    def finished(self) -> dict | None:
        """The saved summary when this file is complete with every wanted output, else None."""
        try:
            row = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return None
        have = set(row.get("outputs", "").split(";"))
        if row.get("source") != str(self.source) or not all(self.final(k).name in have and self.final(k).is_file() for k in self.kinds):
            return None
        return row

    def clear_partials(self) -> None:
        for kind in ("mp4", "jsonl"):
            self.partial(kind).unlink(missing_ok=True)

    def commit(self, row: "Row") -> None:
        """Rename the partial outputs to their final names, then write the completion record."""
        for kind in self.kinds:
            os.replace(self.partial(kind), self.final(kind))
        self.record.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.record.with_suffix(".tmp")
        temporary.write_text(json.dumps({**asdict(row), "source": str(self.source)}))
        os.replace(temporary, self.record)


def make_jobs(paths: list[Path], out: Path, video: bool, jsonl: bool) -> list[Job]:
    if not (video or jsonl):
        raise RoadsightError("video: nothing to write. Expected an annotated video and/or JSONL, got --no-video with --no-jsonl. Drop one of them.")
    return [Job(i, p, s, out, video, jsonl) for i, (p, s) in enumerate(zip(paths, output_stems(paths)))]


@dataclass
class Row:
    """One line of summary.csv."""

    file: str
    status: str  # ok | skipped (finished earlier) | error
    frames: int = 0
    fps: float = 0.0  # processing speed
    video_fps: float = 0.0
    detections: int = 0
    mean_drivable_fraction: float | None = None
    seconds: float = 0.0
    outputs: str = ""
    error: str = ""

    @classmethod
    def from_record(cls, record: dict) -> "Row":
        return cls(**{k: v for k, v in record.items() if k in CSV_FIELDS})


def write_summary(rows: list[Row], path: Path) -> Path:
    """Write summary.csv (atomic: temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            values = asdict(row)
            writer.writerow({k: ("" if values[k] is None else values[k]) for k in CSV_FIELDS})
    os.replace(temporary, path)
    return path
