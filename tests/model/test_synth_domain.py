"""Domain randomization: the typed domain description, conditions, classic unchanged, wide labels exact."""

import subprocess
import sys

import numpy as np
import pytest

from engines.errors import RoadsightError
from model.domain import CONDITIONS, Domain, load_domain
from model.synth import make_scene
from model.synth_render import render
from model.synth_scene import sample_scene

W, H = 320, 180


def scenes(domain: Domain, n: int = 30, seed: int = 7):
    return [sample_scene(np.random.default_rng([seed, i]), W, H, domain=domain) for i in range(n)]


def test_classic_yaml_is_the_default_and_classic_scenes_are_unchanged():
    """The built-in classic file equals the defaults, so a scene without a domain is the classic scene."""
    assert load_domain("classic") == Domain()
    a, b = make_scene(4, 1, W, H)[1], make_scene(4, 1, W, H, load_domain("classic"))[1]
    assert np.array_equal(a.image, b.image) and a.labels == b.labels


def test_wide_draws_wider_ranges():
    classic, wide = scenes(load_domain("classic")), scenes(load_domain("wide"))
    assert np.ptp([s.f / W for s in wide]) > 2 * np.ptp([s.f / W for s in classic])
    assert all(s.principal == (0.0, 0.0) for s in classic) and any(s.principal != (0.0, 0.0) for s in wide)
    assert any(p.kind in ("barrier", "wall") for s in wide for p in s.props)
    assert not any(p.kind in ("barrier", "wall") for s in classic for p in s.props)
    assert max(s.n_ego for s in scenes(load_domain("wide"), 80)) == 5
    assert any(s.motion[0] > 0 for s in wide) and np.ptp([s.gain for s in wide if s.timeofday == "daytime"]) > 0.4


@pytest.mark.parametrize("condition, check", [
    ("night", lambda s: s.timeofday == "night"),
    ("rain", lambda s: s.weather == "rainy" and s.rain > 0),
    ("fog", lambda s: s.weather == "foggy" and s.fog > 0),
    ("shadows", lambda s: s.timeofday == "daytime" and s.weather == "clear"),
    ("concrete", lambda s: s.concrete and min(s.asphalt) >= 100),
    ("glare", lambda s: s.glare > 0),
])
def test_each_condition_fixes_its_factor(condition, check):
    assert all(check(s) for s in scenes(load_domain("wide", condition), 12))


def test_shadow_curve_and_density_conditions_shift_their_factor():
    wide = scenes(load_domain("wide"))
    assert np.mean([len(s.shadows) for s in scenes(load_domain("wide", "shadows"))]) > 3
    assert np.mean([abs(s.k0) for s in scenes(load_domain("wide", "curves"))]) > 2 * np.mean([abs(s.k0) for s in wide])
    assert np.mean([len(s.vehicles) for s in scenes(load_domain("wide", "dense"))]) > 1.5 * np.mean([len(s.vehicles) for s in wide])
    assert set(CONDITIONS) >= {"night", "rain", "fog", "shadows", "concrete", "curves", "dense", "glare"}


def test_light_only_factors_leave_the_labels_alone():
    """Cast shadows, glare, vignetting and motion blur change pixels, never the masks or boxes."""
    s = sample_scene(np.random.default_rng([3, 0]), W, H, domain=load_domain("wide", "shadows"))
    s.glare, s.vignette, s.motion = 0.8, 0.4, (12.0, 0.3)
    lit = render(s)
    s.shadows, s.glare, s.vignette, s.motion = [], 0.0, 0.0, (0.0, 0.0)
    plain = render(s)
    assert np.abs(lit.image.astype(int) - plain.image).mean() > 3
    assert np.array_equal(lit.drivable, plain.drivable) and np.array_equal(lit.lane, plain.lane) and lit.labels == plain.labels


def test_wide_labels_are_exact():
    """Masks are hidden behind every object (barriers and walls included); boxes lie in the frame and were seen."""
    dom = load_domain("wide")
    for i in range(6):
        _, f = make_scene(12, i, W, H, dom)
        hidden = f.ids != 0
        assert not f.drivable[hidden].any() and not f.lane[hidden].any()
        assert f.drivable.any()
        for lab in f.labels:
            x1, y1, x2, y2 = lab.box
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H and (f.ids == lab.id).any()
            assert lab.category not in ("barrier", "wall")


def test_a_domain_file_overrides_some_keys(tmp_path):
    path = tmp_path / "nights.yaml"
    path.write_text("timeofday: {night: 1.0}\nfocal: [0.5, 0.6]\n")
    d = load_domain(path)
    assert d.name == "nights" and d.focal == (0.5, 0.6) and d.jpeg == Domain().jpeg
    assert all(s.timeofday == "night" for s in scenes(d, 5))


@pytest.mark.parametrize("text, fix", [
    ("focal: [0.5, 0.6]\nfov: 90\n", "unknown key(s) fov"),
    ("weather: {clear: 0.5}\n", "summing to 1"),
    ("glare_p: 2\n", "probability in [0, 1]"),
    ("focal: [0.9, 0.5]\n", "low <= high"),
    ("focal: wide\n", "Expected the type"),
    ("- a list\n", "Expected a mapping"),
])
def test_bad_domain_files_are_one_line_errors(tmp_path, text, fix):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RoadsightError) as err:
        load_domain(path)
    assert "\n" not in str(err.value) and fix in str(err.value)


def test_unknown_names_are_one_line_errors(tmp_path):
    with pytest.raises(RoadsightError, match="Expected one of night, rain"):
        load_domain("wide", "snow")
    with pytest.raises(RoadsightError, match="neither a built-in domain nor a file"):
        load_domain(tmp_path / "missing.yaml")


def test_cli_domain_and_condition(tmp_path):
    out = tmp_path / "night"
    run = subprocess.run([sys.executable, "-m", "app.cli", "data", "synth", "--out", str(out), "--n", "2", "--seed", "3", "--workers", "1",
                          "--domain", "wide", "--condition", "night"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "Domain: wide+night." in " ".join(run.stdout.split()) and "night 2" in " ".join(run.stdout.split())
    bad = subprocess.run([sys.executable, "-m", "app.cli", "data", "synth", "--out", str(out), "--n", "1", "--condition", "snow"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "unknown condition 'snow'" in bad.stdout + bad.stderr and "Traceback" not in bad.stdout + bad.stderr
