"""Domain randomization: the typed domain description, conditions, classic unchanged, wide labels exact."""

import dataclasses
import subprocess
import sys

import cv2
import numpy as np
import pytest

from engines.errors import RoadsightError
from model.domain import CONDITIONS, Domain, load_domain
from model.synth import make_scene
from model.synth_geometry import Camera, Hill, RoadPath
from model.synth_lens import Lens
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
    ("hills", lambda s: s.hill[1] != 0),
    ("worn", lambda s: all(line.gaps and line.alpha < 0.9 for line in s.lines)),
    ("lens", lambda s: s.lens != (0.0, 0.0)),
    ("intersection", lambda s: bool(s.crossing)),
    ("merges", lambda s: bool(s.taper)),
])
def test_each_condition_fixes_its_factor(condition, check):
    assert all(check(s) for s in scenes(load_domain("wide", condition), 12))


def test_shadow_curve_and_density_conditions_shift_their_factor():
    wide = scenes(load_domain("wide"))
    assert np.mean([len(s.shadows) for s in scenes(load_domain("wide", "shadows"))]) > 3
    assert np.mean([abs(s.k0) for s in scenes(load_domain("wide", "curves"))]) > 2 * np.mean([abs(s.k0) for s in wide])
    assert np.mean([len(s.vehicles) for s in scenes(load_domain("wide", "dense"))]) > 1.5 * np.mean([len(s.vehicles) for s in wide])
    assert set(CONDITIONS) >= {"night", "rain", "fog", "shadows", "concrete", "curves", "dense", "glare", "hills", "worn", "lens", "intersection", "merges"}


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


ALL_ON = dataclasses.replace(load_domain("wide"), distortion_p=1.0, hill_p=1.0, worn_p=1.0, markers_p=1.0, intersection_p=1.0, merge_p=1.0)


def test_new_factors_appear_in_wide_at_their_rates_and_never_in_classic():
    """Lens distortion, hills, worn paint and raised markers: about their domain probability over 300 scenes."""
    wide, dom = scenes(load_domain("wide"), 300, seed=11), load_domain("wide")
    rates = {
        "distortion_p": np.mean([s.lens != (0.0, 0.0) for s in wide]),
        "hill_p": np.mean([s.hill[1] != 0 for s in wide]),
        "worn_p": np.mean([any(line.gaps for line in s.lines) for s in wide if s.lines]) ,
        "markers_p": np.mean([any(line.markers for line in s.lines) for s in wide if len(s.lines) >= 3]),
        "intersection_p": np.mean([bool(s.crossing) for s in wide]),
        "merge_p": np.mean([bool(s.taper) for s in wide if s.n_ego >= 2 and not s.concrete and not s.crossing]),
    }
    for key, rate in rates.items():
        assert abs(rate - getattr(dom, key)) < 0.09, (key, rate)
    assert np.mean([s.hill[1] < 0 for s in wide if s.hill[1]]) == pytest.approx(0.5, abs=0.15)  # crests and sags
    assert np.ptp([s.lens[0] for s in wide if s.lens[0]]) > 0.06  # barrel and pincushion
    assert min(s.lens[0] for s in wide) < 0 < max(s.lens[0] for s in wide)
    classic = scenes(load_domain("classic"), 60)
    assert not any(s.lens != (0.0, 0.0) or s.hill != (0.0, 0.0) or s.crossing or s.taper or any(line.gaps or line.markers for line in s.lines) for s in classic)


def test_new_factors_are_deterministic_by_seed():
    a, b, other = make_scene(5, 2, W, H, ALL_ON), make_scene(5, 2, W, H, ALL_ON), make_scene(5, 3, W, H, ALL_ON)
    assert a[0] == b[0] and np.array_equal(a[1].image, b[1].image) and a[1].labels == b[1].labels
    assert np.array_equal(a[1].lane, b[1].lane) and np.array_equal(a[1].drivable, b[1].drivable)
    assert a[0].lens != other[0].lens and a[0].hill != other[0].hill and a[0].crossing != other[0].crossing


def test_lens_points_invert_the_image_map():
    """The outline warp (label points) is the inverse of the image map, barrel and pincushion."""
    for k1, k2 in ((-0.06, -0.01), (0.04, 0.01)):
        lens = Lens(k1, k2, 0.36 * 1280, 650.0, 350.0, 1280, 720)
        mx, my = lens.maps
        rng = np.random.default_rng(0)
        v, u = rng.integers(0, 720, 500), rng.integers(0, 1280, 500)
        back = lens.points(np.stack([mx[v, u], my[v, u]], 1))
        assert np.abs(back - np.stack([u, v], 1)).max() < 0.01
        assert mx.min() >= 0 and mx.max() <= 1280 and my.min() >= 0 and my.max() <= 720  # no black corners
    assert Lens(-0.06, -0.01, 460.8, 640.0, 360.0, 1280, 720).zoom < 1 == Lens(0.04, 0.0, 460.8, 640.0, 360.0, 1280, 720).zoom


def _pixel_box(frame, lab):
    ys, xs = np.nonzero(frame.ids == lab.id)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_lens_warps_image_masks_and_boxes_together():
    """Distorted masks are the pinhole masks through the same map; each fully visible object's box is the box of
    its warped pixels (the pinhole box is not)."""
    lensed, moved = 0, 0
    for i in range(8):
        s = sample_scene(np.random.default_rng([3, i]), 640, 360, domain=load_domain("wide", "lens"))
        pinhole, f = render(dataclasses.replace(s, lens=(0.0, 0.0))), render(s)
        lens = Lens(*s.lens, s.f, 320 + s.principal[0], 180 + s.principal[1], 640, 360)
        assert np.array_equal(f.lane, lens.warp(pinhole.lane, nearest=True))
        assert np.array_equal(f.drivable, lens.warp(pinhole.drivable, nearest=True))
        assert not np.array_equal(f.image, pinhole.image)
        flat = {lab.id: lab for lab in pinhole.labels}
        for lab in f.labels:
            if lab.visible >= 1.0 and not lab.truncated:
                pix = _pixel_box(f, lab)
                assert max(abs(a - b) for a, b in zip(lab.box, pix)) <= 2.0, (i, lab, pix)
                lensed += 1
                moved += max(abs(a - b) for a, b in zip(flat[lab.id].box, pix)) > 2.0
    assert lensed > 10 and moved > 3


def _flat(s):
    return dataclasses.replace(s, hill=(0.0, 0.0))


def _road_top(frame) -> int:
    return int(np.nonzero(frame.drivable.any(1))[0].min())


def test_a_sag_lifts_the_road_and_what_stands_on_it():
    """A sag: the far road rises in the image and vehicles stay on it (their box bottom rises with the road)."""
    s = sample_scene(np.random.default_rng([2, 0]), W, H, domain=load_domain("classic"))
    s.hill, s.hood = (10.0, 1 / 600), 0.0
    flat, hill = render(_flat(s)), render(s)
    assert _road_top(hill) < _road_top(flat) - 5
    cam = Camera(W, H, s.f, W / 2, H / 2, s.cam_h, s.pitch, s.roll, Hill(*s.hill))
    flat_cam = Camera(W, H, s.f, W / 2, H / 2, s.cam_h, s.pitch, s.roll)
    path = RoadPath.clothoid(s.k0, s.k1, s.yaw, -s.camera_o)
    boxes = {lab.key: lab for lab in hill.labels if lab.key is not None}
    flat_boxes = {lab.key: lab for lab in flat.labels if lab.key is not None}
    checked = 0
    for key, v in enumerate(s.vehicles):
        if key in boxes and key in flat_boxes and v.kind not in ("motor", "bike") and 20 < v.d < 80 and not boxes[key].truncated:
            near = path.points(np.array([v.d]), v.o)
            rise = flat_cam.project(near)[0][0, 1] - cam.project(near)[0][0, 1]
            assert rise > 1 and abs((flat_boxes[key].box[3] - boxes[key].box[3]) - rise) < 0.25 * rise + 1.5
            checked += 1
    assert checked


def test_a_crest_ends_the_road_and_hides_what_lies_beyond():
    """A crest: the road stops at the crest line; nothing beyond it is drawn below that line; labels stay exact."""
    beyond = 0
    for i in range(4):
        s = sample_scene(np.random.default_rng([8, i]), W, H, domain=load_domain("wide", "hills"))
        s.hill, s.lens, s.taper = (8.0, -1 / 900), (0.0, 0.0), ()
        cam = Camera(W, H, s.f, W / 2 + s.principal[0], H / 2 + s.principal[1], s.cam_h, s.pitch, s.roll, Hill(*s.hill))
        z_crest, (a, b) = cam.crest()
        assert 20 < z_crest < 120
        f = render(s)
        yy, xx = np.mgrid[0:H, 0:W]
        below = yy > a * xx + b + 1
        assert f.drivable[~below].sum() <= W  # the road ends at the crest line (a row of anti-aliasing at most)
        assert _road_top(f) > _road_top(render(_flat(s)))
        hidden = f.ids != 0
        path = RoadPath.clothoid(s.k0, s.k1, s.yaw, -s.camera_o)
        road = np.zeros((H, W), np.uint8)
        reach = int(np.argmax(path.z >= z_crest)) + 1  # (a sharp curve may turn the road back further on)
        arc = float(np.interp(z_crest, path.z[:reach], path.d[:reach]))
        cv2.fillPoly(road, [cam.polygon(path.band(0.0, s.n_ego * s.lane_w, 0.5, arc, 64))], 1)
        road[hidden] = 0
        assert np.array_equal(road, f.drivable)  # the ego road up to the crest, none folded back from beyond it
        assert not f.drivable[hidden].any() and not f.lane[hidden].any()
        for lab in f.labels:
            assert (f.ids == lab.id).any()
            if lab.key is not None and s.vehicles[lab.key].d > z_crest + 5:  # beyond the crest: only its top shows
                beyond += 1
                assert not (below & (f.ids == lab.id)).any()
    assert beyond


def test_worn_paint_and_markers_change_the_image_not_the_lane_label():
    """Worn gaps and raised markers are drawn; the lane label keeps the intended line (see model.synth_scene.Line)."""
    s = sample_scene(np.random.default_rng([4, 1]), W, H, domain=load_domain("wide", "worn"))
    s.lines = [dataclasses.replace(line, gaps=((5.0, 9.0), (14.0, 30.0)), markers=(4.0, 1.0)) for line in s.lines]
    s.hood, s.lens, s.hill, s.timeofday = 0.0, (0.0, 0.0), (0.0, 0.0), "daytime"
    worn = render(s)
    s.lines = [dataclasses.replace(line, gaps=(), markers=()) for line in s.lines]
    painted = render(s)
    assert np.array_equal(worn.lane, painted.lane) and np.array_equal(worn.drivable, painted.drivable) and worn.labels == painted.labels
    paint = painted.lane.astype(bool)
    assert np.abs(worn.image.astype(int) - painted.image)[paint].mean() > 2 * np.abs(worn.image.astype(int) - painted.image)[~paint].mean()


def test_a_crossing_road_is_drivable_interrupts_the_lines_and_is_kept_clear():
    """The crossing widens the drivable area beyond the road's edges, the road's own lines stop across it, its
    centre line is labelled, and no roadside prop or parked car stands on it."""
    for i in range(4):
        s = sample_scene(np.random.default_rng([6, i]), 640, 360, domain=load_domain("wide", "intersection"))
        s.hill, s.lens, s.crossing = (0.0, 0.0), (0.0, 0.0), (15.0, 14.0)
        with_crossing, without = render(s), render(dataclasses.replace(s, crossing=()))
        assert with_crossing.drivable.sum() > without.drivable.sum()
        cam = Camera(640, 360, s.f, 320 + s.principal[0], 180 + s.principal[1], s.cam_h, s.pitch, s.roll)
        path = RoadPath.clothoid(s.k0, s.k1, s.yaw, -s.camera_o)
        inside = np.zeros((360, 640), np.uint8)
        for line in s.lines:  # where the road's lines would run across the crossing (not near its edges)
            cv2.polylines(inside, [cam.polygon(path.points(np.linspace(19.0, 25.0, 20), line.o))], False, 1, 1)
        assert without.lane[inside > 0].any() or not s.lines
        assert not with_crossing.lane[(inside > 0) & (with_crossing.ids == 0)].any()
        assert with_crossing.lane.sum() != without.lane.sum()
    s = sample_scene(np.random.default_rng([6, 0]), W, H, domain=load_domain("wide", "intersection"))
    d0, d1 = s.crossing[0], s.crossing[0] + s.crossing[1]
    edge = (-s.n_opp * s.lane_w, s.n_ego * s.lane_w)
    assert not [p for p in s.props if not edge[0] <= p.o <= edge[1] and p.kind in ("tree", "lamp", "traffic sign") and d0 - 1 < p.d < d1 + 1]
    assert not [v for v in s.vehicles if v.speed == 0 and v.d < d1 and v.d + v.length > d0]


def test_a_lane_that_ends_or_starts_ahead_narrows_the_road_and_its_labels():
    """Where the rightmost lane is missing, the drivable area loses it, the edge line label follows the moved edge
    and no traffic drives in it."""
    kinds = set()
    for i in range(6):
        s = sample_scene(np.random.default_rng([9, i]), 640, 360, domain=load_domain("wide", "merges"))
        s.hill, s.lens = (0.0, 0.0), (0.0, 0.0)
        d0, d1, ends = s.taper
        kinds.add(ends)
        tapered, full = render(s), render(dataclasses.replace(s, taper=()))
        assert not (tapered.drivable & ~full.drivable & (full.ids == 0)).any()  # only narrower
        assert tapered.drivable.sum() < full.drivable.sum() - 50
        divider = (s.n_ego - 1) * s.lane_w
        gone = [v for v in s.vehicles if divider < v.o < s.n_ego * s.lane_w and (v.d + v.length > d0 if ends else v.d < d1)]
        assert not gone
        edge_line = [line for line in s.lines if line.follows_edge]
        if edge_line:
            cam = Camera(640, 360, s.f, 320 + s.principal[0], 180 + s.principal[1], s.cam_h, s.pitch, s.roll)
            path = RoadPath.clothoid(s.k0, s.k1, s.yaw, -s.camera_o)
            d = np.linspace(d1 + 2, d1 + 20, 10) if ends else np.linspace(3.0, d0 - 1, 10)
            uv = np.round(cam.project(path.points(d, edge_line[0].o - s.lane_w))[0]).astype(int)
            ok = (uv[:, 0] >= 0) & (uv[:, 0] < 640) & (uv[:, 1] >= 0) & (uv[:, 1] < 360)
            seen = [tapered.lane[v, u] for u, v in uv[ok] if tapered.ids[v, u] == 0]
            assert seen and all(seen)
    assert kinds == {True, False}
