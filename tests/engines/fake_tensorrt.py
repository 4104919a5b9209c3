"""Stand-ins for `tensorrt` and `pycuda.driver` that behave like the real ones where roadsight depends on it.

pycuda (src/cpp/cuda.hpp): a per-thread context stack; device work, allocations, streams and events
need a current context; `retain_primary_context` counts references per device and the primary context
dies (its memory with it) when the count reaches 0; `Context.detach` releases without popping (it pushes
first when the context is not current) and does nothing from another thread than the one that retained
it; freeing memory (explicitly or when collected) from a thread where its context is neither current nor
owned leaks with a warning;
copies and event records are queued on their stream and happen at `stream.synchronize()` (or
`Context.synchronize()`); `Event.time_since` needs both events completed.

TensorRT (10.3 and 11.x Python bindings): a fake plan carries its optimisation profile and the ONNX
that ONNX Runtime runs in its place; `get_tensor_shape` gives -1 for a dynamic batch whatever the
profile says and `set_input_shape` refuses a batch outside [min, max]; `set_timing_cache` returns False
for a cache from another GPU or version and `create_timing_cache` returns None for a damaged blob;
`BuilderFlag.TF32` is on by default; `STRONGLY_TYPED` exists in both versions; a second logger while a
builder or runtime lives triggers TensorRT's "logger differs" warning (recorded in `module.log`).
The fake `tensorrt` uses only pycuda's public API, so it also runs on the real pycuda
(test_tensorrt_pycuda.py, on a GPU without TensorRT). What this cannot check is real TensorRT
behaviour: tests/engines/test_tensorrt.py does that on a GPU.
"""

from __future__ import annotations

import json
import struct
import threading
import types
import warnings
import weakref

import numpy as np
import onnxruntime as ort

GPU, CAPABILITY = "Fake GPU", (8, 9)
PLAN_MAGIC, CACHE_MAGIC = b"FAKEPLAN", b"FAKECACHE"


# --- pycuda.driver -------------------------------------------------------------------------------
class Error(Exception):
    pass


class LogicError(Error):
    pass


def make_pycuda_driver(driver_version: int = 12060, cuda_version: tuple[int, int, int] = (12, 6, 0)) -> types.ModuleType:
    """A fresh `pycuda.driver` with its own contexts and memory (one GPU)."""
    local = threading.local()
    state = types.SimpleNamespace(refs={0: 0}, memory={}, owners={}, poisoned=0)

    def stack() -> list:
        if not hasattr(local, "stack"):
            local.stack = []
        return local.stack

    def current() -> "Context":
        if not stack() or state.refs[stack()[-1].device] == 0:
            raise LogicError("invalid device context - no currently active context?")
        return stack()[-1]

    def release(device: int) -> None:
        state.refs[device] -= 1
        if state.refs[device] == 0:  # the primary context is destroyed: all its memory goes with it
            for address, owner in list(state.owners.items()):
                if owner == device:
                    state.memory.pop(address)[...] = 0xFF  # reads of a dead pinned buffer give garbage
                    state.owners.pop(address)
                    state.poisoned += 1

    class Context:
        def __init__(self, device: int):
            self.device, self.thread, self.valid = device, threading.get_ident(), True

        def push(self) -> None:
            if not self.valid:
                raise LogicError("cannot push invalid context")
            stack().append(self)

        @staticmethod
        def pop() -> None:
            if not stack():
                raise LogicError("cannot pop non-current context")
            stack().pop()

        @staticmethod
        def get_current() -> "Context | None":
            return stack()[-1] if stack() and state.refs[stack()[-1].device] else None

        @staticmethod
        def synchronize() -> None:  # every stream of the context
            current()
            for stream in streams.values():
                stream.synchronize()

        def detach(self) -> None:  # pycuda's primary_context::detach
            if not self.valid:
                raise LogicError("cannot detach from invalid context")
            if stack() and stack()[-1] is self:
                release(self.device)
            elif self.thread == threading.get_ident():
                stack().append(self)  # cuCtxPushCurrent, then cuDevicePrimaryCtxRelease: "pop is implicit"
                release(self.device)
            self.valid = False  # from another thread: nothing is released

    def activate(owner_device: int, owner_thread: int, what: str) -> bool:
        """scoped_context_activation: True when the owner context is (or can be made) current."""
        if stack() and stack()[-1].device == owner_device:
            return True
        if owner_thread != threading.get_ident():
            warnings.warn(f"{what} in out-of-thread context could not be cleaned up", UserWarning, stacklevel=3)
            return False
        return True

    class Device:
        def __init__(self, index: int):
            self.index = index

        @staticmethod
        def count() -> int:
            return 1

        def name(self) -> str:
            return GPU

        def compute_capability(self) -> tuple[int, int]:
            return CAPABILITY

        def retain_primary_context(self) -> Context:
            state.refs[self.index] += 1
            return Context(self.index)

    class _Memory:
        """Device or pinned host memory owned by the current context."""

        kind = "device_allocation"

        def __init__(self, nbytes: int):
            context = current()
            self.device, self.thread = context.device, threading.get_ident()
            self.buffer = np.zeros(max(nbytes, 1), np.uint8)
            state.memory[id(self.buffer)], state.owners[id(self.buffer)] = self.buffer, self.device

        def __int__(self) -> int:
            return id(self.buffer)

        def free(self) -> None:
            if id(self.buffer) in state.memory and activate(self.device, self.thread, self.kind):
                state.memory.pop(id(self.buffer))
                state.owners.pop(id(self.buffer))

        __del__ = free  # pycuda frees on garbage collection too, under the same rules

    class HostAllocation(_Memory):
        kind = "pagelocked_host_allocation"

        def __init__(self, shape, dtype):
            self.shape, self.dtype = tuple(np.atleast_1d(shape)), np.dtype(dtype)
            super().__init__(int(np.prod(self.shape)) * self.dtype.itemsize)

        @property
        def __array_interface__(self) -> dict:
            view = self.buffer[: int(np.prod(self.shape)) * self.dtype.itemsize].view(self.dtype).reshape(self.shape)
            return view.__array_interface__

    def pagelocked_empty(shape, dtype) -> np.ndarray:
        """An array whose `.base` is its HostAllocation, as pycuda's."""
        return np.asarray(HostAllocation(shape, dtype))

    streams: dict[int, "Stream"] = {}

    class Stream:
        def __init__(self):
            current()
            self.queue, self.handle = [], 1000 + len(streams)
            streams[self.handle] = self

        def enqueue(self, work) -> None:
            current()
            self.queue.append(work)

        def synchronize(self) -> None:
            current()
            while self.queue:
                self.queue.pop(0)()

    clock = [0.0]

    class Event:
        def __init__(self):
            current()
            self.done = None

        def record(self, stream: Stream) -> None:
            self.done = None
            stream.enqueue(lambda: setattr(self, "done", clock[0]))

        def time_since(self, start: "Event") -> float:
            if self.done is None or start.done is None:
                raise LogicError("cuEventElapsedTime failed: device not ready")
            return self.done - start.done

    def memcpy_htod_async(dest: _Memory, src: np.ndarray, stream: Stream) -> None:
        def copy():  # reads `src` when the stream gets there, as the DMA engine does
            raw = np.ascontiguousarray(src).view(np.uint8).ravel()
            dest.buffer[: raw.size] = raw
            clock[0] += raw.size / 1e6

        stream.enqueue(copy)

    def memcpy_dtoh_async(dest: np.ndarray, src: _Memory, stream: Stream) -> None:
        def copy():
            dest[...] = src.buffer[: dest.nbytes].view(dest.dtype).reshape(dest.shape)
            clock[0] += dest.nbytes / 1e6

        stream.enqueue(copy)

    def memcpy_htod(dest, src: np.ndarray) -> None:
        current()
        raw = np.ascontiguousarray(src).view(np.uint8).ravel()
        state.memory[int(dest)][: raw.size] = raw

    def memcpy_dtoh(dest: np.ndarray, src) -> None:
        current()
        dest[...] = state.memory[int(src)][: dest.nbytes].view(dest.dtype).reshape(dest.shape)

    module = types.ModuleType("pycuda.driver")
    for name, value in dict(
        Error=Error, LogicError=LogicError, Context=Context, Device=Device, Stream=Stream, Event=Event,
        init=lambda: None, pagelocked_empty=pagelocked_empty, mem_alloc=_Memory, memcpy_htod_async=memcpy_htod_async,
        memcpy_dtoh_async=memcpy_dtoh_async, memcpy_htod=memcpy_htod, memcpy_dtoh=memcpy_dtoh, get_driver_version=lambda: driver_version, get_version=lambda: cuda_version,
        state=state, stack=stack, current=current, clock=clock,
    ).items():
        setattr(module, name, value)
    return module


# --- fake plans and timing caches ----------------------------------------------------------------
def make_plan(onnx_bytes: bytes, profile=None, tf32: bool = True) -> bytes:
    """A fake serialized engine: its profile ([min, opt, max] shapes of `images`), TF32 flag and ONNX."""
    header = json.dumps({"profile": profile, "tf32": tf32}).encode()
    return PLAN_MAGIC + struct.pack("<I", len(header)) + header + onnx_bytes


def read_plan(plan: bytes) -> tuple[dict, bytes]:
    if not plan.startswith(PLAN_MAGIC):
        raise ValueError("not a plan")
    (size,) = struct.unpack("<I", plan[len(PLAN_MAGIC) : len(PLAN_MAGIC) + 4])
    start = len(PLAN_MAGIC) + 4
    return json.loads(plan[start : start + size]), plan[start + size :]


def cache_blob(tag: str, entries: bytes = b"") -> bytes:
    """A timing cache as TensorRT serializes it, made on the GPU/version `tag`."""
    return CACHE_MAGIC + tag.encode() + b"|" + entries


# --- tensorrt -------------------------------------------------------------------------------------
class TensorIOMode:
    INPUT, OUTPUT = "INPUT", "OUTPUT"


def make_tensorrt(cuda: types.ModuleType, version: str = "10.3.0.26") -> types.ModuleType:
    """A `tensorrt` module whose Runtime deserializes fake plans (see make_plan), on `cuda`: the fake
    driver above or the real `pycuda.driver` (it uses only pycuda's own API)."""
    module = types.ModuleType("tensorrt")
    module.log = []  # TensorRT's own warnings
    live, registered = weakref.WeakSet(), [None]

    def need_context() -> None:
        if cuda.Context.get_current() is None:
            raise cuda.LogicError("invalid device context - no currently active context?")

    def register(owner, logger, api: str) -> None:
        if not live:
            registered[0] = logger
        elif logger is not registered[0]:
            module.log.append(f"Logger passed to {api} differs from one already registered for an existing builder, runtime, or refitter.")
        live.add(owner)

    class Logger:
        WARNING = 2

        def __init__(self, severity: int):
            self.severity = severity

    class ExecutionContext:
        def __init__(self, engine: "CudaEngine"):
            self.engine, self.shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name: str, shape) -> bool:
            low, _, high = self.engine.profile
            if not low[0] <= shape[0] <= high[0]:
                module.log.append(f"IExecutionContext::setInputShape: {name} dimensions {tuple(shape)} outside the profile")
                return False
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple:
            batch = self.shapes["images"][0]
            return tuple(batch if d < 0 else d for d in self.engine.get_tensor_shape(name))

        def set_tensor_address(self, name: str, address: int) -> bool:
            self.addresses[name] = address
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            need_context()
            cuda.Context.synchronize()  # the "kernels" run after the copies queued before them
            images = np.empty(self.shapes["images"], np.float32)
            cuda.memcpy_dtoh(images, self.addresses["images"])
            outputs = self.engine.session.run(None, {"images": images})
            for arg, value in zip(self.engine.session.get_outputs(), outputs):
                cuda.memcpy_htod(self.addresses[arg.name], np.ascontiguousarray(value))
            if hasattr(cuda, "clock"):  # the fake driver's event clock: compute takes 1 ms
                cuda.clock[0] += 1.0
            return True

    class CudaEngine:
        def __init__(self, plan: bytes):
            header, onnx_bytes = read_plan(plan)
            self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
            self.args = self.session.get_inputs() + self.session.get_outputs()
            self.num_io_tensors = len(self.args)
            image = self.session.get_inputs()[0].shape
            static = [tuple(image)] * 3 if isinstance(image[0], int) else None
            self.profile = [tuple(s) for s in (header["profile"] or static)]
            self.tf32 = header["tf32"]

        def get_tensor_name(self, index: int) -> str:
            return self.args[index].name

        def get_tensor_mode(self, name: str) -> str:
            return TensorIOMode.INPUT if name == "images" else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str):
            arg = next(a for a in self.args if a.name == name)
            return np.uint8 if arg.type == "tensor(uint8)" else np.float32

        def get_tensor_shape(self, name: str) -> list[int]:  # -1 for the dynamic batch, whatever the profile
            arg = next(a for a in self.args if a.name == name)
            return [d if isinstance(d, int) else -1 for d in arg.shape]

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list:
            return [list(s) for s in self.profile]

        def create_execution_context(self) -> ExecutionContext:
            need_context()
            return ExecutionContext(self)

    class Runtime:
        def __init__(self, logger: Logger):
            need_context()
            register(self, logger, "createInferRuntime")

        def deserialize_cuda_engine(self, plan: bytes):
            try:
                return CudaEngine(plan)
            except Exception:
                module.log.append("IRuntime::deserializeCudaEngine: Error Code 1: Serialization (invalid plan)")
                return None

    module.__version__, module.Logger, module.Runtime = version, Logger, Runtime
    module.TensorIOMode, module.nptype = TensorIOMode, lambda dtype: dtype
    module.register, module.need_context = register, need_context
    return module


# --- tensorrt builder -----------------------------------------------------------------------------
def add_builder(module: types.ModuleType) -> dict:
    """Give the fake `tensorrt` a builder that writes fake plans; returns a record of the calls."""
    calls: dict = {"profiles": []}
    tag = f"{GPU}/{module.__version__}"
    eleven = module.__version__.startswith("11.")

    class NetworkDefinitionCreationFlag:
        STRONGLY_TYPED = 5  # TensorRT 10; 11 keeps it (always strongly typed)

    class BuilderFlag:
        TF32 = 6
        if not eleven:  # TensorRT 11 dropped the weak-typing precision flags
            FP16, INT8 = 0, 1

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
        def __init__(self, tag: str, entries: bytes):
            self.tag, self.entries = tag, entries

        def serialize(self) -> bytes:
            return cache_blob(self.tag, self.entries)

    class Config:
        def __init__(self):
            self.flags, self.profiles, self.cache = {BuilderFlag.TF32}, [], None

        def set_memory_pool_limit(self, pool, size: int) -> None:
            calls["workspace"] = (pool, size)

        def set_flag(self, flag) -> None:
            self.flags.add(flag)

        def clear_flag(self, flag) -> None:
            self.flags.discard(flag)

        def get_flag(self, flag) -> bool:
            return flag in self.flags

        def create_timing_cache(self, data: bytes) -> TimingCache | None:
            data = bytes(data)
            if not data:
                return TimingCache(tag, b"")
            if not data.startswith(CACHE_MAGIC) or b"|" not in data:
                module.log.append("IBuilderConfig::createTimingCache: Error Code 3: damaged timing cache")
                return None
            other, entries = data[len(CACHE_MAGIC) :].split(b"|", 1)
            return TimingCache(other.decode(), entries)

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            if cache.tag != tag and not ignore_mismatch:
                module.log.append("IBuilderConfig::setTimingCache: the timing cache was created on another device or version")
                return False
            self.cache = cache
            return True

        def get_timing_cache(self) -> TimingCache | None:
            return self.cache

        def add_optimization_profile(self, profile) -> int:
            self.profiles.append(profile.shapes)
            calls["profiles"].append(profile.shapes)
            return 0

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name: str, low, opt, high) -> None:
            self.shapes[name] = (tuple(low), tuple(opt), tuple(high))

    class Builder:
        def __init__(self, logger):
            module.need_context()
            module.register(self, logger, "createInferBuilder")

        def create_network(self, flags: int) -> Network:
            calls["flags"] = flags
            return Network()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config):
            module.need_context()
            dynamic = [t.name for t in network.inputs if t.shape[0] < 0]
            if dynamic and not config.profiles:
                module.log.append("Network has dynamic or shape inputs, but no optimization profile has been defined.")
                return None
            if config.cache is not None:
                config.cache.entries += b"+timings"
            calls["tf32"] = config.get_flag(BuilderFlag.TF32)
            profile = config.profiles[0]["images"] if config.profiles else None
            with open(network.path, "rb") as file:
                return make_plan(file.read(), [list(s) for s in profile] if profile else None, calls["tf32"])

    for name, value in dict(
        NetworkDefinitionCreationFlag=NetworkDefinitionCreationFlag, BuilderFlag=BuilderFlag, MemoryPoolType=MemoryPoolType,
        OnnxParser=OnnxParser, Builder=Builder,
    ).items():
        setattr(module, name, value)
    return calls
