"""Move an exported model's drivable/lane outputs to logits at the heads' strides, in place of a re-export.

    python -m model.seg_logits app/models/roadsight-n.onnx app/models/roadsight-n.int8-trt.onnx ...

A model exported with `--seg-output prob` ends each mask output in Resize (bilinear, to the input size) ->
Gather (the channel) -> Sigmoid. This removes the Resize and the Sigmoid, so the output is the head's
logits, exactly what `roadsight export` (default `--seg-output logits`) writes, and sets the metadata's
seg_output to 'logits'. Everything else, INT8 quantizers included, is left as it is: a quantized file keeps
the calibration it passed its gate with. Postprocess then resizes once, to the frame (engines/preprocess.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engines.errors import RoadsightError

MASKS = ("drivable", "lane")


def to_logits(model):
    """The ONNX ModelProto with each mask output's Resize -> Gather -> Sigmoid tail cut to Gather, in place."""
    import onnx

    producer = {name: node for node in model.graph.node for name in node.output}
    for output in model.graph.output:
        if output.name not in MASKS:
            continue
        sigmoid = producer.get(output.name)
        gather = producer.get(sigmoid.input[0]) if sigmoid is not None else None
        resize = producer.get(gather.input[0]) if gather is not None else None
        if [n.op_type if n is not None else None for n in (sigmoid, gather, resize)] != ["Sigmoid", "Gather", "Resize"]:
            raise RoadsightError(
                f"output {output.name}: not a probability output of `roadsight export`. Expected it to end in "
                "Resize -> Gather -> Sigmoid (--seg-output prob), got another graph. Re-export with --seg-output logits."
            )
        gather.input[0], gather.output[0] = resize.input[0], output.name
        model.graph.node.remove(sigmoid)
        model.graph.node.remove(resize)
        output.type.tensor_type.ClearField("shape")  # re-inferred below: (B, h/s, w/s)
    for prop in model.metadata_props:
        if prop.key == "roadsight":
            meta = json.loads(prop.value)
            meta["seg_output"] = "logits"
            prop.value = json.dumps(meta)
    known = {info.name for info in model.graph.value_info}
    model = onnx.shape_inference.infer_shapes(model)  # the outputs' new shapes
    kept = [info for info in model.graph.value_info if info.name in known]  # add no other tensor's shape to the file
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    onnx.checker.check_model(model)
    return model


def rewrite(path: Path) -> None:
    """Rewrite one .onnx file in place; says what it did."""
    import onnx

    model = onnx.load(str(path))
    meta = next((json.loads(p.value) for p in model.metadata_props if p.key == "roadsight"), {})
    if meta.get("seg_output") == "logits":
        print(f"{path}: already logits")
        return
    model = to_logits(model)
    onnx.save(model, str(path))
    shapes = {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    print(f"{path}: drivable {shapes['drivable']}, lane {shapes['lane']} (logits)")


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[0])
        print("usage: python -m model.seg_logits MODEL.onnx [MODEL.onnx ...]")
        return 2
    try:
        for path in paths:
            rewrite(Path(path))
    except RoadsightError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
