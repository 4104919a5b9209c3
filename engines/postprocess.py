"""Raw outputs -> `Perception` per frame: threshold, class-aware NMS, frame coordinates, masks."""

from __future__ import annotations

import cv2
import numpy as np

from engines.errors import RoadsightError
from engines.meta import ModelMeta
from engines.perception import Perception
from engines.preprocess import Letterbox

MAX_NMS_CANDIDATES = 30000  # like ultralytics: keep the best-scoring boxes before NMS


def nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float) -> np.ndarray:
    """Class-aware NMS (OpenCV): indices of kept boxes, best score first. boxes: (N, 4) xyxy."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    xywh = np.asarray(boxes, dtype=np.float64).copy()
    xywh[:, 2:] -= xywh[:, :2]
    keep = cv2.dnn.NMSBoxesBatched(xywh, scores.astype(np.float32), class_ids.astype(np.int32), 0.0, float(iou))
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def detections(
    boxes: np.ndarray, scores: np.ndarray, conf: float, iou: float, max_det: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw (4, A) boxes and (nc, A) scores -> kept (boxes (N,4), scores (N,), class ids (N,)).

    Each anchor keeps its best class; anchors at or below `conf` are dropped.
    """
    class_ids = scores.argmax(axis=0)
    best = scores.max(axis=0).astype(np.float32)
    candidates = np.flatnonzero(best > conf)
    if len(candidates) > MAX_NMS_CANDIDATES:
        candidates = candidates[np.argsort(-best[candidates], kind="stable")[:MAX_NMS_CANDIDATES]]
    xyxy = boxes[:, candidates].T.astype(np.float32)
    keep = nms(xyxy, best[candidates], class_ids[candidates], iou)[:max_det]
    return xyxy[keep].reshape(-1, 4), best[candidates][keep], class_ids[candidates][keep].astype(np.int64)


def _check_outputs(outputs: dict[str, np.ndarray], batch: int, nc: int) -> None:
    for name in ("boxes", "scores"):
        if name not in outputs:
            raise RoadsightError(f"postprocess: output '{name}' is missing. Expected boxes, scores[, drivable, lane], got {sorted(outputs)}.")
    boxes, scores = outputs["boxes"], outputs["scores"]
    if boxes.ndim != 3 or boxes.shape[:2] != (batch, 4) or scores.shape != (batch, nc, boxes.shape[2]):
        raise RoadsightError(
            f"postprocess: raw outputs do not match. Expected boxes ({batch},4,A) and scores ({batch},{nc},A), "
            f"got {boxes.shape} and {scores.shape}. Is the model's metadata (names) right?"
        )


def postprocess(
    outputs: dict[str, np.ndarray],
    params: list[Letterbox],
    meta: ModelMeta,
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
) -> list[Perception]:
    """Raw outputs of a batch (see ARCHITECTURE.md) -> one Perception per `params` entry.

    Boxes are mapped to frame pixels and clipped; masks are cropped of their padding and resized to the
    frame: logits at the heads' strides bilinearly, then > 0 (`meta.seg_output` 'logits'); probabilities at
    network size bilinearly, then > 0.5 ('prob'); uint8 masks with nearest neighbour ('mask'). Outputs beyond
    len(params) (a padded batch) are ignored. Timestamps are left empty.
    """
    outputs = {name: array[: len(params)] for name, array in outputs.items()}
    _check_outputs(outputs, len(params), len(meta.names))
    results = []
    for i, box in enumerate(params):
        xyxy, scores, class_ids = detections(outputs["boxes"][i], outputs["scores"][i], conf, iou, max_det)
        to_frame = box.logits_to_frame if meta.seg_output == "logits" else box.mask_to_frame
        masks = {name: to_frame(outputs[name][i]) if name in outputs else None for name in ("drivable", "lane")}
        results.append(
            Perception(
                boxes=box.boxes_to_frame(xyxy),
                scores=scores,
                class_ids=class_ids,
                names=meta.names,
                drivable=masks["drivable"],
                lane=masks["lane"],
                frame_index=i,
            )
        )
    return results
