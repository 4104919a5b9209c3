"""scripts/gpu_check.py's dynamic-batch copies of the shipped model, checked on the CPU (the GPU check builds engines from them)."""

import importlib.util
import json
from pathlib import Path

import onnxruntime as ort

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"


def test_dynamic_copies_of_the_shipped_model_match_their_batch_one_runs(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    assert gpu_check.models(tmp_path) == 0
    assert capsys.readouterr().out.count(" ok\n") == 3
    for name, precision in (("fp32", "fp32"), ("fp16", "fp16"), ("int8-trt", "int8-trt")):
        session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].shape == ["batch", 3, 384, 640]
        meta = json.loads(session.get_modelmeta().custom_metadata_map["roadsight"])
        assert meta["batch"] is None and meta["precision"] == precision
