"""The Python half of scripts/gpu_check.sh: dynamic-batch copies of the shipped model, and the checks of
the TensorRT engines built from them against ONNX Runtime on real frames.

    python scripts/gpu_check.py models OUT          # OUT/{fp32,fp16,int8-trt}.onnx, batch dynamic
    python scripts/gpu_check.py compare OUT DATA    # FP32 tight vs ONNX Runtime; FP16 and INT8 through the gate
    python scripts/gpu_check.py predictor OUT DATA  # Predictor on 5 frames with OUT/fp32-b4.engine (profile 4,4,4)
    python scripts/gpu_check.py threads OUT DATA    # open an engine on one thread, infer and close on another

Each prints what it measured and exits 1 when a check fails.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

import engines

SHIPPED = Path(__file__).resolve().parents[1] / "app" / "models"
FP32_TOL = {"boxes": 0.05, "scores": 1e-3, "drivable": 1e-3, "lane": 1e-3}  # pixels, probabilities


def dynamic_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """The batch-1 export with a dynamic batch: batch dims named, Reshape targets' leading 1 -> 0 (copy)."""
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.value_info[:]
    tensors = {i.name: i for i in model.graph.initializer}
    tensors.update({n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant"})
    for node in model.graph.node:
        if node.op_type == "Reshape" and node.input[1] in tensors:
            shape = numpy_helper.to_array(tensors[node.input[1]]).copy()
            if shape.size and shape[0] == 1:
                shape[0] = 0
                tensors[node.input[1]].CopyFrom(numpy_helper.from_array(shape, tensors[node.input[1]].name))
    return model


def set_meta(model: onnx.ModelProto, **changes) -> onnx.ModelProto:
    for prop in model.metadata_props:
        if prop.key == "roadsight":
            prop.value = json.dumps({**json.loads(prop.value), **changes})
    return model


def models(out: Path) -> int:
    """Write the dynamic copies and check each against its batch-1 runs on ONNX Runtime (CPU)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out.mkdir(parents=True, exist_ok=True)
    fp32 = dynamic_batch(onnx.load(SHIPPED / "roadsight-n.onnx"))
    written = {
        "fp32": set_meta(fp32, batch=None),
        "fp16": set_meta(convert_float_to_float16(fp32, keep_io_types=True), batch=None, precision="fp16"),
        "int8-trt": set_meta(dynamic_batch(onnx.load(SHIPPED / "roadsight-n.int8-trt.onnx")), batch=None),
    }
    x = np.random.default_rng(0).random((3, 3, 384, 640), dtype=np.float32)
    failed = 0
    for name, model in written.items():
        path = out / f"{name}.onnx"
        onnx.save(model, path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        batched = session.run(None, {"images": x})
        single = [session.run(None, {"images": x[i : i + 1]}) for i in range(3)]
        worst = max(float(np.abs(batched[k][i] - single[i][k][0]).max()) for k in range(len(batched)) for i in range(3))
        rtol = 2**-9 if name == "fp16" else 0.0  # fp16 keeps 11 bits: another batch size may move a box by an ulp
        ok = all(np.allclose(batched[k][i], single[i][k][0], rtol=rtol, atol=1e-4) for k in range(len(batched)) for i in range(3))
        failed += not ok
        print(f"{path}: batch 3 vs three batch-1 runs, max |diff| {worst:.2e} (rtol {rtol:g}) {'ok' if ok else 'FAIL'}")
    return int(failed > 0)


def real_frames(data: Path, n: int) -> list[np.ndarray]:
    files = sorted((data / "images" / "val").glob("*.jpg"))[:n]
    return [cv2.imread(str(f)) for f in files]


def compare(out: Path, data: Path) -> int:
    """FP32 engine vs ONNX Runtime FP32 on 16 frames (tight); FP16 and INT8 engines through the accuracy gate."""
    from calibration.gate import gate
    from engines.preprocess import letterbox
    from model.bdd import BDDDataset

    batch, _ = letterbox(real_frames(data, 16), (384, 640), np.float32)
    failed = False
    with engines.load(out / "fp32.engine") as engine, engines.load(out / "fp32.onnx") as reference:
        for first in range(0, len(batch), 8):
            got, want = engine.infer({"images": batch[first : first + 8]}), reference.infer({"images": batch[first : first + 8]})
            for name, tol in FP32_TOL.items():
                worst = float(np.abs(got[name] - want[name]).max())
                bad = worst > tol
                failed |= bad
                print(f"fp32 engine vs ONNX Runtime, frames {first}-{first + 7}, {name}: max |diff| {worst:.2e} (limit {tol:g}) {'FAIL' if bad else 'ok'}")
    dataset = BDDDataset(data, "val")
    for name in ("fp16", "int8-trt"):
        verdict = gate(out / "fp32.onnx", out / f"{name}.engine", dataset, max_drop=1.0)
        for key, (a, b, drop) in verdict.rows.items():
            print(f"{name} engine vs FP32 ONNX on {len(dataset)} labelled frames, {key}: {a:.2f} -> {b:.2f} (drop {drop:+.2f}, limit 1)")
        print(f"{name} gate: {'ok' if verdict.passed else 'FAIL ' + ', '.join(verdict.failures)}")
        failed |= not verdict.passed
    return int(failed)


def predictor(out: Path, data: Path) -> int:
    """Predictor on 5 frames with a batch-4 engine (profile 4,4,4): chunks of 4 and 1 (padded to 4)."""
    frames = real_frames(data, 5)
    with engines.load(out / "fp32-b4.engine") as engine, engines.load(out / "fp32.onnx") as reference:
        print(f"fp32-b4.engine: batch {engine.min_batch}..{engine.max_batch}, {engine.versions}")
        got, want = engines.Predictor(engine)(frames), engines.Predictor(reference)(frames)
    same = len(got) == 5 and all(
        len(g.boxes) == len(w.boxes) and np.allclose(g.boxes, w.boxes, atol=0.5) and np.mean(g.lane == w.lane) > 0.999
        for g, w in zip(got, want)
    )
    print(f"Predictor, 5 frames: {[len(p.boxes) for p in got]} boxes vs ONNX Runtime {[len(p.boxes) for p in want]} {'ok' if same else 'FAIL'}")
    return int(not same)


def threads(out: Path, data: Path) -> int:
    """Open the int8-trt engine here; infer and close it on another thread; the result matches this thread's."""
    frames = real_frames(data, 2)
    engine = engines.load(out / "int8-trt.engine")
    here = engines.Predictor(engine)(frames)
    result, errors = {}, []

    def work():
        try:
            result["p"] = engines.Predictor(engine)(frames)
            engine.close()
        except Exception as error:  # reported below
            errors.append(repr(error))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=120)
    ok = not errors and not engine.is_open and all(np.allclose(a.boxes, b.boxes) for a, b in zip(here, result.get("p", [])))
    print(f"open on one thread, infer and close on another: {'ok' if ok else 'FAIL ' + '; '.join(errors)}")
    return int(not ok)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    sys.exit({"models": models, "compare": compare, "predictor": predictor, "threads": threads}[command](*map(Path, args)))
