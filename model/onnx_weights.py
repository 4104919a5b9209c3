"""FP16 storage for an FP32 ONNX: half the file, the same FP32 arithmetic.

`store_fp16` swaps each large float32 initializer W for a float16 initializer `W.fp16` feeding a Cast(to=float)
whose output is named W, so no consumer changes; ONNX Runtime and TensorRT fold those Casts when they load the
model. Rounding the weights to FP16 moves the outputs by about 1e-3 relative. `load_fp32` restores plain float32
initializers, which the INT8 quantizers need (they quantize weight initializers, not Cast outputs). Torch-free.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SUFFIX = ".fp16"
FP16_MAX = 65504.0


def store_fp16(model: onnx.ModelProto, min_elements: int = 64) -> onnx.ModelProto:
    """In place: float32 initializers with >= min_elements values (and within FP16 range) stored as float16."""
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            continue
        values = numpy_helper.to_array(init)
        if np.abs(values).max(initial=0.0) > FP16_MAX:
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(values.astype(np.float16), name + SUFFIX))
        casts.append(helper.make_node("Cast", [name + SUFFIX], [name], name=f"{name}{SUFFIX}/cast", to=TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def has_fp16_storage(model: onnx.ModelProto) -> bool:
    return any(init.name.endswith(SUFFIX) and init.data_type == TensorProto.FLOAT16 for init in model.graph.initializer)


def load_fp32(model: onnx.ModelProto) -> onnx.ModelProto:
    """In place: undo store_fp16 (float32 initializers under their original names, the Casts removed)."""
    graph = model.graph
    stored = {init.name: init for init in graph.initializer if init.name.endswith(SUFFIX)}
    casts = [n for n in graph.node if n.op_type == "Cast" and len(n.input) == 1 and n.input[0] in stored]
    for cast in casts:
        init = stored[cast.input[0]]
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), cast.output[0]))
        graph.node.remove(cast)
    return model
