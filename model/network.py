"""RoadNet: YOLOv8 backbone + PAN neck + outlier-aware attention + Detect + drivable/lane segmentation heads.

Layout (channels for n; s doubles them), strides in brackets:

    stem Conv 16 [2] -> Conv 32 [4] -> C2f 32 (= skip4) -> Conv 64 [8] -> C2f 64 -> Conv 128 [16] -> C2f 128
    -> Conv 256 [32] -> C2f 256 -> SPPF 256 -> GatedC2PSA 256 (attention stage, stride 32)
    PAN neck as yolov8.yaml -> P3 64 [8], P4 128 [16], P5 256 [32] -> Detect (DFL, YOLOv8 "legacy" head)
    SegHead(P3, skip4) x 2 -> drivable logits [4], lane logits [2]

Segmentation resolution: lane markings are 2-8 px wide at 640x384 (about 4-16 px at 1280x720 divided by 2).
At stride 8 a marking covers a fraction of one cell, so a stride-8 head can only blur it; IoU of the lane class
is dominated by boundary pixels. Both heads therefore start from the neck's P3 (semantic context, stride 8),
upsample and fuse the stride-4 backbone feature (edges), and
- lane predicts at stride 2 (320x192 for 640x384): a 3-px line spans 1.5 cells, and bilinear upsampling of
  logits to the input size keeps it continuous;
- drivable predicts at stride 4: regions are large, so stride 4 only moves the boundary by ~1 px after bilinear
  upsampling, at a quarter of the stride-2 cost.
Measured ceiling (an oracle predicting each cell's exact line coverage, logits upsampled bilinearly, threshold 0.5,
random lines at 640x384): lane IoU 0.99 / 0.31 / 0.01 for 2-px lines at stride 2 / 4 / 8, 0.99 / 0.83 / 0.12 for
3-px lines, 1.00 / 0.95 / 0.51 for 5-px lines.
Exported models (`seg_output="logits"`, the default) emit the logits at the heads' strides; postprocess resizes them
bilinearly straight to the frame and thresholds at 0. A resize to the input size inside the network cost OpenVINO
5 of 20 ms a frame on a CPU (single-channel Interpolate) and was resized again to the frame anyway. `prob`/`mask`
keep that resize (bilinear on logits, then sigmoid) inside the graph, for older consumers.
"""

from __future__ import annotations

import math
from pathlib import Path

from model.ultra import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.nn.modules import C2f, Concat, Conv, Detect, SPPF
from ultralytics.utils.ops import make_divisible
from ultralytics.utils.tal import dist2bbox, make_anchors
from ultralytics.utils.torch_utils import fuse_conv_and_bn, initialize_weights

from engines.errors import RoadsightError
from model.attention import GatedC2PSA
from model.config import SIZES, ModelConfig

DETECT_STRIDES = (8.0, 16.0, 32.0)


class SegHead(nn.Module):
    """P3 (stride 8) + stride-4 skip -> one-channel logits at stride 4 or 2.

    P3 -> 1x1 Conv -> x2 up -> concat skip4 -> 3x3 Conv -> 3x3 Conv [-> x2 up -> 3x3 Conv] -> 1x1 Conv2d.
    """

    def __init__(self, c_p3: int, c_skip: int, c_mid: int, out_stride: int, prior: float):
        super().__init__()
        if out_stride not in (2, 4):
            raise ValueError(f"SegHead out_stride must be 2 or 4, got {out_stride}")
        self.out_stride = out_stride
        self.reduce = Conv(c_p3, c_mid, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.cat = Concat(1)
        self.fuse = nn.Sequential(Conv(c_mid + c_skip, c_mid, 3), Conv(c_mid, c_mid, 3))
        c_out = c_mid
        if out_stride == 2:
            c_out = max(c_mid // 2, 8)
            self.refine = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), Conv(c_mid, c_out, 3))
        else:
            self.refine = nn.Identity()
        self.pred = nn.Conv2d(c_out, 1, 1)
        nn.init.constant_(self.pred.bias, math.log(prior / (1.0 - prior)))  # start at the class prior

    def forward(self, p3: torch.Tensor, skip4: torch.Tensor) -> torch.Tensor:
        x = self.fuse(self.cat([self.up(self.reduce(p3)), skip4]))
        return self.pred(self.refine(x))


class RoadNet(nn.Module):
    """Multi-task network. train(): raw outputs for the loss; eval(): the raw outputs of ARCHITECTURE.md.

    Attributes the exporter may set: `seg_output` ("logits" -> float logits at the heads' strides, "prob" -> float
    probabilities at input size, "mask" -> uint8 0/1 at input size).
    Call `prepare_export()` before tracing (folds BN, switches C2f to split()).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.seg_output = "logits"
        depth, width, max_ch = SIZES[cfg.size]

        def ch(c: int) -> int:
            return make_divisible(min(c, max_ch) * width, 8)

        def rep(n: int) -> int:
            return max(round(n * depth), 1)

        c1, c2, c3, c4, c5 = ch(64), ch(128), ch(256), ch(512), ch(1024)
        # backbone (yolov8.yaml rows 0-9)
        self.stem = Conv(3, c1, 3, 2)
        self.stage2 = nn.Sequential(Conv(c1, c2, 3, 2), C2f(c2, c2, rep(3), shortcut=True))
        self.stage3 = nn.Sequential(Conv(c2, c3, 3, 2), C2f(c3, c3, rep(6), shortcut=True))
        self.stage4 = nn.Sequential(Conv(c3, c4, 3, 2), C2f(c4, c4, rep(6), shortcut=True))
        self.stage5 = nn.Sequential(Conv(c4, c5, 3, 2), C2f(c5, c5, rep(3), shortcut=True))
        self.sppf = SPPF(c5, c5, 5)
        self.sppf.cv1.act = nn.SiLU()  # 8.4 builds cv1 without activation; YOLOv8's SPPF has SiLU there
        # attention stage at stride 32 (like YOLO11's C2PSA)
        self.attn = GatedC2PSA(
            c5,
            c5,
            n=1,
            gamma=cfg.gamma if cfg.clipped else 0.0,
            zeta=cfg.zeta if cfg.clipped else 1.0,
            gated=cfg.gated,
            gate_bias=cfg.gate_bias,
        )
        # PAN neck (yolov8.yaml rows 10-21)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.cat = Concat(1)
        self.top4 = C2f(c5 + c4, c4, rep(3))
        self.top3 = C2f(c4 + c3, c3, rep(3))
        self.down3 = Conv(c3, c3, 3, 2)
        self.bottom4 = C2f(c3 + c4, c4, rep(3))
        self.down4 = Conv(c4, c4, 3, 2)
        self.bottom5 = C2f(c4 + c5, c5, rep(3))
        # heads
        legacy = Detect.legacy
        Detect.legacy = True  # YOLOv8 head (Conv3x3 class branch); a class attribute read in __init__
        try:
            self.detect = Detect(nc=cfg.nc, reg_max=cfg.reg_max, ch=(c3, c4, c5))
        finally:
            Detect.legacy = legacy
        self.detect.legacy = True
        self.detect.stride = torch.tensor(DETECT_STRIDES)
        self.detect.bias_init()
        self.drivable_head = SegHead(c3, c2, max(c3 // 2, 16), out_stride=4, prior=0.2)
        self.lane_head = SegHead(c3, c2, max(c3 // 2, 16), out_stride=2, prior=0.02)
        initialize_weights(self)  # ultralytics' BN eps/momentum, as DetectionModel does

    @property
    def stride(self) -> torch.Tensor:
        """Detection strides (read by ultralytics' get_flops and the loss)."""
        return self.detect.stride

    def _apply(self, fn, *args, **kwargs):
        """Move Detect.stride (a plain tensor attribute) with the parameters, as ultralytics' BaseModel does."""
        super()._apply(fn, *args, **kwargs)
        self.detect.stride = fn(self.detect.stride)
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 3, h, w) RGB in [0, 1], h and w multiples of 32."""
        skip4 = self.stage2(self.stem(x))
        b3 = self.stage3(skip4)
        b4 = self.stage4(b3)
        b5 = self.attn(self.sppf(self.stage5(b4)))
        t4 = self.top4(self.cat([self.up(b5), b4]))
        p3 = self.top3(self.cat([self.up(t4), b3]))
        p4 = self.bottom4(self.cat([self.down3(p3), t4]))
        p5 = self.bottom5(self.cat([self.down4(p4), b5]))
        feats = [p3, p4, p5]
        det = self.detect.forward_head(feats, box_head=self.detect.cv2, cls_head=self.detect.cv3)
        drivable = self.drivable_head(p3, skip4)
        lane = self.lane_head(p3, skip4)
        if self.training:
            return {"det": det, "drivable": drivable, "lane": lane}
        return {
            "boxes": self.decode_boxes(det, x.shape[2], x.shape[3]),
            "scores": det["scores"].sigmoid(),
            "drivable": self._seg_out(drivable, self.drivable_head.out_stride),
            "lane": self._seg_out(lane, self.lane_head.out_stride),
        }

    def decode_boxes(self, det: dict, h: int, w: int) -> torch.Tensor:
        """Detect's raw dict -> (B, 4, A) xyxy boxes in input pixels, clipped to the image."""
        anchors, strides = make_anchors(det["feats"], self.detect.stride, 0.5)  # (A, 2) grid units, (A, 1)
        dist = self.detect.dfl(det["boxes"])  # (B, 4, A) ltrb in grid units
        boxes = dist2bbox(dist, anchors.transpose(0, 1).unsqueeze(0), xywh=False, dim=1) * strides.transpose(0, 1)
        limit = boxes.new_tensor([w, h, w, h]).view(1, 4, 1)
        return torch.minimum(boxes.clamp(min=0.0), limit)

    def _seg_out(self, logits: torch.Tensor, stride: int) -> torch.Tensor:
        """(B, 1, h', w') logits -> (B, h', w') logits as they are ('logits'), or (B, h, w) probability
        ('prob') or uint8 mask ('mask') at input size."""
        if self.seg_output == "logits":
            return logits[:, 0]
        logits = F.interpolate(logits, scale_factor=float(stride), mode="bilinear", align_corners=False)[:, 0]
        return (logits > 0).to(torch.uint8) if self.seg_output == "mask" else logits.sigmoid()

    def fuse(self) -> "RoadNet":
        """Fold BatchNorm into the preceding convolutions (inference only; irreversible)."""
        for m in self.modules():
            if isinstance(m, Conv) and hasattr(m, "bn"):
                m.conv = fuse_conv_and_bn(m.conv, m.bn)
                delattr(m, "bn")
                m.forward = m.forward_fuse
        return self

    def prepare_export(self) -> "RoadNet":
        """Eval mode, BN folded, C2f on split() (what ultralytics' exporter does), no gradients."""
        self.eval().fuse()
        for m in self.modules():
            if isinstance(m, C2f):
                m.forward = m.forward_split
        for p in self.parameters():
            p.requires_grad_(False)
        return self


def save_checkpoint(path: str | Path, model: RoadNet, cfg: ModelConfig, **extra) -> Path:
    """Write {"config", "model" (float32 state_dict), **extra} to path; returns the path."""
    from engines.meta import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu() if v.is_floating_point() else v.cpu() for k, v in model.state_dict().items()}
    torch.save({"config": cfg.to_dict(), "model": state, "version": __version__, **extra}, path)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict (weights only, no pickled code)."""
    path = Path(path)
    if not path.is_file():
        raise RoadsightError(f"checkpoint: {path} does not exist. Expected a .pt written by `roadsight train`.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is the same user problem
        raise RoadsightError(
            f"checkpoint: cannot read {path} ({type(error).__name__}). Expected a .pt written by `roadsight train`."
        ) from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise RoadsightError(
            f"checkpoint: {path} has no roadsight config/model. Expected a .pt written by `roadsight train`, "
            "not an ultralytics YOLO checkpoint."
        )
    return ckpt


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> RoadNet:
    """Rebuild the RoadNet stored in path: eval mode, float32, on device."""
    ckpt = read_checkpoint(path)
    model = RoadNet(ModelConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.float().eval().to(device)
