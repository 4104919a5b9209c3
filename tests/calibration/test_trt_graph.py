"""check_trt_graph's scale and opset rules on a hand-made Q/DQ conv (rules 8 and 9)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from calibration.graph import MAX_OPSET, check_trt_graph


def qdq_conv(act_scale=0.02, weight_scale=None, opset: int = 17) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv(int8 weight -> DQ per channel) -> y, as TensorRT wants it unless told otherwise."""
    weight_scale = np.full(16, 0.01, np.float32) if weight_scale is None else np.asarray(weight_scale, np.float32)
    inits = [
        numpy_helper.from_array(np.asarray(act_scale, np.float32), "act_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "act_zp"),
        numpy_helper.from_array(np.ones((16, 4, 3, 3), np.int8), "w_int8"),
        numpy_helper.from_array(weight_scale, "w_scale"),
        numpy_helper.from_array(np.zeros(16, np.int8), "w_zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "act_scale", "act_zp"], ["x_q"], name="x_q"),
        helper.make_node("DequantizeLinear", ["x_q", "act_scale", "act_zp"], ["x_dq"], name="x_dq"),
        helper.make_node("DequantizeLinear", ["w_int8", "w_scale", "w_zp"], ["w"], name="w_dq", axis=0),
        helper.make_node("Conv", ["x_dq", "w"], ["y"], name="backbone/conv", pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_a_tensorrt_ready_graph_passes():
    assert check_trt_graph(qdq_conv()) == []


@pytest.mark.parametrize("scale", [0.0, -0.02, float("inf"), float("nan")])
def test_activation_scales_must_be_positive_and_finite(scale):
    errors = check_trt_graph(qdq_conv(act_scale=scale))
    assert [e.split(":")[0] for e in errors] == ["x_q", "x_dq"] and all("positive finite" in e for e in errors)


def test_weight_scales_must_be_positive_and_finite():
    scales = np.full(16, 0.01, np.float32)
    scales[3] = 0.0
    assert check_trt_graph(qdq_conv(weight_scale=scales)) == ["w_dq: scale not a positive finite constant (0.01, 0.01, 0.01, 0)"]


def test_activations_must_be_per_tensor_and_weights_may_be_per_channel():
    errors = check_trt_graph(qdq_conv(act_scale=np.full(4, 0.02, np.float32)))
    assert errors == [
        "x_q: activation scale of shape (4,) (activations must be per-tensor)",
        "x_dq: activation scale of shape (4,) (activations must be per-tensor)",
    ]


def test_opset_above_what_tensorrt_10_3_parses():
    assert check_trt_graph(qdq_conv(opset=MAX_OPSET)) == []
    [error] = check_trt_graph(qdq_conv(opset=MAX_OPSET + 1))
    assert error.startswith(f"opset {MAX_OPSET + 1}: above {MAX_OPSET}")
