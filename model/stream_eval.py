"""`roadsight val-stream`: score a run's JSONL (tracks, lanes, ego facts, lead) against a clip's ground truth.

Tracking: CLEAR MOT (MOTA, ID switches) and identity metrics (IDF1) from `trackers.eval` (TrackEval's
matching and definitions), boxes matched at IoU >= 0.5; detections without a confirmed track id are not
tracker output. The headline scores vehicles as KITTI's 'moderate' difficulty does (boxes >= 25 px tall, at
least half visible; the rest are don't-care); the same figures over every box follow as `*_all_boxes`. Ego: mean absolute error of lateral offset and lane width over frames where both sides give
a value (coverage reported). Departures: events are maximal runs of frames departing to one side; a predicted
event matches a ground-truth event of the same side whose frames it overlaps (one-to-one); F1 of those.
Lead: mean relative distance error over frames whose true lead is closer than `lead_max_m` and a lead was
predicted (coverage and same-vehicle share reported).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engines.errors import RoadsightError

MIN_HEIGHT, MIN_VISIBLE = 25.0, 0.5  # scored vehicle boxes (KITTI tracking's 'moderate' difficulty)
KEYS = ("idf1", "mota", "id_switches", "lateral_offset_mae_m", "lane_width_mae_m", "departure_f1", "lead_distance_rel_error")


def read_jsonl(path: Path, option: str) -> dict[int, dict]:
    """Records by frame index; a missing or malformed file is one RoadsightError line."""
    if not path.is_file():
        raise RoadsightError(f"{option} {path}: no such file. Expected a JSONL file, got none. Check the path.")
    out = {}
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                out[int(record["frame"])] = record
            except (ValueError, KeyError, TypeError):
                raise RoadsightError(f"{option} {path}: line {n} is not a JSON record with a 'frame'. Expected one JSON "
                                     "object per line (roadsight run --jsonl / data synth --video). Regenerate the file.") from None
    if not out:
        raise RoadsightError(f"{option} {path}: the file has no records. Expected one JSON line per frame. Regenerate it.")
    return out


def _boxes(items: list[dict]) -> np.ndarray:
    return np.array([[d["box"][k] for k in ("x1", "y1", "x2", "y2")] for d in items], np.float64).reshape(-1, 4)


def _area(x: np.ndarray) -> np.ndarray:
    return np.prod(x[:, 2:] - x[:, :2], axis=1)


def _inter(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return np.prod(np.clip(rb - lt, 0, None), axis=2)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = _inter(a, b)
    return inter / np.maximum(_area(a)[:, None] + _area(b)[None, :] - inter, 1e-9)


def _ioa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the area of each box of `a`."""
    return _inter(a, b) / np.maximum(_area(a)[:, None], 1e-9)


def scored(vehicle: dict) -> bool:
    """KITTI 'moderate': at least MIN_HEIGHT px tall and at least MIN_VISIBLE of it in view (others: don't care)."""
    box = vehicle["box"]
    return box["y2"] - box["y1"] >= MIN_HEIGHT and vehicle.get("visible", 1.0) >= MIN_VISIBLE


def tracking(pred: dict[int, dict], gt: dict[int, dict], frames: list[int], moderate: bool = True) -> dict:
    """MOTA, IDF1, ID switches and their counts over `frames`; with `moderate`, boxes that are not `scored` are
    don't-care: dropped from the truth, and a tracked box lying mostly inside one (intersection over its own area
    >= 0.5, KITTI's rule) without matching a scored box is dropped too."""
    from trackers.eval.clear import compute_clear_metrics
    from trackers.eval.identity import compute_identity_metrics

    gt_ids, tr_ids, sims = [], [], []
    for i in frames:
        truth = gt[i]["vehicles"]
        dets = [d for d in pred.get(i, {}).get("detections", []) if d.get("track_id") is not None]
        if moderate:
            care = [v for v in truth if scored(v)]
            ignore = _boxes([v for v in truth if not scored(v)])
            if len(ignore) and dets:
                with_care = _iou(_boxes(dets), _boxes(care)).max(1, initial=0) if care else np.zeros(len(dets))
                with_ignore = _ioa(_boxes(dets), ignore).max(1)
                dets = [d for d, c, g in zip(dets, with_care, with_ignore) if c >= 0.5 or g < 0.5]
            truth = care
        gt_ids.append(np.array([v["id"] for v in truth], int))
        tr_ids.append(np.array([d["track_id"] for d in dets], int))
        sims.append(_iou(_boxes(truth), _boxes(dets)))
    clear = compute_clear_metrics(gt_ids, tr_ids, sims, threshold=0.5)
    ident = compute_identity_metrics(gt_ids, tr_ids, sims, threshold=0.5)
    return {"mota": float(clear["MOTA"]), "idf1": float(ident["IDF1"]), "id_switches": int(clear["IDSW"]),
            "recall": float(clear["CLR_Re"]), "precision": float(clear["CLR_Pr"]), "gt_boxes": int(clear["CLR_TP"] + clear["CLR_FN"])}


def _events(sides: list[str]) -> list[tuple[str, int, int]]:
    """Maximal runs (side, first, last) of non-'none' values."""
    out = []
    for k, side in enumerate(sides):
        if side != "none" and out and out[-1][0] == side and out[-1][2] == k - 1:
            out[-1] = (side, out[-1][1], k)
        elif side != "none":
            out.append((side, k, k))
    return out


def departures(pred_sides: list[str], gt_sides: list[str]) -> dict:
    """Event precision, recall and F1 (same side, overlapping frames, one-to-one)."""
    pred, truth = _events(pred_sides), _events(gt_sides)
    used, hits = set(), 0
    for side, a, b in pred:
        match = next((j for j, (s, c, d) in enumerate(truth) if j not in used and s == side and a <= d and c <= b), None)
        if match is not None:
            used.add(match)
            hits += 1
    precision = hits / len(pred) if pred else (1.0 if not truth else 0.0)
    recall = hits / len(truth) if truth else (1.0 if not pred else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"departure_f1": f1, "departure_precision": precision, "departure_recall": recall,
            "departure_events_pred": len(pred), "departure_events_gt": len(truth)}


def _mae(pairs: list[tuple[float, float]]) -> float | None:
    return float(np.mean([abs(p - g) for p, g in pairs])) if pairs else None


def evaluate_stream(pred_path: Path, gt_path: Path, lead_max_m: float = 40.0) -> dict:
    """All val-stream figures (KEYS first, then counts and coverage)."""
    pred, gt = read_jsonl(pred_path, "--pred"), read_jsonl(gt_path, "--gt")
    frames = sorted(gt)
    missing = [i for i in frames if i not in pred]
    if len(missing) == len(frames):
        raise RoadsightError(f"--pred {pred_path}: no frame matches the ground truth's frame numbers. Expected the JSONL of "
                             f"`roadsight run` on the clip of {gt_path}. Run it on that clip.")
    if not any("lanes" in pred[i] or any("track_id" in d for d in pred[i].get("detections", [])) for i in pred):
        raise RoadsightError(f"--pred {pred_path}: no track ids or lanes in the records. Expected a run with the driving "
                             "stage. Rerun `roadsight run` with --track (and --camera).")
    out = tracking(pred, gt, frames)
    out.update({f"{k}_all_boxes": v for k, v in tracking(pred, gt, frames, moderate=False).items()})
    offsets, widths, pred_sides, gt_sides = [], [], [], []
    for i in frames:
        truth, ego = gt[i].get("ego"), pred.get(i, {}).get("ego")
        pred_sides.append((ego or {}).get("departure", "none"))
        gt_sides.append((truth or {}).get("departure", "none"))
        if truth and ego:
            if ego.get("lateral_offset_m") is not None:
                offsets.append((ego["lateral_offset_m"], truth["lateral_offset_m"]))
            if ego.get("lane_width_m") is not None:
                widths.append((ego["lane_width_m"], truth["lane_width_m"]))
    with_ego = sum(1 for i in frames if gt[i].get("ego"))
    out.update(lateral_offset_mae_m=_mae(offsets), lane_width_mae_m=_mae(widths),
               offset_coverage=len(offsets) / with_ego if with_ego else None,
               width_coverage=len(widths) / with_ego if with_ego else None)
    out.update(departures(pred_sides, gt_sides))
    errors, same, near = [], 0, 0
    for i in frames:
        truth = gt[i].get("lead")
        if not truth or truth["distance_m"] >= lead_max_m:
            continue
        near += 1
        lead = pred.get(i, {}).get("lead")
        if not lead:
            continue
        errors.append(abs(lead["distance_m"] - truth["distance_m"]) / truth["distance_m"])
        box = next((d["box"] for d in pred[i]["detections"] if lead.get("track_id") is not None and d.get("track_id") == lead["track_id"]), None)
        true_box = next((v["box"] for v in gt[i]["vehicles"] if v["id"] == truth["id"]), None)
        if box and true_box and _iou(_boxes([{"box": box}]), _boxes([{"box": true_box}]))[0, 0] >= 0.5:
            same += 1
    out.update(lead_distance_rel_error=float(np.mean(errors)) if errors else None, lead_frames=near,
               lead_coverage=len(errors) / near if near else None, lead_same_vehicle=same / len(errors) if errors else None,
               frames=len(frames), frames_missing=len(missing), id_switches_per_100_frames=100 * out["id_switches"] / len(frames))
    return {k: out[k] for k in KEYS} | {k: v for k, v in out.items() if k not in KEYS}


TARGETS = {"idf1": (">=", 0.80), "mota": (">=", 0.70), "id_switches_per_100_frames": ("<=", 1.0), "lateral_offset_mae_m": ("<=", 0.15),
           "lane_width_mae_m": ("<=", 0.25), "departure_f1": (">=", 0.9), "lead_distance_rel_error": ("<=", 0.15)}


def format_report(results: dict):
    """A rich table: each figure, the issue's target and whether it is met."""
    from rich.table import Table

    table = Table(title="val-stream (boxes IoU >= 0.5, >= 25 px tall, >= 50% visible; lead: true distance < 40 m)", title_justify="left")
    for column in ("metric", "value", "target", "met"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, value in results.items():
        target = TARGETS.get(key)
        shown = "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
        met = "-"
        if target and value is not None:
            met = "yes" if (value >= target[1] if target[0] == ">=" else value <= target[1]) else "NO"
        table.add_row(key, shown, f"{target[0]} {target[1]:g}" if target else "", met)
    return table
