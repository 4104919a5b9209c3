"""The wheel: every package and module, the shipped model files and card, found by app.zoo once installed."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


def packages() -> list[Path]:
    """Package folders that pyproject's [tool.setuptools.packages.find] includes (each level has __init__.py)."""
    patterns = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    found = []
    for top in sorted(ROOT.iterdir()):
        if not (top / "__init__.py").is_file() or not any(fnmatch.fnmatch(top.name, p) for p in patterns):
            continue
        for init in sorted(top.rglob("__init__.py")):
            parts = init.parent.relative_to(ROOT).parts
            if all((ROOT.joinpath(*parts[: i + 1]) / "__init__.py").is_file() for i in range(len(parts))):
                found.append(init.parent)
    return found


def package_data() -> list[Path]:
    """Source files matched by [tool.setuptools.package-data] (the model card now, the ONNX files once added)."""
    files = []
    for package, patterns in PYPROJECT["tool"]["setuptools"]["package-data"].items():
        base = ROOT.joinpath(*package.split("."))
        files += [p for pattern in patterns for p in sorted(base.glob(pattern)) if p.is_file()]
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the working tree (no build folders or egg-info left in the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, src / name)
    for top in sorted({p.relative_to(ROOT).parts[0] for p in packages()}):
        shutil.copytree(ROOT / top, src / top, ignore=SKIP)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (built,) = (work / "dist").glob("roadsight-*.whl")
    return built


def test_wheel_has_every_package_module_and_no_tests(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected_packages = packages()
    assert {p.name for p in expected_packages} >= {"app", "engines", "calibration", "model"}
    for package in expected_packages:
        for module in package.glob("*.py"):
            assert module.relative_to(ROOT).as_posix() in names, f"{module.relative_to(ROOT)} is missing from the wheel"
    assert not [n for n in names if n.startswith("tests/") or n.endswith((".pt", ".pth"))]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "roadsight = app.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_wheel_has_the_shipped_model_files(wheel):
    archive = zipfile.ZipFile(wheel)
    data = package_data()
    assert ROOT / "app" / "models" / "MODEL_CARD.md" in data
    for path in data:  # whichever exist in the source tree: the card now, the ONNX files once added
        name = path.relative_to(ROOT).as_posix()
        assert name in archive.namelist(), f"{name} is missing from the wheel"
        assert archive.read(name) == path.read_bytes(), f"{name} differs in the wheel"
    shipped = [n for n in archive.namelist() if n.startswith("app/models/")]
    assert sorted(shipped) == sorted(n for n in (p.relative_to(ROOT).as_posix() for p in data) if n.startswith("app/models/"))
    assert "model/domains/wide.yaml" in archive.namelist()  # the built-in synth domains


def test_installed_wheel_finds_its_model_files(wheel, tmp_path):
    """A non-editable install (the wheel unpacked on sys.path): app.zoo resolves files inside it, not the checkout."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import json, app, app.zoo as zoo\n"
        "from engines.errors import RoadsightError\n"
        "try:\n    model = str(zoo.shipped_model())\nexcept RoadsightError as error:\n    model = 'error: ' + str(error)\n"
        "print(json.dumps({'app': app.__file__, 'card': str(zoo.model_card()), 'model': model,\n"
        "                  'variants': {k: str(v) for k, v in zoo.shipped_variants().items()}}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert Path(found["app"]).is_relative_to(site)
    assert found["card"] == str(site / "app" / "models" / "MODEL_CARD.md")
    in_source = {p.name for p in package_data() if p.suffix == ".onnx"}
    assert {Path(v).name for v in found["variants"].values()} == in_source
    assert all(Path(v).is_relative_to(site) for v in found["variants"].values())
    if "roadsight-n.int8-cpu.onnx" in in_source:
        assert found["model"] == str(site / "app" / "models" / "roadsight-n.int8-cpu.onnx")
    else:
        assert found["model"].startswith("error: this install ships no trained model")
