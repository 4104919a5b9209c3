"""The TensorRT-independent planning: batch profiles, sidecars, compatibility checks (no GPU needed)."""

import json

import pytest

from engines.errors import RoadsightError
from engines.meta import ModelMeta
from engines.trt_plan import (
    EngineInfo,
    check_compat,
    concrete_shape,
    meta_batch,
    parse_batch,
    plan_profile,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)


@pytest.mark.parametrize(
    "value, expected", [("1", (1, 1, 1)), (4, (4, 4, 4)), ("1,4,8", (1, 4, 8)), ((2, 2, 3), (2, 2, 3)), (" 1, 2 ,2", (1, 2, 2))]
)
def test_parse_batch(value, expected):
    assert parse_batch(value) == expected


@pytest.mark.parametrize("value", ["0", "4,2,8", "1,2", "a", "1,2,3,4", -1])
def test_parse_batch_rejects(value):
    with pytest.raises(RoadsightError, match=r"batch: cannot use .* Expected N or MIN,OPT,MAX"):
        parse_batch(value)


def test_profile_for_a_dynamic_batch():
    assert plan_profile("images", (-1, 3, 384, 640), (1, 4, 8)) == ((1, 3, 384, 640), (4, 3, 384, 640), (8, 3, 384, 640))
    assert plan_profile("images", (-1, 3, 384, 640), None) == ((1, 3, 384, 640),) * 3


def test_profile_for_a_static_batch():
    assert plan_profile("images", (1, 3, 384, 640), None) is None
    assert plan_profile("images", (2, 3, 384, 640), (2, 2, 2)) is None
    with pytest.raises(RoadsightError, match=r"fixed batch of 1. Expected --batch 1 for it, got 1,4,8"):
        plan_profile("images", (1, 3, 384, 640), (1, 4, 8))


def test_profile_refuses_dynamic_image_size():
    with pytest.raises(RoadsightError, match=r"only the batch may be dynamic"):
        plan_profile("images", (-1, 3, -1, -1), None)


def test_meta_batch_and_concrete_shape():
    assert meta_batch(None, 1) == 1
    assert meta_batch(((4, 3, 8, 8),) * 3, 1) == 4
    assert meta_batch(((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8)), 1) is None
    assert concrete_shape((None, 4, 96), 8) == (8, 4, 96)
    assert concrete_shape((-1, 3, 64, 96), 2) == (2, 3, 64, 96)
    assert concrete_shape((1, 3, 64, 96), 8) == (1, 3, 64, 96)
    with pytest.raises(RoadsightError, match="only the batch may be dynamic"):
        concrete_shape((1, None, 96), 2)


def info(**kwargs):
    base = dict(
        meta=ModelMeta(names=("car", "bus"), imgsz=(64, 96), precision="int8-trt", batch=None),
        tensorrt="10.3.0.26",
        gpu="Orin",
        compute_capability=(8, 7),
        profile={"images": [[1, 3, 64, 96], [4, 3, 64, 96], [8, 3, 64, 96]]},
        onnx="model.int8-trt.onnx",
    )
    return EngineInfo(**{**base, **kwargs})


def test_sidecar_round_trip(tmp_path):
    engine = tmp_path / "model.engine"
    path = write_sidecar(engine, info())
    assert path == sidecar_path(engine) and path.name == "model.engine.json"
    data = json.loads(path.read_text())
    assert data["meta"]["names"] == ["car", "bus"] and data["compute_capability"] == [8, 7]
    assert read_sidecar(engine) == info()


def test_missing_or_broken_sidecar(tmp_path):
    engine = tmp_path / "model.engine"
    with pytest.raises(RoadsightError, match=r"model.engine: no sidecar model.engine.json next to it.*roadsight build"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(RoadsightError, match=r"model.engine.json: unreadable engine sidecar"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({"meta": {}, "gpu": "x"}))
    with pytest.raises(RoadsightError, match=r"unreadable engine sidecar \(KeyError"):
        read_sidecar(engine)


def test_compat_same_machine_and_another_build_number():
    assert check_compat(info(), "10.3.0.26", "Orin", (8, 7), "m.engine") == []
    assert check_compat(info(), "10.3.0.30", "Orin", (8, 7), "m.engine") == []


def test_compat_refuses_another_tensorrt_release():
    with pytest.raises(RoadsightError, match=r"m.engine: built with TensorRT 10.3.0.26. Expected TensorRT 11.4.0.106"):
        check_compat(info(), "11.4.0.106", "Orin", (8, 7), "m.engine")
    with pytest.raises(RoadsightError, match=r"roadsight build --onnx model.int8-trt.onnx --out m.engine"):
        check_compat(info(), "10.16.1.11", "Orin", (8, 7), "m.engine")


def test_compat_refuses_another_gpu_architecture_and_warns_on_another_model():
    with pytest.raises(RoadsightError, match=r"compute capability 8.7 \(Orin\). Expected 9.0 \(NVIDIA H200\)"):
        check_compat(info(), "10.3.0.26", "NVIDIA H200", (9, 0), "m.engine")
    [warning] = check_compat(info(gpu="NVIDIA A10", compute_capability=(8, 6)), "10.3.0.26", "NVIDIA A40", (8, 6), "m.engine")
    assert "built on NVIDIA A10, running on NVIDIA A40" in warning
