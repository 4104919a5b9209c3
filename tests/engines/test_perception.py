"""Perception validation, selection, latencies and compact JSON."""

import json

import numpy as np
import pytest

from engines.errors import RoadsightError
from engines.perception import Perception, rle_decode, rle_encode


def make(n=3, masks=True):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (n, 2)).astype(np.float32)
    mask = np.zeros((72, 128), np.uint8)
    mask[36:] = 1
    lane = np.zeros((72, 128), np.uint8)
    lane[:, 60:62] = 1
    return Perception(
        boxes=np.concatenate([xy, xy + 10], axis=1),
        scores=np.linspace(0.9, 0.5, n, dtype=np.float32),
        class_ids=np.arange(n, dtype=np.int64) % 2,
        names=("car", "bus"),
        drivable=mask if masks else None,
        lane=lane if masks else None,
        frame_index=7,
        timestamps={"captured": 1.0, "preprocessed": 1.002, "inferred": 1.010, "postprocessed": 1.011},
        source="cam0",
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"boxes": np.zeros(3, np.float32)}, r"boxes must be \(N, 4\) float32, but got \(3,\) float32"),
        ({"boxes": np.zeros((3, 4), np.float64)}, r"boxes must be \(N, 4\) float32, but got \(3, 4\) float64"),
        ({"scores": [0.5]}, r"scores must be \(N,\) float32, but got list"),
        ({"class_ids": np.zeros(3, np.int32)}, r"class_ids must be \(N,\) int64"),
        ({"scores": np.zeros(2, np.float32)}, r"same length, but got 3, 2 and 3"),
        ({"class_ids": np.array([0, 1, 2])}, r"class_ids must index names \(0..1\), but got 0..2"),
        ({"drivable": np.zeros((72, 128), bool)}, r"drivable must be \(H, W\) uint8"),
        ({"lane": np.zeros((10, 10), np.uint8)}, r"drivable and lane must have the same shape"),
    ],
)
def test_validation_errors(kwargs, message):
    good = make().__dict__.copy()
    with pytest.raises(RoadsightError, match=message):
        Perception(**{**good, **kwargs})


def test_len_and_selection():
    p = make()
    assert len(p) == 3 and len(Perception()) == 0
    high = p[p.scores > 0.6]
    assert len(high) == 2 and np.allclose(high.scores, [0.9, 0.7])
    assert high.drivable is p.drivable and high.frame_index == 7
    one = p[1]
    assert one.boxes.shape == (1, 4) and list(one.class_ids) == [1]


def test_to_json_is_compact_and_complete():
    p = make()
    text = p.to_json()
    assert "\n" not in text and ", " not in text
    data = json.loads(text)
    assert data["frame"] == 7 and data["source"] == "cam0" and data["size"] == [72, 128]
    assert data["detections"][1]["name"] == "bus" and data["detections"][1]["class"] == 1
    assert data["detections"][0]["confidence"] == 0.9
    assert data["detections"][0]["box"]["x2"] == pytest.approx(float(p.boxes[0, 2]), abs=0.01)
    assert data["drivable_fraction"] == 0.5 and data["lane_pixels"] == 2 * 72
    assert data["latency_ms"] == pytest.approx({"preprocessed": 2, "inferred": 8, "postprocessed": 1, "total": 11}, abs=1e-6)
    assert "drivable" not in data and len(text) < 700


def test_masks_round_trip_through_rle():
    p = make()
    data = json.loads(p.to_json(masks=True))
    assert np.array_equal(rle_decode(data["drivable"]), p.drivable)
    assert np.array_equal(rle_decode(data["lane"]), p.lane)
    assert len(data["lane"]["counts"]) == 2 * 72 + 1  # zeros, ones per row, then the tail
    rng = np.random.default_rng(3)
    for mask in (rng.integers(0, 2, (17, 23)).astype(np.uint8), np.ones((4, 4), np.uint8), np.zeros((3, 5), np.uint8)):
        encoded = rle_encode(mask)
        assert encoded["counts"][0] == (0 if mask.flat[0] else encoded["counts"][0])
        assert np.array_equal(rle_decode(encoded), mask)


def test_no_masks_no_mask_fields():
    data = make(masks=False).to_dict()
    assert "size" not in data and "drivable_fraction" not in data and "lane_pixels" not in data
