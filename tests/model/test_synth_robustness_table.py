"""scripts/robustness_table.py: `roadsight val --json` files -> JSON, markdown table and figure."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "robustness_table.py"


def fake_val(path: Path, m: float, images: int) -> None:
    path.write_text(json.dumps({"images": images, "detection": {"mAP50": m, "recall": m + 0.1},
                                "drivable": {"mIoU": 0.9}, "lane": {"IoU": m / 2}}))


def test_table_json_and_figure(tmp_path):
    val = tmp_path / "val"
    val.mkdir()
    fake_val(val / "a--heldout.json", 0.5, 20)
    fake_val(val / "a--night.json", 0.25, 10)
    fake_val(val / "b--heldout.json", 0.75, 20)
    run = subprocess.run([sys.executable, str(SCRIPT), str(val), "--sets", "heldout", "night", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    table = json.loads((tmp_path / "robustness.json").read_text())
    assert table["a"]["night"] == {"images": 10, "mAP50": 25.0, "recall": 35.0, "drivable mIoU": 90.0, "lane IoU": 12.5}
    md = (tmp_path / "robustness.md").read_text().splitlines()
    assert md[2] == "| heldout (20) | 50.0 / 60.0 / 90.0 / 25.0 | 75.0 / 85.0 / 90.0 / 37.5 |"
    assert md[3] == "| night (10) | 25.0 / 35.0 / 90.0 / 12.5 | - |"
    assert (tmp_path / "robustness.png").stat().st_size > 10_000
