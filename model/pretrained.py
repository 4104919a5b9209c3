"""Start a RoadNet from an ultralytics detection checkpoint (yolov8n.pt, yolo11n.pt, ... that users download).

RoadNet's backbone, PAN neck and Detect head follow yolov8.yaml layer for layer, so an ultralytics layer `model.I`
maps onto one RoadNet module; tensors are copied where the mapped name exists and the shapes agree (the class
branch's last conv differs whenever the class count does, YOLO11's C3k2 blocks match only where their shapes do).
"""

from __future__ import annotations

from pathlib import Path

from model.ultra import torch

from engines.errors import RoadsightError

# RoadNet's modules in yolov8.yaml order, Upsample/Concat rows left out; YOLO11 adds C2PSA after SPPF (-> attn).
ROADNET_LAYERS = (
    "stem", "stage2.0", "stage2.1", "stage3.0", "stage3.1", "stage4.0", "stage4.1", "stage5.0", "stage5.1", "sppf",
    "top4", "top3", "down3", "bottom4", "down4", "bottom5", "detect",
)  # fmt: skip
PASS_THROUGH = {"Upsample", "Concat"}
ATTENTION = {"C2PSA", "PSA"}
HINT = "Expected an ultralytics detection checkpoint such as yolov8n.pt or yolo11n.pt"


def read_ultralytics(path: str | Path) -> torch.nn.Module:
    """The detection model stored in an ultralytics .pt (its EMA weights when present)."""
    path = Path(path)
    if not path.is_file():
        raise RoadsightError(f"--pretrained: {path} does not exist. {HINT}, downloaded beforehand.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)  # ultralytics pickles its model objects
    except Exception as error:  # noqa: BLE001 - any unpickling failure is the same user problem
        raise RoadsightError(f"--pretrained: cannot read {path} ({type(error).__name__}). {HINT}.") from None
    model = None
    if isinstance(ckpt, dict):
        model = ckpt.get("ema") if ckpt.get("ema") is not None else ckpt.get("model")
    if not isinstance(getattr(model, "model", None), torch.nn.Sequential):
        raise RoadsightError(f"--pretrained: {path} holds no ultralytics model. {HINT}, not a roadsight checkpoint.")
    return model.float()


def layer_map(layers: torch.nn.Sequential) -> dict[str, str]:
    """ultralytics prefix `model.I.` -> RoadNet prefix, from the layer types (yolov8 / YOLO11 layouts)."""
    real = [(i, type(layer).__name__) for i, layer in enumerate(layers) if type(layer).__name__ not in PASS_THROUGH]
    ours = list(ROADNET_LAYERS)
    if len(real) == len(ours) + 1 and real[10][1] in ATTENTION:
        ours.insert(10, "attn")
    if len(real) != len(ours) or real[-1][1] != "Detect":
        kinds = ", ".join(kind for _, kind in real)
        raise RoadsightError(f"--pretrained: unsupported layer layout ({kinds}). {HINT} (a yolov8 or YOLO11 detection model).")
    return {f"model.{i}.": f"{prefix}." for (i, _), prefix in zip(real, ours)}


def transfer(model: torch.nn.Module, path: str | Path) -> tuple[int, int]:
    """Copy every tensor of the checkpoint at path that maps onto model with the same shape; (copied, model's total).

    BatchNorm's num_batches_tracked counters are bookkeeping and not counted. The stem must match: a checkpoint of
    another width shares only a few head convolutions, which is a wrong file rather than a start.
    """
    source = read_ultralytics(path)
    prefixes = layer_map(source.model)
    target = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    copied = {}
    for name, tensor in source.state_dict().items():
        prefix = next((p for p in prefixes if name.startswith(p)), None)
        ours = prefixes[prefix] + name[len(prefix):] if prefix else None
        if ours in target and target[ours].shape == tensor.shape:
            copied[ours] = tensor.to(target[ours].dtype)
    if "stem.conv.weight" not in copied:
        raise RoadsightError(
            f"--pretrained: {path} does not fit this network's backbone (another width?). {HINT} of the same "
            "size (yolov8n.pt for --size n, yolov8s.pt for s)."
        )
    model.load_state_dict(copied, strict=False)
    return len(copied), len(target)
