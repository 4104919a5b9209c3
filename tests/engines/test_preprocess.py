"""Letterbox geometry, pixel layout and the inverse mapping of boxes and masks."""

import numpy as np
import pytest

from engines.errors import RoadsightError
from engines.preprocess import PAD_VALUE, Letterbox, letterbox, letterbox_frame


def test_1280x720_into_640x384_pads_12_rows_top_and_bottom():
    box = Letterbox.fit((720, 1280), (384, 640))
    assert box.scale == 0.5
    assert (box.left, box.top, box.content) == (0, 12, (360, 640))

    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 10, 20, 30  # B, G, R
    batch, params = letterbox([frame], (384, 640))
    assert batch.shape == (1, 3, 384, 640) and batch.dtype == np.float32
    pad, content = PAD_VALUE / 255, np.array([30, 20, 10]) / 255  # RGB order
    assert np.allclose(batch[0, :, :12], pad) and np.allclose(batch[0, :, 372:], pad)
    assert np.allclose(batch[0, :, 12:372], content[:, None, None], atol=1e-6)
    assert params == [box]


@pytest.mark.parametrize("frame_shape", [(720, 1280), (480, 640), (1080, 720), (100, 333), (384, 640)])
def test_box_round_trip_frame_network_frame(frame_shape):
    rng = np.random.default_rng(0)
    height, width = frame_shape
    xy1 = rng.uniform(0, [width / 2, height / 2], size=(20, 2))
    boxes = np.concatenate([xy1, xy1 + rng.uniform(1, [width / 2, height / 2], size=(20, 2))], axis=1).astype(np.float32)
    box = Letterbox.fit(frame_shape, (384, 640))
    network = box.boxes_to_network(boxes)
    assert network[:, [0, 2]].min() >= box.left - 1e-3 and network[:, [0, 2]].max() <= 640
    assert network[:, [1, 3]].min() >= box.top - 1e-3 and network[:, [1, 3]].max() <= 384
    assert np.allclose(box.boxes_to_frame(network), boxes, atol=1e-3)


def test_boxes_to_frame_clips_to_the_frame():
    box = Letterbox.fit((720, 1280), (384, 640))
    out = box.boxes_to_frame(np.array([[-5, 0, 700, 390]], np.float32))  # beyond the content on all sides
    assert np.allclose(out, [[0, 0, 1280, 720]])


def test_matches_ultralytics_letterbox_and_scale_boxes():
    augment = pytest.importorskip("ultralytics.data.augment")
    ops = pytest.importorskip("ultralytics.utils.ops")
    import torch

    rng = np.random.default_rng(1)
    for shape in [(720, 1280), (500, 375), (97, 211)]:
        frame = rng.integers(0, 255, size=(*shape, 3), dtype=np.uint8)
        ours, box = letterbox_frame(frame, (384, 640))
        theirs = augment.LetterBox((384, 640), auto=False, scaleup=True)(image=frame)
        assert np.array_equal(ours, theirs)
        network = np.array([[100.0, 50.0, 300.0, 200.0]], np.float32)
        expected = ops.scale_boxes((384, 640), torch.from_numpy(network.copy()), shape).numpy()
        assert np.allclose(box.boxes_to_frame(network), expected, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_half_filled_mask_stays_half_filled_and_padding_is_dropped(dtype):
    box = Letterbox.fit((720, 1280), (384, 640))
    mask = np.zeros((384, 640), dtype)
    mask[:, :320] = 1  # left half, including the padding rows
    frame_mask = box.mask_to_frame(mask)
    assert frame_mask.shape == (720, 1280) and frame_mask.dtype == np.uint8
    assert frame_mask[:, :640].all() and not frame_mask[:, 640:].any()

    padding_only = np.zeros((384, 640), dtype)
    padding_only[:12], padding_only[372:] = 1, 1
    assert not box.mask_to_frame(padding_only).any()


def test_mask_probabilities_are_thresholded_at_half():
    box = Letterbox.fit((64, 96), (64, 96))
    probs = np.full((64, 96), 0.49, np.float32)
    probs[:32] = 0.51
    out = box.mask_to_frame(probs)
    assert out[:32].all() and not out[32:].any()


def test_float16_batch_and_several_frames():
    frames = [np.zeros((64, 96, 3), np.uint8), np.full((128, 96, 3), 255, np.uint8)]
    batch, params = letterbox(frames, (64, 96), np.float16)
    assert batch.dtype == np.float16 and batch.shape == (2, 3, 64, 96)
    assert params[1].content == (64, 48) and params[1].left == 24
    assert np.all(batch[1, :, :, 24:72] == 1) and np.allclose(batch[1, :, :, :24], PAD_VALUE / 255, atol=1e-3)


@pytest.mark.parametrize("frame", [np.zeros((64, 96), np.uint8), np.zeros((64, 96, 3), np.float32), "image.jpg"])
def test_bad_frames_raise_one_line(frame):
    with pytest.raises(RoadsightError, match=r"frame 0: not a BGR image. Expected \(H, W, 3\) uint8"):
        letterbox([frame], (64, 96))
