"""The ablation runner at toy scale: two variants through export, calibrate, quantize, evaluate and outliers."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")


def test_ablation_toy(tiny_roadnet, image_dir, tmp_path):
    import torch

    from calibration.ablation import AblationOptions, run_ablation
    from model.config import ModelConfig
    from model.network import RoadNet, save_checkpoint
    from test_gate import Scenes

    gated, _ = tiny_roadnet
    torch.manual_seed(1)
    cfg = ModelConfig(size="n", attention="vanilla", imgsz=(64, 96))
    vanilla = save_checkpoint(tmp_path / "vanilla.pt", RoadNet(cfg), cfg)
    opts = AblationOptions({"vanilla": vanilla, "clipped+gated": gated}, [str(image_dir)], tmp_path / "abl",
                           targets=("trt", "cpu"), backend="ort", n_calib=6, n_outliers=3)
    results = run_ablation(opts, dataset=Scenes(3))
    assert set(results) == {"vanilla", "clipped+gated"}
    for row in results.values():
        assert set(row) == {"files", "fp32", "int8-trt", "int8-cpu", "outliers"}
        for target in ("trt", "cpu"):
            r = row[f"int8-{target}"]
            for key in ("map50", "drivable_miou", "lane_iou"):
                assert r["drop"][key] == pytest.approx(100 * (row["fp32"][key] - r[key]))
        assert row["outliers"]["frames"] == 3
    calibs = list((tmp_path / "abl").glob("calib-*.npz"))
    assert len(calibs) == 1  # one shared calibration set for both variants
    md = (tmp_path / "abl" / "ablation.md").read_text()
    assert sum(line.startswith("| ") for line in md.splitlines()) == 3 and "| vanilla |" in md and "| clipped+gated |" in md
    saved = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert saved["vanilla"]["int8-trt"]["backend"] == "ort"
    assert (tmp_path / "abl" / "outliers.png").is_file()
