"""TensorRT backend (TensorRT 10 and 11, pycuda): run a serialized plan with its sidecar checked.

CUDA context: the device's primary context, retained once for the whole process (as
`pycuda.autoprimaryctx` does, without making it current everywhere) and pushed/popped around every use,
so an engine can be opened, run and closed on different threads. It is never detached: pycuda's
`detach` of a primary context pushes it, releases it and never pops, and does nothing at all from
another thread than the one that retained it; the driver releases it at exit. pycuda stays (rather
than NVIDIA's cuda-python): it builds against whatever CUDA a machine has (JetPack 6's 12.x, desktop
13.x), and the few calls used here are the same across its releases.

One stream, page-locked host buffers sized for the profile's max batch, async copies,
`set_input_shape` + `set_tensor_address` + `execute_async_v3`. A batch below the profile's minimum is
padded up to it and the outputs sliced back. Outputs are copies: page-locked memory belongs to the
context and the engine reuses it. `timing=True` adds CUDA events and fills `last_timing` with `h2d`,
`compute` and `d2h` (ms).
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from engines.base import Engine, TensorSpec
from engines.device import parse_device
from engines.errors import MissingDependency, RoadsightError
from engines.trt_plan import check_compat, concrete_shape, read_sidecar

GPU_INSTALL = "pip install 'roadsight[gpu]' on a machine with an NVIDIA GPU (on Jetson: JetPack's TensorRT, see the README)"

_shared_lock = threading.Lock()
_loggers: dict = {}  # tensorrt module -> its one Logger
_contexts: dict = {}  # (pycuda.driver module, device index) -> retained primary context


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
    return parse_device(device, ("cuda",), "a TensorRT engine (it runs on a GPU)").index or 0


def gpu_identity(cuda, index: int) -> tuple[str, tuple[int, int]]:
    """(name, compute capability) of GPU `index`."""
    if index >= cuda.Device.count():
        raise RoadsightError(f"device cuda:{index}: no such GPU. Expected an index below {cuda.Device.count()}, got {index}.")
    device = cuda.Device(index)
    return device.name(), tuple(device.compute_capability())


def trt_logger(trt):
    """The process's one TensorRT logger: TensorRT keeps the first and warns about every other one."""
    with _shared_lock:
        if trt not in _loggers:
            _loggers[trt] = trt.Logger(trt.Logger.WARNING)
        return _loggers[trt]


def primary_context(cuda, index: int):
    """GPU `index`'s primary context, retained on first use and kept for the life of the process."""
    with _shared_lock:
        if (cuda, index) not in _contexts:
            _contexts[cuda, index] = cuda.Device(index).retain_primary_context()
        return _contexts[cuda, index]


def found_versions(trt, cuda) -> str:
    """'TensorRT 10.3.0.30, CUDA driver 12.6, pycuda 2025.1.2 (built for CUDA 12.6)': what this machine has."""
    import pycuda

    driver = cuda.get_driver_version()
    built = ".".join(map(str, cuda.get_version()[:2]))
    return (
        f"TensorRT {trt.__version__}, CUDA driver {driver // 1000}.{driver % 1000 // 10}, "
        f"pycuda {getattr(pycuda, 'VERSION_TEXT', '?')} (built for CUDA {built})"
    )


def describe_runtime(purpose: str) -> str:
    """found_versions() of this machine, or a one-line MissingDependency."""
    return found_versions(import_tensorrt(purpose), import_pycuda(purpose))


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

    `info` (EngineInfo) holds the sidecar: TensorRT version, GPU and profile the plan was built with;
    `min_batch` and `max_batch` the profile's limits (smaller batches are padded); `versions` what
    TensorRT, CUDA driver and pycuda it runs on.

    Args:
        path: the plan written by `roadsight build`.
        device: 'cuda' or 'cuda:N'.
        timing: measure h2d/compute/d2h with CUDA events (adds a little overhead).
    """

    backend = "tensorrt"

    def __init__(self, path: str | Path, device: str = "cuda", timing: bool = False):
        super().__init__(path)
        self.device_index = cuda_device_index(device)
        self.timing = timing
        self.min_batch, self.versions = 1, ""
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
        self.versions = found_versions(trt, cuda)
        self._context = primary_context(cuda, self.device_index)
        self._host, self._device, self._events, self._stream = {}, {}, [], None
        try:
            with pushed(self._context):
                self._load(trt)
        except BaseException:
            self._close()
            raise

    def _load(self, trt) -> None:
        cuda = self._cuda
        self._runtime = trt.Runtime(trt_logger(trt))
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
        fixed = self.inputs[0].shape[0]
        if fixed is None:  # a dynamic batch reads -1 whatever the profile: its limits come from the profile
            low, _, high = self._engine.get_tensor_profile_shape(input_names[0], 0)
            self.min_batch, self.max_batch = int(low[0]), int(high[0])
        else:
            self.min_batch = self.max_batch = fixed
        # buffers for the largest batch the profile allows; smaller batches use the leading part
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
        rows = max(batch, self.min_batch)  # padded up to the profile's minimum
        with self._lock, pushed(self._context):
            if events:
                events[0].record(stream)
            for spec in self.inputs:
                array = feed[spec.name]
                if not self._exec.set_input_shape(spec.name, (rows, *array.shape[1:])):
                    raise RoadsightError(
                        f"engine input '{spec.name}': TensorRT refused shape {array.shape}. Expected a batch within "
                        f"the engine's profile ({self.min_batch} to {self.max_batch}), got {array.shape[0]}."
                    )
                host = self._host[spec.name][:rows]
                host[:batch] = array
                host[batch:] = 0
                cuda.memcpy_htod_async(self._device[spec.name], host, stream)
            if events:
                events[1].record(stream)
            if not self._exec.execute_async_v3(stream.handle):
                raise RoadsightError(f"{self.path.name}: TensorRT execution failed (see its log above). Check the engine with `trtexec --loadEngine` or rebuild it.")
            if events:
                events[2].record(stream)
            hosts = {}
            for spec in self.outputs:
                shape = tuple(self._exec.get_tensor_shape(spec.name))
                hosts[spec.name] = self._host[spec.name].reshape(-1)[: int(np.prod(shape))].reshape(shape)
                cuda.memcpy_dtoh_async(hosts[spec.name], self._device[spec.name], stream)
            if events:
                events[3].record(stream)
            stream.synchronize()
            outputs = {name: host[:batch].copy() for name, host in hosts.items()}
            if events:
                for name, (start, end) in zip(("h2d", "compute", "d2h"), zip(events, events[1:])):
                    self.last_timing[name] = end.time_since(start)
        return outputs

    def _close(self) -> None:
        if self._context is None:
            return
        with pushed(self._context):  # frees on this thread, whichever thread opened the engine
            if self._stream is not None:
                self._stream.synchronize()
            for allocation in self._device.values():
                allocation.free()
            for array in self._host.values():
                array.base.free()
            # everything created inside the context goes while it is current: context, then engine, then runtime
            self._host, self._device, self._events = {}, {}, []
            self._exec = self._engine = self._runtime = self._stream = None
        self._context = None  # the primary context stays retained for the process (see the module docstring)
