"""Letterbox frames into the network input and map results back to frame pixels.

Ultralytics-compatible: scale = min(h/H, w/W), resize (bilinear) to round(W*scale) x round(H*scale),
pad with grey 114 centred (left/top = round(pad/2 - 0.1)), BGR->RGB, /255, NCHW. The inverse maps the
resized content exactly onto the frame (per-axis gains content/frame, as ultralytics' scale_boxes).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.errors import RoadsightError

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How one frame was placed in the network input, and the inverse mapping.

    frame_shape: (H, W) of the frame; imgsz: (h, w) of the network input; scale: min(h/H, w/W);
    left/top: padding in network px before the content; content: (height, width) of the resized frame.
    """

    frame_shape: tuple[int, int]
    imgsz: tuple[int, int]
    scale: float
    left: int
    top: int
    content: tuple[int, int]

    @classmethod
    def fit(cls, frame_shape: tuple[int, int], imgsz: tuple[int, int]) -> "Letterbox":
        """The letterbox of a frame of `frame_shape` (H, W) into `imgsz` (h, w)."""
        (height, width), (h, w) = frame_shape[:2], imgsz
        scale = min(h / height, w / width)
        new_w, new_h = max(int(round(width * scale)), 1), max(int(round(height * scale)), 1)
        left, top = int(round((w - new_w) / 2 - 0.1)), int(round((h - new_h) / 2 - 0.1))
        return cls((height, width), (h, w), scale, left, top, (new_h, new_w))

    def _gain_offset(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-coordinate gains (network px per frame px) and offsets for xyxy boxes."""
        gain_y, gain_x = self.content[0] / self.frame_shape[0], self.content[1] / self.frame_shape[1]
        gain = np.array([gain_x, gain_y, gain_x, gain_y], dtype=np.float32)
        return gain, np.array([self.left, self.top, self.left, self.top], dtype=np.float32)

    def boxes_to_network(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) xyxy frame px -> network-input px."""
        gain, offset = self._gain_offset()
        return (np.asarray(boxes, dtype=np.float32) * gain + offset).astype(np.float32)

    def boxes_to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) xyxy network-input px -> frame px, clipped to the frame."""
        gain, offset = self._gain_offset()
        out = (np.asarray(boxes, dtype=np.float32).reshape(-1, 4) - offset) / gain
        height, width = self.frame_shape
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
        return out.astype(np.float32)

    def mask_to_frame(self, mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """(h, w) network-size mask -> (H, W) uint8 0/1 at frame size, padding removed.

        Float probabilities are resized bilinearly, then thresholded (> threshold); integer masks are
        resized with nearest neighbour and used as they are (> 0).
        """
        (new_h, new_w), (height, width) = self.content, self.frame_shape
        crop = mask[self.top : self.top + new_h, self.left : self.left + new_w]
        if np.issubdtype(crop.dtype, np.floating):
            crop = crop.astype(np.float32, copy=False)
            resized = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR) if crop.shape != (height, width) else crop
            return (resized > threshold).astype(np.uint8)
        crop = (crop > 0).astype(np.uint8)
        return cv2.resize(crop, (width, height), interpolation=cv2.INTER_NEAREST) if crop.shape != (height, width) else crop

    def logits_to_frame(self, logits: np.ndarray) -> np.ndarray:
        """(h/s, w/s) float logits at a head's stride s -> (H, W) uint8 0/1 at frame size (logit > 0).

        One bilinear resampling straight to the frame, with half-pixel centres as the network's own upsampling
        (PyTorch align_corners=False): frame pixel x samples the logits at (left + (x + 0.5) * content_w / W) / s - 0.5,
        clamped to the logit cells that cover the content (padding cells never reach the frame). When padding
        and content fall on the logit grid (e.g. 1280x720 into 640x384) that is a crop and one cv2.resize;
        otherwise one cv2.warpAffine.
        """
        (new_h, new_w), (height, width) = self.content, self.frame_shape
        logits = np.asarray(logits, dtype=np.float32)
        stride_y, stride_x = self.imgsz[0] / logits.shape[0], self.imgsz[1] / logits.shape[1]
        first = np.array([self.top / stride_y, self.left / stride_x])
        end = first + [new_h / stride_y, new_w / stride_x]
        (top, left), (bottom, right) = np.floor(first).astype(int), np.ceil(end).astype(int)
        crop = logits[top:bottom, left:right]
        if np.array_equal(first, [top, left]) and np.array_equal(end, [bottom, right]):
            resized = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)
        else:
            matrix = np.float32([
                [new_w / (width * stride_x), 0, (self.left + 0.5 * new_w / width) / stride_x - 0.5 - left],
                [0, new_h / (height * stride_y), (self.top + 0.5 * new_h / height) / stride_y - 0.5 - top],
            ])
            resized = cv2.warpAffine(crop, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REPLICATE)
        return (resized > 0).view(np.uint8)


def check_frame(frame: np.ndarray, index: int = 0) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise RoadsightError(f"frame {index}: not a BGR image. Expected (H, W, 3) uint8, got {got}.")


def letterbox_frame(frame: np.ndarray, imgsz: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """One BGR frame -> (h, w, 3) uint8 letterboxed BGR image and its Letterbox."""
    box = Letterbox.fit(frame.shape[:2], imgsz)
    (new_h, new_w), (h, w) = box.content, imgsz
    if (new_h, new_w) != frame.shape[:2]:
        frame = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    bottom, right = h - new_h - box.top, w - new_w - box.left
    padded = cv2.copyMakeBorder(frame, box.top, bottom, box.left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return padded, box


def letterbox(
    frames: list[np.ndarray], imgsz: tuple[int, int], dtype: type = np.float32
) -> tuple[np.ndarray, list[Letterbox]]:
    """BGR uint8 frames -> (batch (B, 3, h, w) RGB /255 NCHW of `dtype`, [Letterbox per frame])."""
    if not len(frames):
        raise RoadsightError("letterbox: no frames. Expected at least one (H, W, 3) uint8 frame, got 0.")
    images, params = [], []
    for index, frame in enumerate(frames):
        check_frame(frame, index)
        image, box = letterbox_frame(frame, imgsz)
        images.append(image)
        params.append(box)
    # one call does BGR->RGB, /255 and HWC->NCHW for the whole batch
    batch = cv2.dnn.blobFromImages(images, scalefactor=1 / 255.0, swapRB=True, crop=False)
    return (batch if np.dtype(dtype) == np.float32 else batch.astype(dtype)), params
