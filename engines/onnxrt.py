"""ONNX Runtime backend: CPU by default, CUDA or TensorRT execution providers on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.base import Engine, TensorSpec
from engines.device import parse_device
from engines.errors import RoadsightError
from engines.meta import ModelMeta

# ONNX Runtime's type strings -> numpy dtypes (the ones a roadsight model can carry)
ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}
DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def providers_for(device: str, available: list[str]) -> list[str | tuple[str, dict]]:
    """The execution providers for `device`, or a one-line error naming what is installed."""
    parsed = parse_device(device, tuple(DEVICE_PROVIDERS), "ONNX Runtime")
    wanted, index = DEVICE_PROVIDERS[parsed.kind], parsed.index or 0
    if wanted[0] not in available:
        raise RoadsightError(
            f"device {device!r}: ONNX Runtime has no {wanted[0]}. Expected it among the available providers, "
            f"got {available}. Install onnxruntime-gpu on a machine with an NVIDIA GPU, or use --device cpu."
        )
    return [(name, {"device_id": index}) if name != "CPUExecutionProvider" else name for name in wanted]


def _spec(arg) -> TensorSpec:
    if arg.type not in ORT_DTYPES:
        raise RoadsightError(f"tensor '{arg.name}': unsupported type. Expected one of {sorted(ORT_DTYPES)}, got {arg.type}.")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
    return TensorSpec(arg.name, ORT_DTYPES[arg.type], shape)


class OnnxRuntimeEngine(Engine):
    """An `.onnx` model run by ONNX Runtime.

    Args:
        path: the .onnx file (with roadsight metadata).
        device: 'cpu' (default), 'cuda[:N]' or 'tensorrt[:N]' (ONNX Runtime execution providers).
        intra_op_threads: threads inside one operator; 0 lets ONNX Runtime choose.
        inter_op_threads: threads across independent operators; 0 lets ONNX Runtime choose.
    """

    backend = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", intra_op_threads: int = 0, inter_op_threads: int = 0):
        super().__init__(path)
        self.device = str(parse_device(device, tuple(DEVICE_PROVIDERS), "ONNX Runtime"))
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.session = None

    def _open(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.log_severity_level = 3  # errors only: unused-initializer warnings are noise here
        providers = providers_for(self.device, ort.get_available_providers())
        try:
            session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as error:  # ORT raises its own pybind exception types for every load failure
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RoadsightError(
                f"{self.path.name}: ONNX Runtime cannot load it. Expected a valid ONNX model, got: {first_line}. "
                "Re-export it with `roadsight export`."
            ) from error
        wanted = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        if wanted not in session.get_providers():
            raise RoadsightError(
                f"device {self.device!r}: ONNX Runtime could not start {wanted}. Expected it active, got "
                f"{session.get_providers()}. Check the CUDA/cuDNN libraries onnxruntime-gpu needs, or use --device cpu."
            )
        self.session = session
        self.meta = ModelMeta.from_props(session.get_modelmeta().custom_metadata_map, source=self.path.name)
        self.inputs = [_spec(arg) for arg in session.get_inputs()]
        self.outputs = [_spec(arg) for arg in session.get_outputs()]
        self.max_batch = self.inputs[0].shape[0] if self.inputs and self.inputs[0].shape else None
        self.check_meta()

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [spec.name for spec in self.outputs]
        return dict(zip(names, self.session.run(names, feed)))

    def _close(self) -> None:
        self.session = None
