"""The one `--device` parser: 'cpu', 'cuda', 'cuda:1', 'tensorrt:0', 'openvino:GPU', ... -> `Device(kind, index)`.

Each backend says which kinds it runs on (`Engine.devices`); a new backend adds its kind to `KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from engines.errors import RoadsightError

KINDS = ("cpu", "cuda", "tensorrt", "openvino")  # every device kind some backend accepts
NAMED = ("openvino",)  # kinds whose index is a device name (openvino:GPU, openvino:GPU.1, openvino:NPU)


@dataclass(frozen=True)
class Device:
    """A device kind and its index (None: the default device of that kind)."""

    kind: str
    index: int | str | None = None

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


def parse_device(text: str | Device, kinds: tuple[str, ...] = KINDS, what: str = "this model") -> Device:
    """Parse `kind[:N]` (case-insensitive) and check that `kind` is one of `kinds`; 'cpu' takes no index."""
    accepted = ", ".join(k if k == "cpu" else f"{k}[:GPU]" if k in NAMED else f"{k}[:N]" for k in kinds)
    if isinstance(text, Device):
        device = text
    else:
        kind, colon, index = str(text).strip().partition(":")
        kind = kind.lower()
        named = kind in NAMED and index.replace(".", "").isalnum()
        if colon and not (index.isdigit() or named):
            raise RoadsightError(f"--device {text}: cannot read the index. Expected one of {accepted}, got {text!r}.")
        device = Device(kind, None if not colon else index.upper() if kind in NAMED else int(index))
    if device.kind not in kinds or (device.kind == "cpu" and device.index is not None):
        raise RoadsightError(f"--device {text}: unknown device for {what}. Expected one of {accepted}, got {str(text)!r}.")
    return device
