"""Stand-ins for `tensorrt` and `pycuda.driver` that follow their documented Python API, for CPU tests.

The fake "plan" is the ONNX file's bytes; the fake execution context runs it with ONNX Runtime, reading
inputs from and writing outputs to fake device memory by address. The fake CUDA driver keeps a
per-thread context stack and refuses device work without a current context, like pycuda does, so the
tests check the engine's context handling, buffer planning and batch slicing. What they cannot check is
real TensorRT behaviour: tests/engines/test_tensorrt.py does that on a GPU.
"""

from __future__ import annotations

import threading
import types

import numpy as np
import onnxruntime as ort

_local = threading.local()
_memory: dict[int, np.ndarray] = {}  # device address -> uint8 buffer


def _stack() -> list:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def _require_context() -> None:
    if not _stack():
        raise RuntimeError("invalid device context - no currently active context?")


# --- pycuda.driver -------------------------------------------------------------------------------
class Error(Exception):
    pass


class Context:
    retained = 0

    def push(self) -> None:
        _stack().append(self)

    @staticmethod
    def pop() -> None:
        _stack().pop()

    def detach(self) -> None:
        Context.retained -= 1


class Device:
    def __init__(self, index: int):
        self.index = index

    @staticmethod
    def count() -> int:
        return 1

    def name(self) -> str:
        return "Fake GPU"

    def compute_capability(self) -> tuple[int, int]:
        return (8, 9)

    def retain_primary_context(self) -> Context:
        Context.retained += 1
        return Context()


class DeviceAllocation:
    def __init__(self, nbytes: int):
        _require_context()
        self.buffer = np.zeros(nbytes, np.uint8)
        _memory[id(self.buffer)] = self.buffer

    def __int__(self) -> int:
        return id(self.buffer)

    def free(self) -> None:
        _require_context()
        _memory.pop(id(self.buffer))


class Stream:
    handle = 1234

    def synchronize(self) -> None:
        _require_context()


class Event:
    def record(self, stream: Stream) -> None:
        _require_context()

    def time_since(self, other: "Event") -> float:
        return 0.25


def memcpy_htod_async(dest: DeviceAllocation, src: np.ndarray, stream: Stream) -> None:
    _require_context()
    raw = np.ascontiguousarray(src).view(np.uint8).ravel()
    dest.buffer[: raw.size] = raw


def memcpy_dtoh_async(dest: np.ndarray, src: DeviceAllocation, stream: Stream) -> None:
    _require_context()
    dest[...] = src.buffer[: dest.nbytes].view(dest.dtype).reshape(dest.shape)


def make_pycuda_driver() -> types.ModuleType:
    module = types.ModuleType("pycuda.driver")
    for name, value in dict(
        Error=Error, Context=Context, Device=Device, Stream=Stream, Event=Event, init=lambda: None,
        pagelocked_empty=lambda shape, dtype: np.empty(shape, dtype), mem_alloc=DeviceAllocation,
        memcpy_htod_async=memcpy_htod_async, memcpy_dtoh_async=memcpy_dtoh_async,
    ).items():
        setattr(module, name, value)
    return module


# --- tensorrt -------------------------------------------------------------------------------------
class TensorIOMode:
    INPUT, OUTPUT = "INPUT", "OUTPUT"


class ExecutionContext:
    def __init__(self, engine: "CudaEngine"):
        self.engine, self.shapes, self.addresses = engine, {}, {}

    def set_input_shape(self, name: str, shape) -> bool:
        if not 1 <= shape[0] <= self.engine.profile[2][0]:
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        batch = self.shapes["images"][0]
        return tuple(batch if d < 0 else d for d in self.engine.get_tensor_shape(name))

    def set_tensor_address(self, name: str, address: int) -> None:
        self.addresses[name] = address

    def execute_async_v3(self, stream_handle: int) -> bool:
        _require_context()
        shape = self.shapes["images"]
        images = _memory[self.addresses["images"]][: int(np.prod(shape)) * 4].view(np.float32).reshape(shape)
        outputs = self.engine.session.run(None, {"images": images})
        for arg, value in zip(self.engine.session.get_outputs(), outputs):
            raw = np.ascontiguousarray(value).view(np.uint8).ravel()
            _memory[self.addresses[arg.name]][: raw.size] = raw
        return True


class CudaEngine:
    def __init__(self, plan: bytes, max_batch: int):
        self.session = ort.InferenceSession(plan, providers=["CPUExecutionProvider"])
        self.args = self.session.get_inputs() + self.session.get_outputs()
        self.num_io_tensors = len(self.args)
        image = self.session.get_inputs()[0].shape
        dynamic = not isinstance(image[0], int)
        self.profile = [(1, *image[1:]), (1, *image[1:]), (max_batch if dynamic else image[0], *image[1:])]

    def get_tensor_name(self, index: int) -> str:
        return self.args[index].name

    def get_tensor_mode(self, name: str) -> str:
        return TensorIOMode.INPUT if name == "images" else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str):
        arg = next(a for a in self.args if a.name == name)
        return np.uint8 if arg.type == "tensor(uint8)" else np.float32

    def get_tensor_shape(self, name: str) -> list[int]:
        arg = next(a for a in self.args if a.name == name)
        return [d if isinstance(d, int) else -1 for d in arg.shape]

    def get_tensor_profile_shape(self, name: str, profile: int) -> list:
        return self.profile

    def create_execution_context(self) -> ExecutionContext:
        _require_context()
        return ExecutionContext(self)


def make_tensorrt(version: str = "10.3.0.26", max_batch: int = 4) -> types.ModuleType:
    """A `tensorrt` module whose Runtime deserializes ONNX bytes (profile max batch `max_batch`)."""

    class Logger:
        WARNING = 2

        def __init__(self, severity: int):
            self.severity = severity

    class Runtime:
        def __init__(self, logger: Logger):
            _require_context()

        def deserialize_cuda_engine(self, plan: bytes):
            try:
                return CudaEngine(plan, max_batch)
            except Exception:
                return None

    module = types.ModuleType("tensorrt")
    module.__version__, module.Logger, module.Runtime = version, Logger, Runtime
    module.TensorIOMode, module.nptype = TensorIOMode, lambda dtype: dtype
    return module


# --- tensorrt builder -----------------------------------------------------------------------------
def add_builder(module: types.ModuleType, strongly_typed_flag: bool = True) -> dict:
    """Give the fake `tensorrt` a builder that "builds" the ONNX bytes; returns a record of the calls."""
    calls: dict = {"profiles": []}

    class NetworkDefinitionCreationFlag:
        if strongly_typed_flag:  # TensorRT 10; 11 is always strongly typed
            STRONGLY_TYPED = 5

    class MemoryPoolType:
        WORKSPACE = 0

    class Network:
        def __init__(self):
            self.inputs, self.path = [], None

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, index: int):
            return self.inputs[index]

    class OnnxParser:
        def __init__(self, network: Network, logger):
            self.network, self.errors = network, []

        def parse_from_file(self, path: str) -> bool:
            try:
                session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            except Exception as error:
                self.errors.append(f"ModelImporter: {str(error).splitlines()[0]}")
                return False
            shape = lambda arg: tuple(d if isinstance(d, int) else -1 for d in arg.shape)  # noqa: E731
            self.network.inputs = [types.SimpleNamespace(name=a.name, shape=shape(a)) for a in session.get_inputs()]
            self.network.path = path
            return True

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, index: int) -> str:
            return self.errors[index]

    class TimingCache:
        def __init__(self, data: bytes):
            self.data = bytes(data)

        def serialize(self) -> bytes:
            return self.data + b"+timings"

    class Config:
        def set_memory_pool_limit(self, pool, size: int) -> None:
            calls["workspace"] = (pool, size)

        def create_timing_cache(self, data: bytes) -> TimingCache:
            calls["cache_in"] = bytes(data)
            return TimingCache(data)

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            return True

        def add_optimization_profile(self, profile) -> int:
            calls["profiles"].append(profile.shapes)
            return 0

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name: str, low, opt, high) -> None:
            self.shapes[name] = (tuple(low), tuple(opt), tuple(high))

    class Builder:
        def __init__(self, logger):
            _require_context()

        def create_network(self, flags: int) -> Network:
            calls["flags"] = flags
            return Network()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config):
            _require_context()
            with open(network.path, "rb") as file:
                return file.read()

    for name, value in dict(
        NetworkDefinitionCreationFlag=NetworkDefinitionCreationFlag, MemoryPoolType=MemoryPoolType,
        OnnxParser=OnnxParser, Builder=Builder,
    ).items():
        setattr(module, name, value)
    return calls
