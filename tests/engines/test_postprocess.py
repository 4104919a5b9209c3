"""NMS against a brute-force reference, and raw outputs -> Perceptions in frame pixels."""

import numpy as np
import pytest

from engines.errors import RoadsightError
from engines.meta import ModelMeta
from engines.postprocess import detections, nms, postprocess
from engines.preprocess import Letterbox


def iou_one(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def brute_force_nms(boxes, scores, class_ids, iou):
    """Greedy NMS, one class at a time, by the textbook definition."""
    keep = []
    for index in np.argsort(-scores):
        if all(class_ids[k] != class_ids[index] or iou_one(boxes[k], boxes[index]) <= iou for k in keep):
            keep.append(index)
    return np.array(keep, dtype=np.int64)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("iou", [0.3, 0.45, 0.7])
def test_nms_matches_brute_force(seed, iou):
    rng = np.random.default_rng(seed)
    n = 200
    xy = rng.uniform(0, 200, size=(n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 60, size=(n, 2))], axis=1).astype(np.float32)
    scores = rng.permutation(n).astype(np.float32) / n + 0.001  # distinct scores: a unique answer
    class_ids = rng.integers(0, 3, size=n)
    kept = nms(boxes, scores, class_ids, iou)
    assert 0 < len(kept) < n
    assert list(kept) == list(brute_force_nms(boxes, scores, class_ids, iou))


def test_nms_of_nothing_is_empty():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), 0.5).shape == (0,)


def raw_batch():
    """Hand-made raw outputs for one 1280x720 frame letterboxed into 640x384 (top pad 12), A = 5."""
    boxes = np.array(
        [
            [100, 112, 200, 212],  # car A, best
            [102, 114, 202, 214],  # overlaps A, same class -> suppressed
            [101, 113, 201, 213],  # overlaps A, other class -> kept (class-aware)
            [400, 200, 500, 260],  # car B
            [300, 300, 350, 350],  # below conf
        ],
        np.float32,
    ).T[None]
    scores = np.zeros((1, 2, 5), np.float32)
    scores[0, 0] = [0.9, 0.8, 0.1, 0.6, 0.2]
    scores[0, 1] = [0.0, 0.0, 0.7, 0.1, 0.0]
    drivable = np.zeros((1, 384, 640), np.float32)
    drivable[0, 198:] = 0.9  # bottom part of the content and the bottom padding
    lane = np.zeros((1, 384, 640), np.uint8)
    lane[0, 12:372, 320:322] = 1  # a 2-px vertical line in the middle of the content
    return {"boxes": boxes, "scores": scores, "drivable": drivable, "lane": lane}


def test_postprocess_hand_made_outputs_in_frame_pixels():
    meta = ModelMeta(names=("car", "bus"), imgsz=(384, 640))
    params = [Letterbox.fit((720, 1280), (384, 640))]
    [result] = postprocess(raw_batch(), params, meta, conf=0.25, iou=0.5)
    # network px -> frame px: subtract the 12-row top padding, then x2
    assert np.allclose(result.boxes, [[200, 200, 400, 400], [202, 202, 402, 402], [800, 376, 1000, 496]])
    assert np.allclose(result.scores, [0.9, 0.7, 0.6])
    assert list(result.class_ids) == [0, 1, 0] and result.names == ("car", "bus")
    assert result.drivable.shape == (720, 1280) and result.lane.shape == (720, 1280)
    # drivable rows 198..371 of the content -> frame rows 372..719
    assert not result.drivable[:371].any() and result.drivable[373:].all()
    assert result.lane[:, 640:644].all() and result.lane.sum() == 4 * 720


def test_max_det_and_conf():
    meta = ModelMeta(names=("car", "bus"), imgsz=(384, 640))
    params = [Letterbox.fit((720, 1280), (384, 640))]
    [top1] = postprocess(raw_batch(), params, meta, conf=0.25, iou=0.5, max_det=1)
    assert np.allclose(top1.scores, [0.9])
    [strict] = postprocess(raw_batch(), params, meta, conf=0.85, iou=0.5)
    assert len(strict) == 1
    [none] = postprocess(raw_batch(), params, meta, conf=0.95, iou=0.5)
    assert len(none) == 0 and none.boxes.shape == (0, 4) and none.drivable is not None


def test_padded_batch_rows_are_ignored_and_missing_masks_are_none():
    meta = ModelMeta(names=("car", "bus"), imgsz=(384, 640))
    raw = raw_batch()
    padded = {k: np.concatenate([raw[k], raw[k]]) for k in ("boxes", "scores")}
    results = postprocess(padded, [Letterbox.fit((720, 1280), (384, 640))], meta)
    assert len(results) == 1 and results[0].drivable is None and results[0].lane is None


def test_wrong_class_count_raises():
    meta = ModelMeta(names=("car",), imgsz=(384, 640))
    with pytest.raises(RoadsightError, match=r"Expected boxes \(1,4,A\) and scores \(1,1,A\)"):
        postprocess(raw_batch(), [Letterbox.fit((720, 1280), (384, 640))], meta)


def test_detections_keeps_best_class_per_anchor():
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32).T
    scores = np.array([[0.3, 0.9], [0.6, 0.1]], np.float32)
    xyxy, conf, cls = detections(boxes, scores, conf=0.25, iou=0.5, max_det=10)
    assert list(cls) == [0, 1] and np.allclose(conf, [0.9, 0.6])
    assert np.allclose(xyxy, [[50, 50, 60, 60], [0, 0, 10, 10]])
