"""Letterbox geometry, pixel layout and the inverse mapping of boxes and masks."""

import cv2
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


def _sample_logits(box: Letterbox, logits: np.ndarray) -> np.ndarray:
    """Reference for `logits_to_frame`: each frame pixel centre mapped through the letterbox into the logit
    grid (half-pixel centres), clamped to the cells that cover the content, sampled bilinearly in float64, > 0."""
    (height, width), (new_h, new_w) = box.frame_shape, box.content
    stride_y, stride_x = box.imgsz[0] / logits.shape[0], box.imgsz[1] / logits.shape[1]
    ys = (box.top + (np.arange(height) + 0.5) * new_h / height) / stride_y - 0.5
    xs = (box.left + (np.arange(width) + 0.5) * new_w / width) / stride_x - 0.5
    rows = np.floor(box.top / stride_y), np.ceil((box.top + new_h) / stride_y) - 1
    cols = np.floor(box.left / stride_x), np.ceil((box.left + new_w) / stride_x) - 1
    ys, xs = np.clip(ys, *rows), np.clip(xs, *cols)
    y0, x0 = np.minimum(ys.astype(int), logits.shape[0] - 2), np.minimum(xs.astype(int), logits.shape[1] - 2)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    grid = logits.astype(np.float64)
    top = grid[y0][:, x0] * (1 - wx) + grid[y0][:, x0 + 1] * wx
    bottom = grid[y0 + 1][:, x0] * (1 - wx) + grid[y0 + 1][:, x0 + 1] * wx
    return ((top * (1 - wy) + bottom * wy) > 0).astype(np.uint8)


@pytest.mark.parametrize(("frame_shape", "stride"), [((720, 1280), 4), ((720, 1280), 2), ((384, 640), 4), ((700, 1000), 4),
                                                     ((480, 640), 2), ((1080, 1440), 2)])
def test_logits_go_straight_to_the_frame_as_a_bilinear_sampler_would(frame_shape, stride):
    """On the logit grid (cv2.resize) and off it (cv2.warpAffine) the mask is the reference sampler's."""
    box = Letterbox.fit(frame_shape, (384, 640))
    rng = np.random.default_rng(stride)
    coarse = rng.normal(size=(384 // stride // 8, 640 // stride // 8)).astype(np.float32)
    logits = cv2.resize(coarse, (640 // stride, 384 // stride), interpolation=cv2.INTER_CUBIC)  # smooth regions
    logits[: box.top // stride] = 5.0  # the padding says "yes": it must not leak into the frame
    out = box.logits_to_frame(logits)
    want = _sample_logits(box, logits)
    assert out.shape == frame_shape and out.dtype == np.uint8 and 0.1 < want.mean() < 0.9
    assert (out != want).mean() < 2e-3  # cv2's fixed-point weights move a few boundary pixels
    shifted = _sample_logits(Letterbox(box.frame_shape, box.imgsz, box.scale, box.left + stride, box.top + stride, box.content), logits)
    assert (shifted != want).mean() > 5 * (out != want).mean()  # one logit cell off would be seen
