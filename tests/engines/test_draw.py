"""draw(): pixels change where masks and boxes are, and nowhere else."""

import numpy as np
import pytest

from engines.draw import BOX_BGR, DRIVABLE_BGR, LANE_BGR, draw
from engines.errors import RoadsightError
from engines.perception import Perception


def test_masks_tint_only_their_pixels_and_boxes_outline():
    frame = np.full((120, 200, 3), 100, np.uint8)
    drivable = np.zeros((120, 200), np.uint8)
    drivable[80:, :100] = 1
    lane = np.zeros((120, 200), np.uint8)
    lane[:, 150:152] = 1
    p = Perception(
        boxes=np.array([[20, 30, 60, 70]], np.float32),
        scores=np.array([0.87], np.float32),
        class_ids=np.array([0], np.int64),
        names=("vehicle",),
        drivable=drivable,
        lane=lane,
    )
    out = draw(frame, p)
    assert out is not frame and (frame == 100).all()  # the input is untouched
    changed = (out != frame).any(axis=2)
    # drivable: tinted towards green, exactly where the mask is
    tint = np.round(100 * 0.6 + np.array(DRIVABLE_BGR) * 0.4)
    assert (out[90:, 5:95] == tint).all()
    assert changed[80:, :100].all() and changed[:, 150:152].all()
    # box outline drawn in the box colour; the box interior and far areas untouched
    assert (out[50, 20] == BOX_BGR).all() and not changed[45:55, 30:50].any()
    assert not changed[5:25, 100:140].any() and not changed[40:70, 170:195].any()
    # the label sits above the box
    assert changed[15:29, 20:60].any()


def test_status_line_and_in_place():
    frame = np.zeros((90, 160, 3), np.uint8)
    out = draw(frame, Perception(), fps=29.97, latency_ms=12.3, copy=False)
    assert out is frame and frame[:20, :80].any() and not frame[40:].any()


def test_mask_of_another_size_is_refused():
    p = Perception(drivable=np.zeros((10, 10), np.uint8))
    with pytest.raises(RoadsightError, match=r"draw: mask and frame sizes differ. Expected a mask of \(20, 20\), got \(10, 10\)"):
        draw(np.zeros((20, 20, 3), np.uint8), p)


def test_blend_equals_the_float_formula_inside_the_masks_only():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)
    drivable = np.zeros((72, 128), np.uint8)
    drivable[30:, 10:90] = rng.random((42, 80)) > 0.3  # ragged, inside a bounding box
    lane = np.zeros((72, 128), np.uint8)
    lane[5, 100:120] = 1
    out = draw(frame, Perception(drivable=drivable, lane=lane))
    expected = frame.astype(np.float32)
    for mask, colour, alpha in ((drivable, DRIVABLE_BGR, 0.4), (lane, LANE_BGR, 0.7)):
        where = mask.astype(bool)
        expected[where] = np.round(expected[where] * (1 - alpha) + np.array(colour, np.float32) * alpha)
    assert np.array_equal(out, expected.astype(np.uint8))


def test_empty_masks_leave_the_frame_alone():
    frame = np.full((40, 60, 3), 7, np.uint8)
    out = draw(frame, Perception(drivable=np.zeros((40, 60), np.uint8), lane=np.zeros((40, 60), np.uint8)))
    assert np.array_equal(out, frame)
