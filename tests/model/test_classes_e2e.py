"""A 4-class synthetic run through the CLI: train 1 epoch, val, export, quantize (gated), predict, run --jsonl and
outliers, with the class names and their category map carried through every artifact."""

import json

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("torch")

from model.classes import class_map, parse_classes, stored_class_map  # noqa: E402

CLASSES = "car,truck,bus,motorcycle"
NAMES = ["car", "truck", "bus", "motorcycle"]


def _app() -> typer.Typer:
    from app import commands
    from calibration import cli as calibration_cli
    from engines import cli as engines_cli
    from model import cli as model_cli

    app = typer.Typer()
    for module in (model_cli, engines_cli, calibration_cli, commands):
        module.register(app)
    return app


def test_parse_classes_presets_lists_merges_and_aliases():
    assert parse_classes("vehicle").names == ("vehicle",) and parse_classes("vehicle").index("train") == 0
    assert len(parse_classes("bdd10").names) == 10 and parse_classes("bdd10").index("person") == 0  # 2018 alias
    four = parse_classes(CLASSES)
    assert four.names == tuple(NAMES) and four.index("motor") == 3 and four.index("pedestrian") is None
    merged = parse_classes("car=vehicle, bus=vehicle, person=vru, bicycle=vru")
    assert merged.names == ("vehicle", "vru") and merged.index("pedestrian") == 1 and merged.index("bike") == 1
    assert class_map({"motor": "m"}).mapping == {"motorcycle": "m"}
    for bad, message in (("", "cannot read"), ("car,,bus", "cannot read"), ("car=", "cannot read"), ("cars", "unknown BDD100K category 'cars'"),
                         ("car=a,car=b", "car is given twice")):
        with pytest.raises(Exception, match=message) as err:
            parse_classes(bad)
        assert "\n" not in str(err.value)


def test_models_without_a_stored_map_keep_their_meaning():
    """Artifacts written before class maps were stored (the shipped model among them) read as before."""
    assert stored_class_map(("vehicle",)).mapping == {"car": "vehicle", "bus": "vehicle", "truck": "vehicle", "train": "vehicle"}
    assert stored_class_map(("car", "bus")).mapping == {"car": "car", "bus": "bus"}
    assert stored_class_map(("v",), {"car": "v"}).index("car") == 0
    with pytest.raises(Exception, match="stored mapping gives"):
        stored_class_map(("a", "b"), {"car": "b", "bus": "a"})


@pytest.mark.slow
def test_four_class_synthetic_run_end_to_end(tmp_path):
    import onnx

    from engines.meta import ModelMeta
    from model.network import read_checkpoint
    from model.synth import generate

    runner = CliRunner()
    app = _app()
    data, run = tmp_path / "data", tmp_path / "run"
    generate(data, n=8, seed=3, val_fraction=0.25, width=160, height=96, workers=1)

    def ok(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result.output

    out = ok("train", "--data", data, "--out", run, "--epochs", 1, "--imgsz", "160x96", "--batch", 2, "--workers", 0, "--classes", CLASSES)
    assert "6 images" in out and "classes car, truck, bus, motorcycle" in out
    best = run / "best.pt"
    cfg = read_checkpoint(best)["config"]
    assert cfg["names"] == NAMES and cfg["class_map"] == dict(zip(NAMES, NAMES))

    ok("val", "--weights", best, "--data", data, "--json", tmp_path / "val.json")
    assert set(json.loads((tmp_path / "val.json").read_text())["detection"]["classes"]) <= set(NAMES)

    fp32 = tmp_path / "m.onnx"
    ok("export", "--weights", best, "--out", fp32)
    ok("calibrate", "-m", fp32, "-s", data / "images" / "train", "--n", 4, "-o", tmp_path / "calib.npz")
    int8 = tmp_path / "m.int8-cpu.onnx"
    ok("quantize", "-m", fp32, "-c", tmp_path / "calib.npz", "-t", "cpu", "-o", int8, "--val", data, "--max-drop", 100)
    for model in (fp32, int8):
        meta = ModelMeta.from_props({p.key: p.value for p in onnx.load(str(model)).metadata_props})
        assert meta.names == tuple(NAMES) and meta.class_map == dict(zip(NAMES, NAMES))

    ok("predict", "-m", int8, "-s", data / "images" / "val", "--save-dir", tmp_path / "pred", "--conf", 0.0)
    jsonl = tmp_path / "out.jsonl"
    ok("run", "-m", int8, "-s", data / "images" / "val", "--jsonl", jsonl, "--conf", 0.0)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    predicted = [json.loads(p.read_text()) for p in sorted((tmp_path / "pred").glob("*.json"))]
    for record in records + predicted:
        assert record["detections"] and {d["name"] for d in record["detections"]} <= set(NAMES)
        assert all(NAMES[d["class"]] == d["name"] for d in record["detections"])
    assert len(records) == 2 and len(predicted) == 2

    result = json.loads(ok("outliers", "-w", best, "-d", data / "images" / "val", "--n", 2, "--json"))
    assert result["classes"] == NAMES
