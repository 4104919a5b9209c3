"""Read an ONNX graph for quantization: which nodes stay float, which Adds are residual, and the TRT rules.

Kept float (never quantized, no Q/DQ on their inputs or weights):
- the detection head's final 1x1 convs (`detect.cv2.{i}.2`, `detect.cv3.{i}.2`) and the DFL conv, as
  ultralytics does for TensorRT INT8 (they cost most of the INT8 accuracy for a small share of the time);
- the segmentation heads' final 1x1 `pred` convs (one output channel: nothing to gain in INT8);
- every node downstream of those (DFL softmax, box decode, score sigmoid, logit resize): `boxes` and
  `scores` are computed in float from float tensors;
- convs with fewer than MIN_CHANNELS output channels (e.g. the per-head attention gates), as ModelOpt does.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

# head convs by weight name (PyTorch module path) or by node name (ultralytics' TensorRT INT8 regex)
HEAD_WEIGHT = re.compile(r"detect\.(cv2|cv3)\.\d+\.2\.weight$|detect\.dfl\.|_head\.pred\.weight$")
HEAD_NODE = re.compile(r"/cv[23]\.\d+\.2/Conv$|/dfl/|_head/pred/Conv$")
MIN_CHANNELS = 16
NO_QDQ_OPS = ("Sigmoid", "Softmax", "Shape", "Gather")  # never take quantized inputs
NO_Q_AFTER = ("Sigmoid", "Softmax")  # their outputs are never fed straight into a QuantizeLinear
MAX_OPSET = 20  # TensorRT 10.3's ONNX parser (JetPack 6); 11.x reads up to 25
SHAPE_INPUTS = {"Reshape": (1,), "Expand": (1,), "Tile": (1,), "Resize": (1, 2, 3), "Slice": (1, 2, 3, 4)}  # index inputs


@dataclass
class Graph:
    """Producer/consumer index of an ONNX graph."""

    model: onnx.ModelProto

    def __post_init__(self) -> None:
        g = self.model.graph
        self.nodes = list(g.node)
        self.by_name = {n.name: n for n in self.nodes}
        self.inits = {i.name: i for i in g.initializer}
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        for n in self.nodes:  # Constant nodes count as initializers
            if n.op_type == "Constant":
                self.inits.setdefault(n.output[0], n.attribute[0].t)

    def const(self, name: str) -> np.ndarray | None:
        tensor = self.inits.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def is_dynamic(self, name: str) -> bool:
        return bool(name) and name not in self.inits

    def descendants(self, roots: list[onnx.NodeProto]) -> set[str]:
        """Names of `roots` and every node fed (directly or not) by their outputs."""
        seen, queue = set(), deque(roots)
        while queue:
            node = queue.popleft()
            if node.name in seen:
                continue
            seen.add(node.name)
            for out in node.output:
                queue.extend(self.consumers.get(out, []))
        return seen

    def ancestors(self, tensor: str) -> dict[str, int]:
        """Node name -> distance (in nodes, Q/DQ not counted) walking back from the producer of `tensor`."""
        dist: dict[str, int] = {}
        start = self.producer.get(tensor)
        queue = deque([(start, 0)] if start is not None else [])
        while queue:
            node, d = queue.popleft()
            if node.name in dist:
                continue
            dist[node.name] = d
            step = 0 if node.op_type in ("QuantizeLinear", "DequantizeLinear") else 1
            for i in node.input:
                if i in self.producer:
                    queue.append((self.producer[i], d + step))
        return dist


def head_nodes(graph: Graph) -> list[onnx.NodeProto]:
    """The detection head's final convs, the DFL conv and the segmentation heads' pred convs."""
    return [
        n
        for n in graph.nodes
        if n.op_type == "Conv" and (HEAD_NODE.search(n.name) or (len(n.input) > 1 and HEAD_WEIGHT.search(n.input[1])))
    ]


def attention_matmuls(graph: Graph) -> list[onnx.NodeProto]:
    """MatMuls of two computed tensors: the attention's Q.K^T and P.V (no weights)."""
    return [n for n in graph.nodes if n.op_type == "MatMul" and all(graph.is_dynamic(i) for i in n.input)]


def float_nodes(graph: Graph, float_attention: bool = False) -> set[str]:
    """Every node that must stay float: the heads, everything after them, and narrow convs
    (plus the attention MatMuls with `float_attention`)."""
    keep = graph.descendants(head_nodes(graph))
    for n in graph.nodes:
        if n.op_type == "Conv":
            weight = graph.const(n.input[1])
            if weight is not None and weight.shape[0] < MIN_CHANNELS:
                keep.add(n.name)
    if float_attention:
        keep.update(n.name for n in attention_matmuls(graph))
    return keep


def conv_output(graph: Graph, tensor: str) -> bool:
    """Whether `tensor` comes straight out of a Conv, or a Conv + SiLU (x * sigmoid(x)), TensorRT's fusible pattern."""
    node = graph.producer.get(tensor)
    while node is not None and node.op_type in ("QuantizeLinear", "DequantizeLinear"):
        node = graph.producer.get(node.input[0])
    if node is None:
        return False
    if node.op_type == "Mul":
        sig = next((graph.producer.get(i) for i in node.input if getattr(graph.producer.get(i), "op_type", "") == "Sigmoid"), None)
        if sig is None or sig.input[0] not in node.input:
            return False
        node = graph.producer.get(sig.input[0])
    return node is not None and node.op_type == "Conv"


def residual_adds(graph: Graph) -> dict[str, str]:
    """Add nodes joining a conv branch with another computed tensor -> the branch input.

    The branch is the input coming out of a Conv(+SiLU); when both do, the one on the longer path from
    their common ancestor (ModelOpt's `build_non_residual_input_map` rule). TensorRT fuses the Add into
    the branch's conv when only the other (shortcut) input carries Q/DQ.
    """
    out = {}
    for n in graph.nodes:
        if n.op_type != "Add" or len(n.input) != 2 or not all(graph.is_dynamic(i) and i in graph.producer for i in n.input):
            continue
        convs = [conv_output(graph, i) for i in n.input]
        if not any(convs):
            continue
        if not all(convs):
            out[n.name] = n.input[convs.index(True)]
            continue
        a, b = graph.ancestors(n.input[0]), graph.ancestors(n.input[1])
        common = set(a) & set(b)
        if not common:
            continue
        lca = min(common, key=lambda k: (max(a[k], b[k]), a[k] + b[k]))
        if a[lca] != b[lca]:
            out[n.name] = n.input[0] if a[lca] > b[lca] else n.input[1]
    return out


def quantizable_nodes(graph: Graph, float_attention: bool = False, op_types: tuple[str, ...] = ("Conv", "MatMul", "Add")) -> list[str]:
    """Names of nodes to quantize: convs, attention MatMuls and residual Adds outside the float set."""
    keep, residual = float_nodes(graph, float_attention), residual_adds(graph)
    names = []
    for n in graph.nodes:
        if n.name in keep or n.op_type not in op_types:
            continue
        if n.op_type == "Add" and n.name not in residual:
            continue
        if n.op_type == "MatMul" and not all(graph.is_dynamic(i) for i in n.input):
            continue  # MatMul with constant weights: Gemm-like, handled as weights only if wanted
        names.append(n.name)
    return names


def _dq_input(graph: Graph, tensor: str) -> onnx.NodeProto | None:
    node = graph.producer.get(tensor)
    return node if node is not None and node.op_type == "DequantizeLinear" else None


def check_trt_graph(model: onnx.ModelProto) -> list[str]:
    """TensorRT Q/DQ rules; returns the violations (empty list = the graph follows them).

    1. every QuantizeLinear/DequantizeLinear zero-point is int8 and 0 (TensorRT is symmetric INT8);
    2. every Conv weight behind a DequantizeLinear is per-channel: axis 0 and one scale per output channel;
    3. no Sigmoid/Softmax/Shape/Gather takes a dequantized input, no shape/index input (Reshape's shape,
       Resize's scales/sizes, Slice's starts/ends/axes/steps, Expand/Tile) is dequantized, and no
       QuantizeLinear consumes a Sigmoid/Softmax output (SiLU stays fused; probabilities stay float there);
    4. the head's final convs and the DFL conv have no DequantizeLinear on their inputs or weights;
    5. no Q/DQ anywhere downstream of the head convs, so `boxes` and `scores` never share a quantized tensor;
    6. no residual Add has Q/DQ on its branch input alone: either the shortcut only (TensorRT fuses the
       Add into the branch's conv, the ORT path's placement) or both inputs (an INT8 add, ModelOpt's choice
       when SiLU hides the conv from its residual matcher);
    7. all dequantized inputs of a Concat share one scale (no requantization at the concat);
    8. every Q/DQ scale is positive and finite, and activations (anything but a weight) are per-tensor;
    9. the default-domain opset is at most MAX_OPSET.
    """
    graph = Graph(model)
    errors = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset > MAX_OPSET:
        errors.append(f"opset {opset}: above {MAX_OPSET}, the newest TensorRT 10.3 parses (export with --opset {MAX_OPSET} or lower)")
    for n in graph.nodes:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        scale = graph.const(n.input[1])
        if scale is None or not np.all(np.isfinite(scale) & (scale > 0)):
            shown = "not a constant" if scale is None else ", ".join(f"{float(v):g}" for v in np.ravel(scale)[:4])
            errors.append(f"{n.name}: scale not a positive finite constant ({shown})")
        elif scale.size != 1 and not _is_weight(graph, n):
            errors.append(f"{n.name}: activation scale of shape {scale.shape} (activations must be per-tensor)")
        zp = graph.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if zp is None:
            if n.op_type == "QuantizeLinear":
                errors.append(f"{n.name}: no zero-point (would quantize to uint8)")
        elif zp.dtype != np.int8 or np.any(zp != 0):
            errors.append(f"{n.name}: zero-point {zp.dtype} {np.unique(zp)[:4]} (need int8 0)")
    head = head_nodes(graph)
    below_head = graph.descendants(head)
    for n in graph.nodes:
        if n.op_type == "Conv" and (dq := _dq_input(graph, n.input[1])) is not None:
            scale = graph.const(dq.input[1])
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
            out_ch = _weight_channels(graph, dq)
            if scale is None or scale.ndim != 1 or axis != 0 or (out_ch and len(scale) != out_ch):
                errors.append(f"{n.name}: weight not per-channel (axis {axis}, scale shape {None if scale is None else scale.shape})")
        if n.op_type in NO_QDQ_OPS and any(_dq_input(graph, i) for i in n.input if i):
            errors.append(f"{n.name}: {n.op_type} takes a dequantized input")
        if any(k < len(n.input) and _dq_input(graph, n.input[k]) for k in SHAPE_INPUTS.get(n.op_type, ())):
            errors.append(f"{n.name}: {n.op_type} takes a dequantized shape/index input")
        if n.op_type == "QuantizeLinear" and (p := graph.producer.get(n.input[0])) is not None and p.op_type in NO_Q_AFTER:
            errors.append(f"{n.name}: quantizes the output of {p.op_type} {p.name}")
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.name in below_head:
            errors.append(f"{n.name}: Q/DQ downstream of the detection/segmentation head convs")
        if n.op_type == "Concat":
            scales = {float(np.ravel(graph.const(dq.input[1]))[0]) for i in n.input if (dq := _dq_input(graph, i))}
            if len(scales) > 1:
                errors.append(f"{n.name}: Concat inputs with {len(scales)} different scales")
    for n in head:
        if any(_dq_input(graph, i) for i in n.input if i):
            errors.append(f"{n.name}: head conv has a DequantizeLinear input (must stay float)")
    for name, branch in residual_adds(graph).items():
        shortcut = next(i for i in graph.by_name[name].input if i != branch)
        if _dq_input(graph, branch) is not None and _dq_input(graph, shortcut) is None:
            errors.append(f"{name}: residual Add quantizes only its branch input {branch} (blocks Conv+Add fusion)")
    return errors


def _is_weight(graph: Graph, node: onnx.NodeProto) -> bool:
    """Whether a Q or DQ node works on a constant (a weight): its input, or its Q's input, is an initializer."""
    source = node.input[0]
    if node.op_type == "DequantizeLinear" and (q := graph.producer.get(source)) is not None and q.op_type == "QuantizeLinear":
        source = q.input[0]
    return source in graph.inits


def _weight_channels(graph: Graph, dq: onnx.NodeProto) -> int | None:
    """Output channels of the weight behind a DQ (int8 initializer, or float initializer -> Q -> DQ)."""
    weight = graph.const(dq.input[0])
    if weight is None and (q := graph.producer.get(dq.input[0])) is not None and q.op_type == "QuantizeLinear":
        weight = graph.const(q.input[0])
    return None if weight is None else int(weight.shape[0])


def qdq_summary(model: onnx.ModelProto) -> dict[str, int]:
    """Counts: QuantizeLinear, DequantizeLinear, quantized ops by type (ops with a dequantized input)."""
    graph = Graph(model)
    out = {"QuantizeLinear": 0, "DequantizeLinear": 0}
    for n in graph.nodes:
        if n.op_type in out:
            out[n.op_type] += 1
        elif any(_dq_input(graph, i) for i in n.input if i):
            out[f"int8 {n.op_type}"] = out.get(f"int8 {n.op_type}", 0) + 1
    return out
