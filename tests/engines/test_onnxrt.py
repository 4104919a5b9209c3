"""ONNX Runtime backend and load()/Predictor on the tiny model (numpy reference in tests/tiny_model.py)."""

import re
from pathlib import Path

import numpy as np
import pytest
from tiny_model import anchor_boxes, make_tiny_onnx, reference_outputs

import engines
from engines.errors import RoadsightError
from engines.onnxrt import OnnxRuntimeEngine, providers_for


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_onnx(tmp_path_factory.mktemp("m") / "tiny.onnx", names=("car", "bus"))


@pytest.fixture(scope="module")
def tiny_dynamic(tmp_path_factory):
    return make_tiny_onnx(tmp_path_factory.mktemp("m") / "tiny_dyn.onnx", batch=None, seg_output="mask")


def test_specs_meta_and_outputs_match_the_reference(tiny):
    with engines.load(tiny, intra_op_threads=1) as engine:
        assert isinstance(engine, OnnxRuntimeEngine) and engine.is_open
        assert engine.meta.names == ("car", "bus") and engine.meta.imgsz == (64, 96)
        assert [(s.name, s.dtype, s.shape) for s in engine.inputs] == [("images", np.float32, (1, 3, 64, 96))]
        assert [(s.name, s.shape) for s in engine.outputs] == [
            ("boxes", (1, 4, 96)),
            ("scores", (1, 2, 96)),
            ("drivable", (1, 64, 96)),
            ("lane", (1, 64, 96)),
        ]
        x = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
        out = engine.infer({"images": x})
        assert engine.last_timing["infer"] > 0
    expected = reference_outputs(x, ("car", "bus"))
    for name in expected:
        assert np.allclose(out[name], expected[name], atol=1e-5), name
    assert not engine.is_open


def test_dynamic_batch_and_mask_outputs(tiny_dynamic):
    with engines.load(tiny_dynamic) as engine:
        assert engine.inputs[0].shape == (None, 3, 64, 96) and engine.max_batch is None
        x = np.random.default_rng(1).random((3, 3, 64, 96), dtype=np.float32)
        out = engine.infer({"images": x})
    assert out["boxes"].shape == (3, 4, 96) and out["drivable"].dtype == np.uint8
    assert np.array_equal(out["lane"], reference_outputs(x, seg_output="mask")["lane"])


@pytest.mark.parametrize(
    "feed, message",
    [
        ({"images": np.zeros((1, 3, 64, 90), np.float32)}, r"engine input 'images': expected shape \(1,3,64,96\) float32, got \(1,3,64,90\) float32"),
        ({"images": np.zeros((1, 3, 64, 96), np.float64)}, r"expected shape \(1,3,64,96\) float32, got \(1,3,64,96\) float64"),
        ({"images": np.zeros((2, 3, 64, 96), np.float32)}, r"got \(2,3,64,96\) float32"),
        ({"image": np.zeros((1, 3, 64, 96), np.float32)}, r"engine inputs: wrong names. Expected \['images'\], got \['image'\]"),
        ({"images": [[0.0]]}, r"not a numpy array"),
    ],
)
def test_wrong_feed_is_a_clear_error(tiny, feed, message):
    with engines.load(tiny) as engine, pytest.raises(RoadsightError, match=message):
        engine.infer(feed)


def test_closed_engine_refuses_to_infer(tiny):
    engine = engines.load(tiny)
    engine.close()
    engine.close()  # twice is fine
    with pytest.raises(RoadsightError, match="not open"):
        engine.infer({"images": np.zeros((1, 3, 64, 96), np.float32)})


def test_corrupt_missing_and_unknown_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(RoadsightError, match=r"bad.onnx: ONNX Runtime cannot load it\. Expected a valid ONNX model") as info:
        engines.load(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(RoadsightError, match=r"no such model file"):
        engines.load(tmp_path / "missing.onnx")
    with pytest.raises(RoadsightError, match=r"unknown model type. Expected one of .onnx, .engine, .plan, .pt, got '.tflite'"):
        engines.load(tmp_path / "model.tflite")


def test_onnx_without_roadsight_metadata(tmp_path):
    import onnx

    model = onnx.load(make_tiny_onnx(tmp_path / "t.onnx"))
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "plain.onnx")
    with pytest.raises(RoadsightError, match="plain.onnx: no roadsight metadata inside"):
        engines.load(tmp_path / "plain.onnx")


def test_unavailable_device_is_a_clear_error(tiny):
    with pytest.raises(RoadsightError, match=r"ONNX Runtime has no CUDAExecutionProvider"):
        providers_for("cuda", ["CPUExecutionProvider"])
    with pytest.raises(RoadsightError, match=r"--device gpu: unknown device for ONNX Runtime"):
        engines.load(tiny, device="gpu")
    assert providers_for("tensorrt:1", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])[0] == (
        "TensorrtExecutionProvider",
        {"device_id": 1},
    )


def scene():
    """A 128x192 BGR frame: dark, a white 32x32 square, the bottom quarter green, a blue line."""
    frame = np.full((128, 192, 3), 20, np.uint8)
    frame[32:64, 64:96] = 255
    frame[96:, :, 1] = 255
    frame[:, 170:174, 0] = 255
    return frame


def test_predictor_end_to_end_in_frame_pixels(tiny):
    with engines.load(tiny) as engine:
        [p] = engines.Predictor(engine, conf=0.5, iou=0.45)([scene()])
    assert set(p.timestamps) == {"started", "preprocessed", "inferred", "postprocessed"}
    assert list(p.timestamps.values()) == sorted(p.timestamps.values())
    # frame 128x192 -> net 64x96 (scale 0.5, no padding); the square covers cells (2..3, 4..5) in full
    full_cells = (anchor_boxes((64, 96)).T * 2)[[2 * 12 + 4, 2 * 12 + 5, 3 * 12 + 4, 3 * 12 + 5]]
    for box in full_cells:
        assert np.abs(p.boxes - box).max(axis=1).min() < 1e-3
    # class 0 looks at R: only the four white cells; class 1 looks at G: the white and the green cells
    assert (p.class_ids == 0).sum() == 4 and p.scores[p.class_ids == 0].min() > 0.99
    assert (p.boxes[p.class_ids == 1][:, 1] >= 88 - 1e-3).all() and (p.class_ids == 1).sum() == 2 * 12
    green = np.zeros((128, 192), np.uint8)  # drivable = G channel: the green quarter and the white square
    green[96:], green[32:64, 64:96] = 1, 1
    assert np.array_equal(p.drivable, green)
    blue = np.zeros((128, 192), np.uint8)  # lane = B channel: the blue line and the white square
    blue[:, 170:174], blue[32:64, 64:96] = 1, 1
    assert np.array_equal(p.lane, blue)


def test_predictor_chunks_frames_for_a_fixed_batch_engine(tiny):
    frames = [scene(), np.zeros((50, 70, 3), np.uint8), scene()]
    with engines.load(tiny) as engine:
        results = engines.Predictor(engine)(frames)
    assert [r.frame_index for r in results] == [0, 1, 2]
    assert results[1].drivable.shape == (50, 70) and len(results[1]) == 0
    assert np.array_equal(results[0].boxes, results[2].boxes)


def test_predictor_on_a_dynamic_batch_matches_single_frames(tiny_dynamic):
    frames = [scene(), scene()[::-1].copy(), scene()[:, ::-1].copy()]
    with engines.load(tiny_dynamic) as engine:
        predictor = engines.Predictor(engine)
        together = predictor(frames)
        alone = [predictor([f])[0] for f in frames]
    for a, b in zip(together, alone):
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.lane, b.lane)


def test_predictor_pads_the_last_chunk_of_a_fixed_batch_of_two(tmp_path):
    frames = [scene(), scene()[:, ::-1].copy(), scene()]
    with engines.load(make_tiny_onnx(tmp_path / "b2.onnx", names=("car", "bus"), batch=2)) as engine:
        predictor = engines.Predictor(engine)
        assert predictor.max_batch == 2
        batch, params = predictor.preprocess(frames[2:])
        assert batch.shape == (2, 3, 64, 96) and len(params) == 1 and not batch[1].any()
        results = predictor(frames)
    assert [r.frame_index for r in results] == [0, 1, 2]
    assert np.array_equal(results[0].boxes, results[2].boxes) and not np.array_equal(results[0].boxes, results[1].boxes)


def test_pt_backend_is_registered_by_model_and_engines_never_imports_model():
    """`.pt` comes from the `roadsight.engines` entry point; no module of engines/ imports model/."""
    assert engines.backends()[".pt"].value == "model.torch_engine:TorchEngine"
    assert engines.backends()[".onnx"].load() is OnnxRuntimeEngine
    root = Path(engines.__file__).parent
    offenders = [p.name for p in root.glob("*.py") if re.search(r"^\s*(from|import) model\b", p.read_text(), re.M)]
    assert offenders == []
