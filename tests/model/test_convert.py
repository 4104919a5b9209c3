"""`data convert` on tiny datasets in each layout users have (the official BDD100K 100K release, YOLOP, A-YOLOM):
an oracle that predicts the source's truth scores perfectly on the converted set; foreign codings are refused."""

import json

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from engines.errors import RoadsightError
from engines.perception import Perception
from model.bdd import BDDDataset
from model.convert import AYOLOM_NAMES, LANE_PX, convert, draw_lanes
from model.evaluate import evaluate

H, W = 72, 128
NAMES = {"train": ["t0", "t1"], "val": ["v0", "v1", "v2"]}
LANE_POLYS = [[[10, 71], [16, 71], [42, 45], [39, 45]], [[100, 71], [106, 71], [82, 45], [79, 45]]]


def truth(name: str) -> dict:
    """Boxes (det_20 categories), drivable direct / alternative regions and lane lines of one frame."""
    i = int(name[1:])
    objects = [("car", [4 + i, 6, 30 + i, 28]), ("truck", [40, 10, 70, 40 + i]), ("pedestrian", [90, 20, 98, 44]),
               ("motorcycle", [100 + i, 44, 120, 60])]
    direct, alternative, lane = (np.zeros((H, W), np.uint8) for _ in range(3))
    direct[52:, 30 + i : 80] = 1
    alternative[52:, 80:110] = 1
    for poly in LANE_POLYS:
        cv2.fillPoly(lane, [np.array(poly, np.int32) + [i, 0]], 1)
    image = np.random.default_rng(i + 10 * len(name)).integers(0, 255, (H, W, 3), dtype=np.uint8)
    return {"objects": objects, "direct": direct, "alternative": alternative, "lane": lane, "image": image}


def box2d(xyxy):
    return dict(zip(("x1", "y1", "x2", "y2"), map(float, xyxy)))


def write_official(root, unlabelled: str = "v2", no_labels_key: str = "v1"):
    """images/100k, det_20 lists (one image absent, one frame without "labels"), 0/1/2 drivable, 255-background lanes."""
    for split, names in NAMES.items():
        (root / "images/100k" / split).mkdir(parents=True)
        for sub in ("drivable/masks", "lane/masks"):
            (root / "labels" / sub / split).mkdir(parents=True)
        frames = []
        for name in names:
            t = truth(name)
            cv2.imwrite(str(root / "images/100k" / split / f"{name}.jpg"), t["image"])
            drivable = np.full((H, W), 2, np.uint8)
            drivable[t["alternative"] > 0], drivable[t["direct"] > 0] = 1, 0
            lane = np.full((H, W), 255, np.uint8)
            lane[t["lane"] > 0] = np.where(np.arange(W) % 2, 3, 130)[np.nonzero(t["lane"])[1]]  # bit-coded lane attributes
            cv2.imwrite(str(root / "labels/drivable/masks" / split / f"{name}.png"), drivable)
            cv2.imwrite(str(root / "labels/lane/masks" / split / f"{name}.png"), lane)
            frame = {"name": f"{name}.jpg", "attributes": {"weather": "clear"}, "timestamp": 10000}
            if name != no_labels_key:
                frame["labels"] = [{"id": str(k), "category": c, "box2d": box2d(b)} for k, (c, b) in enumerate(t["objects"])]
            if name != unlabelled:
                frames.append(frame)
        (root / "labels/det_20").mkdir(parents=True, exist_ok=True)
        (root / "labels/det_20" / f"det_{split}.json").write_text(json.dumps(frames))
    return root


def write_yolop(root, missing_lane: str = "v2"):
    """YOLOP's layout with 2018 category names (person, motor) and 0/255 masks; one lane mask missing."""
    aliases = {"pedestrian": "person", "motorcycle": "motor"}
    for split, names in NAMES.items():
        for sub in ("images", "det_annotations", "da_seg_annotations", "ll_seg_annotations"):
            (root / sub / split).mkdir(parents=True)
        for name in names:
            t = truth(name)
            cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), t["image"])
            objects = [{"category": aliases.get(c, c), "box2d": box2d(b)} for c, b in t["objects"]]
            (root / "det_annotations" / split / f"{name}.json").write_text(json.dumps({"name": name, "frames": [{"objects": objects}]}))
            cv2.imwrite(str(root / "da_seg_annotations" / split / f"{name}.png"), t["direct"] * 255)
            if name != missing_lane:
                cv2.imwrite(str(root / "ll_seg_annotations" / split / f"{name}.png"), t["lane"] * 255)
    return root


def write_ayolom(root):
    """A-YOLOM: images/SPLIT2017, YOLO boxes with A-YOLOM's class ids, drivable and lane as YOLO polygons."""
    ids = {"car": AYOLOM_NAMES.index("car"), "truck": AYOLOM_NAMES.index("truck"), "pedestrian": AYOLOM_NAMES.index("person"),
           "motorcycle": AYOLOM_NAMES.index("motor")}
    for split, names in NAMES.items():
        folders = {sub: root / sub / "labels" / f"{split}2017" for sub in ("detection-object", "seg-drivable-10", "seg-lane-11")}
        for folder in (root / "images" / f"{split}2017", *folders.values()):
            folder.mkdir(parents=True)
        for name in names:
            t, i = truth(name), int(name[1:])
            cv2.imwrite(str(root / "images" / f"{split}2017" / f"{name}.jpg"), t["image"])
            rows = [f"{ids[c]} {(b[0] + b[2]) / 2 / W!r} {(b[1] + b[3]) / 2 / H!r} {(b[2] - b[0]) / W!r} {(b[3] - b[1]) / H!r}" for c, b in t["objects"]]
            (folders["detection-object"] / f"{name}.txt").write_text("\n".join(rows))
            contours = cv2.findContours(t["direct"], cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
            assert len(contours) == 1
            polygon = " ".join(f"{x / W:.9f} {y / H:.9f}" for x, y in contours[0][:, 0])
            (folders["seg-drivable-10"] / f"{name}.txt").write_text(f"10 {polygon}\n")
            lanes = [" ".join(f"{(x + i) / W:.9f} {y / H:.9f}" for x, y in poly) for poly in LANE_POLYS]
            (folders["seg-lane-11"] / f"{name}.txt").write_text("".join(f"11 {p}\n" for p in lanes))
    return root


class Oracle:
    """Predicts the source truth of each frame (found by its decoded pixels), classes as the dataset maps them."""

    def __init__(self, dataset: BDDDataset, alternative: bool, unlabelled: tuple[str, ...] = ()):
        self.dataset, self.alternative, self.by_pixels = dataset, alternative, {}
        for image in dataset.images:
            t = truth(image.stem)
            self.by_pixels[cv2.imread(str(image)).tobytes()] = {**t, "objects": [] if image.stem in unlabelled else t["objects"]}

    def __call__(self, frames):
        out = []
        for frame in frames:
            t = self.by_pixels[frame.tobytes()]
            kept = [(self.dataset.classes.index(c), b) for c, b in t["objects"] if self.dataset.classes.index(c) is not None]
            drivable = t["direct"] | t["alternative"] if self.alternative else t["direct"]
            out.append(Perception(boxes=np.array([b for _, b in kept], np.float32).reshape(-1, 4), scores=np.linspace(0.9, 0.5, len(kept), dtype=np.float32),
                                  class_ids=np.array([c for c, _ in kept], np.int64), names=self.dataset.names, drivable=drivable, lane=t["lane"]))
        return out


def oracle_scores(root, classes: str = "bdd10", alternative: bool = False, unlabelled: tuple[str, ...] = ()) -> dict:
    dataset = BDDDataset(root, "val", classes)
    return evaluate(Oracle(dataset, alternative, unlabelled), dataset, batch=2, progress=False)


def assert_perfect(scores: dict, images: int):
    assert scores["images"] == images and scores["instances"] == 4 * images
    assert scores["detection"]["mAP50"] == pytest.approx(0.995) and scores["drivable"]["IoU"] == 1.0 and scores["lane"]["IoU"] == 1.0


@pytest.mark.parametrize("drivable", ["direct", "direct+alternative"])
def test_official_release_converts_exactly(tmp_path, drivable):
    src = write_official(tmp_path / "bdd100k")
    report = convert("bdd100k", src, tmp_path / "out", drivable=drivable, workers=2)
    assert report.kept == {"train": 2, "val": 2} and report.skipped == {"no labels (not in det_20)": 1}
    assert "skipped 1: no labels (not in det_20) (e.g. val/v2.jpg)" in report.lines()
    empty = json.loads((tmp_path / "out/det_annotations/val/v1.json").read_text())  # no "labels" key: an empty frame
    assert empty["frames"] == [{"objects": []}]
    scores = oracle_scores(tmp_path / "out", alternative=drivable == "direct+alternative", unlabelled=("v1",))
    assert scores["images"] == 2 and scores["instances"] == 4  # v0 has 4 boxes, v1 none
    assert scores["detection"]["mAP50"] == pytest.approx(0.995) and scores["drivable"]["IoU"] == 1.0 and scores["lane"]["IoU"] == 1.0
    wrong = oracle_scores(tmp_path / "out", alternative=drivable == "direct", unlabelled=("v1",))  # the other choice is really different
    assert wrong["drivable"]["IoU"] < 0.9


def test_yolop_and_ayolom_convert_exactly(tmp_path):
    report = convert("yolop", write_yolop(tmp_path / "yolop"), tmp_path / "from_yolop")
    assert report.kept == {"train": 2, "val": 2} and report.skipped == {"no lane mask": 1}
    assert_perfect(oracle_scores(tmp_path / "from_yolop"), 2)
    written = json.loads((tmp_path / "from_yolop/det_annotations/val/v0.json").read_text())["frames"][0]["objects"]
    assert [o["category"] for o in written] == ["car", "truck", "pedestrian", "motorcycle"]  # 2018 names -> det_20
    report = convert("ayolom", write_ayolom(tmp_path / "ayolom"), tmp_path / "from_ayolom")
    assert report.kept == {"train": 2, "val": 3} and not report.skipped
    assert_perfect(oracle_scores(tmp_path / "from_ayolom"), 3)
    vehicles = BDDDataset(tmp_path / "from_ayolom", "val")  # the default map: car and truck -> vehicle
    assert vehicles.names == ("vehicle",) and vehicles.read(0).classes.tolist() == [0, 0]


def test_lane_polygons_are_drawn_train_width():
    straight = [{"poly2d": [{"vertices": [[100, 300], [1100, 300]], "types": "LL", "closed": False}]}]
    mask = draw_lanes(straight, (720, 1280))
    rows = np.nonzero(mask[:, 600])[0]
    assert len(rows) == LANE_PX + 1 and abs(rows.mean() - 300) <= 0.5 and mask[300, 100:1101].all() and not mask[:, :95].any()
    curve = [{"poly2d": [{"vertices": [[100, 300], [400, 300], [800, 300], [1100, 300]], "types": "LCCC", "closed": False}]}]
    np.testing.assert_array_equal(draw_lanes(curve, (720, 1280)), mask)  # a Bezier with collinear controls is the same line


def test_official_lane_polygons_are_drawn_into_the_lane_masks(tmp_path):
    src = write_official(tmp_path / "bdd100k")
    with pytest.raises(RoadsightError, match="lane_train.json is missing.*--lanes masks"):
        convert("bdd100k", src, tmp_path / "none", lanes="polygons")
    line = {"category": "lane/single white", "poly2d": [{"vertices": [[10, 71], [40, 45]], "types": "LL", "closed": False}]}
    for split, names in NAMES.items():
        (src / "labels/lane/polygons").mkdir(exist_ok=True)
        (src / "labels/lane/polygons" / f"lane_{split}.json").write_text(json.dumps([{"name": f"{n}.jpg", "labels": [line]} for n in names if n != "t1"]))
    report = convert("bdd100k", src, tmp_path / "out", lanes="polygons")
    assert report.kept == {"train": 1, "val": 2} and report.skipped == {"no labels (not in det_20)": 1, "no lane polygons": 1}
    lane = cv2.imread(str(tmp_path / "out/ll_seg_annotations/val/v0.png"), cv2.IMREAD_GRAYSCALE)
    expected = np.zeros((H, W), np.uint8)
    cv2.line(expected, (10, 71), (40, 45), 255, 1)  # 8 px at 1280 wide is 1 px at 128
    np.testing.assert_array_equal(lane, expected)


def test_official_coding_is_refused_before_training(tmp_path):
    src = write_official(tmp_path / "bdd100k")
    with pytest.raises(RoadsightError, match="official BDD100K 100K release layout.*data convert --from bdd100k"):
        BDDDataset(src, "train")
    moved = tmp_path / "moved"  # the release's files moved into the project's folders
    for split, names in NAMES.items():
        for sub in ("images", "det_annotations", "da_seg_annotations", "ll_seg_annotations"):
            (moved / sub / split).mkdir(parents=True)
        for name in names:
            (moved / "images" / split / f"{name}.jpg").write_bytes((src / "images/100k" / split / f"{name}.jpg").read_bytes())
            (moved / "det_annotations" / split / f"{name}.json").write_text(json.dumps({"name": name, "labels": []}))
            (moved / "da_seg_annotations" / split / f"{name}.png").write_bytes((src / "labels/drivable/masks" / split / f"{name}.png").read_bytes())
            (moved / "ll_seg_annotations" / split / f"{name}.png").write_bytes((src / "labels/lane/masks" / split / f"{name}.png").read_bytes())
    with pytest.raises(RoadsightError, match=r"drivable mask holds only \[0, 1, 2\].*data convert --from bdd100k") as err:
        BDDDataset(moved, "train")
    assert "\n" not in str(err.value)
    for name in NAMES["train"]:
        cv2.imwrite(str(moved / "da_seg_annotations/train" / f"{name}.png"), truth(name)["direct"] * 255)
    with pytest.raises(RoadsightError, match="lane mask is .* 255.*data convert --from bdd100k"):
        BDDDataset(moved, "train")
    for name in NAMES["train"]:
        cv2.imwrite(str(moved / "ll_seg_annotations/train" / f"{name}.png"), truth(name)["lane"] * 255)
    (moved / "det_annotations/train/t1.json").write_text((src / "labels/det_20/det_train.json").read_text())
    with pytest.raises(RoadsightError, match="a BDD100K label list .*data convert --from bdd100k"):
        BDDDataset(moved, "train")


def test_train_command_refuses_official_masks_before_the_first_epoch(tmp_path):
    pytest.importorskip("torch")
    from model import cli

    app = typer.Typer()
    cli.register(app)
    moved = tmp_path / "moved"
    write_yolop(moved, missing_lane="")
    drivable = np.full((H, W), 2, np.uint8)
    for name in NAMES["train"]:
        cv2.imwrite(str(moved / "da_seg_annotations/train" / f"{name}.png"), drivable)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", str(moved), "--out", str(out), "--epochs", "1", "--batch", "1", "--workers", "0", "--imgsz", "128x64"])
    assert result.exit_code != 0 and isinstance(result.exception, RoadsightError)
    assert "data convert --from bdd100k" in str(result.exception) and "\n" not in str(result.exception)
    assert not (out / "last.pt").exists()
    official = write_official(tmp_path / "bdd100k")
    result = CliRunner().invoke(app, ["val", "--weights", str(out / "missing.pt"), "--data", str(official)])
    assert "does not exist" in str(result.exception)
    (tmp_path / "m.onnx").write_bytes(b"")
    result = CliRunner().invoke(app, ["val", "--weights", str(tmp_path / "m.onnx"), "--data", str(official)])
    assert isinstance(result.exception, RoadsightError) and "data convert --from bdd100k" in str(result.exception)


def test_convert_command_reports_and_refuses(tmp_path):
    from model import cli

    app = typer.Typer()
    cli.register(app)
    runner = CliRunner()
    src = write_official(tmp_path / "bdd100k")
    result = runner.invoke(app, ["data", "convert", "--from", "bdd100k", "--src", str(src), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "kept 4 images (2 train, 2 val)" in result.output and "no labels (not in det_20)" in result.output
    assert len(BDDDataset(tmp_path / "out", "train")) == 2
    for args, message in ((["--from", "kitti"], "--from 'kitti' is unknown"), (["--drivable", "all"], "--drivable 'all' is unknown"),
                          (["--from", "yolop"], "no images/train or images/val")):
        result = runner.invoke(app, ["data", "convert", "--from", "bdd100k", "--src", str(src), "--out", str(tmp_path / "o2"), *args])
        assert isinstance(result.exception, RoadsightError) and message in str(result.exception)
