"""TensorRT backend (TensorRT 10 and 11, pycuda): run a serialized plan with its sidecar checked.

The engine owns one CUDA context (the device's primary context, retained, never `pycuda.autoinit`)
that is pushed and popped around every use, so it can be opened on one thread and run on another.
One stream, page-locked host buffers sized for the profile's max batch, async copies,
`set_input_shape` + `set_tensor_address` + `execute_async_v3`. `timing=True` adds CUDA events and
fills `last_timing` with `h2d`, `compute` and `d2h` (ms).
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from engines.base import Engine, TensorSpec
from engines.errors import MissingDependency, RoadsightError
from engines.trt_plan import check_compat, concrete_shape, read_sidecar

GPU_INSTALL = "pip install 'roadsight[gpu]' on a machine with an NVIDIA GPU"


def import_tensorrt(purpose: str):
    """`import tensorrt`, or a one-line MissingDependency."""
    try:
        import tensorrt
    except ImportError:
        raise MissingDependency("TensorRT", purpose, GPU_INSTALL) from None
    return tensorrt


def import_pycuda(purpose: str):
    """`pycuda.driver`, initialised, or a one-line error (missing package, no driver or GPU)."""
    try:
        import pycuda.driver as cuda
    except ImportError:
        raise MissingDependency("pycuda", purpose, GPU_INSTALL) from None
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as error:
        raise RoadsightError(f"CUDA: cannot start the driver ({error}). Expected an NVIDIA GPU and driver, got none.") from None
    if count == 0:
        raise RoadsightError("CUDA: no GPU found. Expected at least one NVIDIA GPU, got 0. Use an .onnx model on the CPU.")
    return cuda


def cuda_device_index(device: str | int) -> int:
    """'cuda' -> 0, 'cuda:1' -> 1, 2 -> 2."""
    if isinstance(device, int):
        return device
    kind, _, index = str(device).lower().partition(":")
    if kind not in ("cuda", "gpu") or (index and not index.isdigit()):
        raise RoadsightError(f"device: a TensorRT engine runs on a GPU. Expected cuda or cuda:N, got {device!r}.")
    return int(index or 0)


def gpu_identity(cuda, index: int) -> tuple[str, tuple[int, int]]:
    """(name, compute capability) of GPU `index`."""
    if index >= cuda.Device.count():
        raise RoadsightError(f"device cuda:{index}: no such GPU. Expected an index below {cuda.Device.count()}, got {index}.")
    device = cuda.Device(index)
    return device.name(), tuple(device.compute_capability())


@contextmanager
def pushed(context):
    """Make `context` current on this thread for the block."""
    context.push()
    try:
        yield
    finally:
        context.pop()


class TensorRTEngine(Engine):
    """A TensorRT plan (`.engine`/`.plan`) with its `model.engine.json` sidecar.

    `info` (EngineInfo) holds the sidecar: TensorRT version, GPU and profile the plan was built with.

    Args:
        path: the plan written by `roadsight build`.
        device: 'cuda' or 'cuda:N'.
        timing: measure h2d/compute/d2h with CUDA events (adds a little overhead).
    """

    backend = "tensorrt"
    reuses_outputs = True

    def __init__(self, path: str | Path, device: str = "cuda", timing: bool = False):
        super().__init__(path)
        self.device_index = cuda_device_index(device)
        self.timing = timing
        self._context = None  # the CUDA context; TensorRT objects below live inside it
        self._lock = threading.Lock()  # one execution context and one set of buffers: one call at a time

    def _open(self) -> None:
        trt = import_tensorrt("running a .engine")
        cuda = import_pycuda("running a .engine")
        info = read_sidecar(self.path)
        gpu, capability = gpu_identity(cuda, self.device_index)
        for warning in check_compat(info, trt.__version__, gpu, capability, self.path.name):
            warnings.warn(warning, stacklevel=3)
        self._cuda, self.meta, self.info = cuda, info.meta, info
        self._context = cuda.Device(self.device_index).retain_primary_context()
        self._host, self._device, self._events, self._stream = {}, {}, [], None
        try:
            with pushed(self._context):
                self._load(trt)
        except BaseException:
            self._close()
            raise

    def _load(self, trt) -> None:
        cuda = self._cuda
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise RoadsightError(
                f"{self.path.name}: TensorRT cannot deserialize it (see the TensorRT log above). Expected a plan "
                f"written by `roadsight build`, got something else. Rebuild it."
            )
        self._exec = self._engine.create_execution_context()
        self._stream = cuda.Stream()
        self._events = [cuda.Event() for _ in range(4)] if self.timing else []
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        input_names = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        specs = {
            n: TensorSpec(
                n,
                np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))),
                tuple(None if d < 0 else d for d in self._engine.get_tensor_shape(n)),
            )
            for n in names
        }
        self.inputs = [specs[n] for n in input_names]
        self.outputs = [specs[n] for n in names if n not in input_names]
        self.check_meta()
        # buffers for the largest batch the profile allows; smaller batches use the leading part
        self.max_batch = self.inputs[0].shape[0] or tuple(self._engine.get_tensor_profile_shape(input_names[0], 0)[2])[0]
        for spec in self.inputs:
            self._exec.set_input_shape(spec.name, concrete_shape(spec.shape, self.max_batch))
        for spec in self.inputs + self.outputs:
            shape = tuple(self._exec.get_tensor_shape(spec.name))
            self._host[spec.name] = cuda.pagelocked_empty(shape, spec.dtype)
            self._device[spec.name] = cuda.mem_alloc(max(self._host[spec.name].nbytes, 1))
            self._exec.set_tensor_address(spec.name, int(self._device[spec.name]))

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda, stream, events = self._cuda, self._stream, self._events
        batch = next(iter(feed.values())).shape[0]
        with self._lock, pushed(self._context):
            if events:
                events[0].record(stream)
            for spec in self.inputs:
                array = feed[spec.name]
                if not self._exec.set_input_shape(spec.name, array.shape):
                    raise RoadsightError(
                        f"engine input '{spec.name}': TensorRT refused shape {array.shape}. Expected a batch within "
                        f"the engine's profile (max {self.max_batch}), got {array.shape[0]}."
                    )
                host = self._host[spec.name][:batch]
                np.copyto(host, array)
                cuda.memcpy_htod_async(self._device[spec.name], host, stream)
            if events:
                events[1].record(stream)
            if not self._exec.execute_async_v3(stream.handle):
                raise RoadsightError(f"{self.path.name}: TensorRT execution failed (see its log above). Expected success, got failure.")
            if events:
                events[2].record(stream)
            outputs = {}
            for spec in self.outputs:
                shape = tuple(self._exec.get_tensor_shape(spec.name))
                host = self._host[spec.name].reshape(-1)[: int(np.prod(shape))].reshape(shape)
                cuda.memcpy_dtoh_async(host, self._device[spec.name], stream)
                outputs[spec.name] = host
            if events:
                events[3].record(stream)
            stream.synchronize()
        if events:
            for name, (start, end) in zip(("h2d", "compute", "d2h"), zip(events, events[1:])):
                self.last_timing[name] = end.time_since(start)
        return outputs

    def _close(self) -> None:
        if self._context is None:
            return
        with pushed(self._context):
            if self._stream is not None:
                self._stream.synchronize()
            for allocation in self._device.values():
                allocation.free()
            # everything created inside the context goes before it: context, then engine, then runtime
            self._host, self._device, self._events = {}, {}, []
            self._exec = self._engine = self._runtime = self._stream = None
        self._context.detach()
        self._context = None
