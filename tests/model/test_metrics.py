"""model.metrics against ultralytics' own validator code, hand-built cases and brute-force pixel loops."""

from types import SimpleNamespace

import numpy as np
import pytest

from model.metrics import DetectionMetrics, SegmentationMetrics, box_iou, compute_ap, dilate, match_predictions

# ---------------------------------------------------------------- detection: structured random scenes


def _scene(rng: np.random.Generator, nc: int) -> tuple:
    """Ground truth plus predictions: jittered copies of some targets (some with the wrong class,
    some duplicated), pure false positives, and scores loosely correlated with quality."""
    m = int(rng.integers(0, 8))
    xy = rng.uniform(0, 500, (m, 2))
    wh = rng.uniform(10, 120, (m, 2))
    gt = np.concatenate([xy, xy + wh], 1)
    gt_cls = rng.integers(0, nc, m)
    preds, cls, scores = [], [], []
    for box, c in zip(gt, gt_cls):
        for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):  # missed, found, or found twice
            jitter = rng.normal(0, rng.choice([2.0, 8.0, 25.0]), 4)
            preds.append(box + jitter)
            cls.append(c if rng.random() > 0.15 else (c + 1) % nc)
            scores.append(np.clip(0.9 - np.abs(jitter).mean() / 40 + rng.normal(0, 0.1), 0.001, 1))
    for _ in range(int(rng.integers(0, 4))):  # background false positives
        x, y = rng.uniform(0, 500, 2)
        preds.append(np.array([x, y, x + rng.uniform(5, 80), y + rng.uniform(5, 80)]))
        cls.append(int(rng.integers(0, nc)))
        scores.append(rng.uniform(0.001, 0.6))
    boxes = np.array(preds, np.float32).reshape(-1, 4)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    return boxes, np.array(scores, np.float32), np.array(cls, np.int64), gt.astype(np.float32), gt_cls.astype(np.int64)


@pytest.fixture(scope="module")
def ultra():
    from model.ultra import torch  # noqa: F401  (offline-safe ultralytics import first)
    from ultralytics.engine.validator import BaseValidator
    from ultralytics.utils import metrics

    iouv = torch.linspace(0.5, 0.95, 10)

    def match(pred_cls, true_cls, iou):
        fake = SimpleNamespace(iouv=iouv)
        return BaseValidator.match_predictions(fake, torch.from_numpy(pred_cls), torch.from_numpy(true_cls), iou).numpy()

    return SimpleNamespace(torch=torch, metrics=metrics, match=match)


def test_box_iou_matches_ultralytics(ultra):
    rng = np.random.default_rng(0)
    a, b = _scene(rng, 1)[0], _scene(rng, 1)[0]
    a, b = np.concatenate([a, [[0, 0, 10, 10]]]), np.concatenate([b, [[5, 5, 15, 15]]])
    ref = ultra.metrics.box_iou(ultra.torch.from_numpy(a), ultra.torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(box_iou(a, b), ref, atol=1e-5)
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 5, 15, 15]]))[0, 0] == pytest.approx(25 / 175)


def test_matching_and_ap_equal_ultralytics(ultra):
    """Same scenes through ultralytics' match_predictions + ap_per_class and through DetectionMetrics."""
    rng = np.random.default_rng(1)
    names = ("car", "bus", "person")
    metrics = DetectionMetrics(names)
    tps, confs, pcls, tcls = [], [], [], []
    for _ in range(60):
        boxes, scores, cls, gt, gt_cls = _scene(rng, len(names))
        tp = metrics.update(boxes, scores, cls, gt, gt_cls)
        order = np.argsort(-scores, kind="stable")  # ultralytics gets NMS output, sorted by confidence
        iou = ultra.metrics.box_iou(ultra.torch.from_numpy(gt), ultra.torch.from_numpy(boxes[order]))
        ref = ultra.match(cls[order], gt_cls, iou) if len(gt) and len(boxes) else np.zeros((len(boxes), 10), bool)
        np.testing.assert_array_equal(tp[order], ref)
        tps.append(ref)
        confs.append(scores[order])
        pcls.append(cls[order])
        tcls.append(gt_cls)
    tp, conf, pred_cls, target_cls = (np.concatenate(x) for x in (tps, confs, pcls, tcls))
    assert 0.2 < tp[:, 0].mean() < 0.9  # a mix of hits and misses, not a degenerate case
    _, _, p, r, _, ap, classes, _, r_curve, *_ = ultra.metrics.ap_per_class(tp, conf, pred_cls, target_cls)
    out = metrics.compute()
    assert len(classes) == 3 and out["instances"] == len(target_cls) and out["images"] == 60
    np.testing.assert_allclose([out["classes"][names[c]]["AP50"] for c in classes], ap[:, 0], atol=1e-12)
    np.testing.assert_allclose([out["classes"][names[c]]["AP50-95"] for c in classes], ap.mean(1), atol=1e-12)
    np.testing.assert_allclose([out["classes"][names[c]]["precision"] for c in classes], p, atol=1e-12)
    np.testing.assert_allclose([out["classes"][names[c]]["recall_at_max_f1"] for c in classes], r, atol=1e-12)
    assert out["mAP50"] == pytest.approx(ap[:, 0].mean(), abs=1e-12)
    assert out["mAP50-95"] == pytest.approx(ap.mean(), abs=1e-12)
    yolop = r_curve[:, r_curve.mean(0).argmax()]  # A-YOLOM/YOLOP: "i = r.mean(0).argmax()"
    assert out["recall"] == pytest.approx(yolop.mean(), abs=1e-12)
    # the YOLOP rule is recall at the lowest confidence: every match at IoU 0.5 over all targets
    for k, c in enumerate(classes):
        assert out["classes"][names[c]]["recall"] == pytest.approx(tp[pred_cls == c, 0].sum() / (target_cls == c).sum())
    assert out["recall"] >= out["recall_at_max_f1"]


def test_greedy_matching_takes_best_unclaimed_target():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 11]], np.float64)
    pred = np.array([[0, 0, 10, 10.5]])  # overlaps both, slightly more the second
    tp = match_predictions(np.array([0, 0]), np.array([0, 0]), box_iou(gt, np.concatenate([pred, pred])))
    assert tp[:, 0].tolist() == [True, True]  # the second copy takes the target the first left
    tp = match_predictions(np.array([0]), np.array([1, 1]), box_iou(gt, pred))
    assert not tp.any()  # wrong class never matches


# ---------------------------------------------------------------- detection: known answers


def _boxes(*rows):
    return np.array(rows, np.float32).reshape(-1, 4)


def test_perfect_predictions():
    m = DetectionMetrics(("vehicle",))
    gt = _boxes([0, 0, 10, 10], [20, 20, 40, 50])
    m.update(gt, np.array([0.9, 0.8], np.float32), np.zeros(2, np.int64), gt, np.zeros(2, np.int64))
    m.update(_boxes([5, 5, 50, 50]), np.array([0.7], np.float32), np.zeros(1, np.int64), _boxes([5, 5, 50, 50]), np.zeros(1, np.int64))
    out = m.compute()
    # ultralytics' compute_ap drops to 0 at recall 1 over the last 0.01 of the 101-point grid, so a perfect
    # detector scores 0.995, not 1.0 (same number A-YOLOM/ultralytics print for a perfect model).
    assert out["mAP50"] == pytest.approx(0.995) and out["mAP50-95"] == pytest.approx(0.995)
    assert out["recall"] == 1.0 and out["precision"] == pytest.approx(1.0)


def test_all_misses_and_no_predictions():
    m = DetectionMetrics(("vehicle",))
    m.update(_boxes([100, 100, 120, 120]), np.array([0.9], np.float32), np.zeros(1, np.int64), _boxes([0, 0, 10, 10]), np.zeros(1, np.int64))
    m.update(_boxes(), np.zeros(0, np.float32), np.zeros(0, np.int64), _boxes([0, 0, 10, 10]), np.zeros(1, np.int64))
    out = m.compute()
    assert out["mAP50"] == 0.0 and out["recall"] == 0.0 and out["instances"] == 2
    empty = DetectionMetrics(("vehicle",)).compute()
    assert empty["mAP50"] is None and empty["instances"] == 0 and empty["classes"]["vehicle"]["AP50"] is None


def test_false_positive_ranked_above_true_positive():
    """Recall [0, 1], precision [0, 0.5]: the envelope is 0.5 on the whole 101-point grid except the
    last point (recall 1 -> 0), so AP = 0.5 - 0.01 * 0.5 / 2 = 0.4975."""
    m = DetectionMetrics(("vehicle",))
    m.update(
        _boxes([100, 100, 120, 120], [0, 0, 10, 10]),
        np.array([0.9, 0.8], np.float32),
        np.zeros(2, np.int64),
        _boxes([0, 0, 10, 10]),
        np.zeros(1, np.int64),
    )
    assert m.compute()["mAP50"] == pytest.approx(0.4975)
    assert compute_ap(np.array([0.0, 1.0]), np.array([0.0, 0.5])) == pytest.approx(0.4975)


def test_two_classes_and_iou_thresholds():
    """Class a: perfect (0.995). Class b: the only prediction has IoU 0.6 with its target -> a hit at
    thresholds 0.50 and 0.55 only; predictions of a class without ground truth are ignored in the mean."""
    m = DetectionMetrics(("a", "b", "c"))
    b_gt = _boxes([0, 0, 100, 100])
    b_pred = _boxes([0, 0, 100, 60])  # IoU 0.6
    m.update(
        np.concatenate([_boxes([200, 200, 260, 260]), b_pred, _boxes([300, 0, 320, 20])]),
        np.array([0.9, 0.8, 0.95], np.float32),
        np.array([0, 1, 2]),
        np.concatenate([_boxes([200, 200, 260, 260]), b_gt]),
        np.array([0, 1]),
    )
    out = m.compute()
    assert out["classes"]["a"]["AP50"] == pytest.approx(0.995)
    assert out["classes"]["b"]["AP50"] == pytest.approx(0.995)
    assert out["classes"]["b"]["AP50-95"] == pytest.approx(0.995 * 2 / 10)
    assert out["classes"]["c"] == {"instances": 0, "AP50": None, "AP50-95": None}
    assert out["mAP50"] == pytest.approx(0.995) and out["mAP50-95"] == pytest.approx((0.995 + 0.199) / 2)
    only50 = DetectionMetrics(("a", "b"), iou_thresholds=np.array([0.5]))
    only50.update(b_pred, np.array([0.8], np.float32), np.array([1]), b_gt, np.array([1]))
    assert only50.compute()["mAP50-95"] == pytest.approx(0.995)  # 0.5 alone: the mean is AP50
    with pytest.raises(ValueError, match="0.5"):
        DetectionMetrics(("a",), iou_thresholds=np.array([0.75]))


# ---------------------------------------------------------------- segmentation


def _brute_force(pairs):
    """Per-pixel Python loop: confusion counts (tn, fp, fn, tp) over all pairs."""
    tn = fp = fn = tp = 0
    for pred, gt in pairs:
        for p, g in zip(pred.ravel().tolist(), gt.ravel().tolist()):
            p, g = p > 0, g > 0
            tp += p and g
            fp += p and not g
            fn += g and not p
            tn += not p and not g
    return tn, fp, fn, tp


def test_segmentation_matches_brute_force_and_is_global():
    rng = np.random.default_rng(3)
    pairs = []
    for density in (0.05, 0.3, 0.6, 0.9):  # images with very different class shares
        gt = (rng.random((12, 20)) < density).astype(np.uint8) * rng.choice([1, 255])
        pred = np.where(rng.random(gt.shape) < 0.2, 1 - (gt > 0), gt > 0).astype(np.uint8)
        pairs.append((pred, gt))
    m = SegmentationMetrics()
    for pred, gt in pairs:
        m.update(pred, gt)
    tn, fp, fn, tp = _brute_force(pairs)
    assert m.confusion.tolist() == [[tn, fp], [fn, tp]]
    iou1, iou0 = tp / (tp + fp + fn), tn / (tn + fp + fn)
    assert m.iou(1) == pytest.approx(iou1) and m.iou(0) == pytest.approx(iou0)
    assert m.miou == pytest.approx((iou0 + iou1) / 2)
    assert m.pixel_acc == pytest.approx((tp + tn) / (tn + fp + fn + tp))
    assert m.recall == pytest.approx(tp / (tp + fn)) and m.specificity == pytest.approx(tn / (tn + fp))
    assert m.balanced_acc == pytest.approx((tp / (tp + fn) + tn / (tn + fp)) / 2)
    per_image = []
    for pair in pairs:
        tn_i, fp_i, fn_i, tp_i = _brute_force([pair])
        per_image.append(tp_i / (tp_i + fp_i + fn_i))
    assert abs(np.mean(per_image) - m.iou(1)) > 0.01  # per-image averaging (peers) is a different number


def test_balanced_accuracy_known_values():
    gt = np.zeros((10, 10), np.uint8)
    gt[:, :2] = 1  # 20 lane pixels, 80 background
    pred = np.zeros_like(gt)
    m = SegmentationMetrics()
    m.update(pred, gt)  # nothing predicted: sensitivity 0, specificity 1
    assert m.balanced_acc == pytest.approx(0.5) and m.pixel_acc == pytest.approx(0.8) and m.iou(1) == 0.0
    pred[:, :1] = 1  # 10 of 20 lane pixels
    pred[0, 5:9] = 1  # 4 false positives of 80
    m = SegmentationMetrics()
    m.update(pred, gt)
    assert m.recall == pytest.approx(0.5) and m.specificity == pytest.approx(76 / 80)
    assert m.balanced_acc == pytest.approx((0.5 + 0.95) / 2) and m.iou(1) == pytest.approx(10 / 24)


def test_undefined_iou_is_nan_and_shape_mismatch_raises():
    m = SegmentationMetrics()
    m.update(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    assert np.isnan(m.iou(1)) and m.iou(0) == 1.0
    with pytest.raises(ValueError):
        m.update(np.zeros((4, 4)), np.zeros((4, 5)))


def test_dilate_grows_lines_by_radius():
    mask = np.zeros((20, 30), np.uint8)
    mask[10, 5:25] = 1  # a 1-px horizontal line
    wide = dilate(mask, 3)
    assert wide[:, 15].sum() == 7 and wide[10].sum() == 26  # 1 + 2*3 rows, 20 + 2*3 columns
    assert np.array_equal(dilate(mask, 0), mask > 0)
    edge = np.zeros((5, 5), np.uint8)
    edge[0, 0] = 1
    assert dilate(edge, 10).all()  # radius larger than the image: no wrap, no error
    # the same as a brute-force square structuring element
    rng = np.random.default_rng(4)
    m = rng.random((9, 11)) < 0.1
    ref = np.zeros_like(m)
    for y, x in zip(*np.nonzero(m)):
        ref[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] = True
    assert np.array_equal(dilate(m, 2), ref)
