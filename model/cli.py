"""CLI commands for data, training, evaluation, model info and export (registered by app/cli.py).

Implementations are imported inside each command: torch loads only for commands that need it.
"""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(help="Datasets in the BDD100K multi-task layout (images, JSON boxes, PNG masks): synthesize or convert.", no_args_is_help=True)
model_app = typer.Typer(help="Inspect the network: sizes, attention variants, parameters and GFLOPs.", no_args_is_help=True)


@data_app.command("synth")
def data_synth(
    out: Path = typer.Option(..., "--out", help="Folder to write (BDD100K multi-task layout)."),
    n: int = typer.Option(200, "--n", min=0, help="Number of scenes (split into train/val); 0 with --video writes only the clip."),
    seed: int = typer.Option(0, "--seed", help="Random seed; another seed gives a disjoint set."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", min=0.0, max=1.0, help="Share of scenes in val/."),
    video: Path | None = typer.Option(None, "--video", help="Also write a 1280x720 drive clip to this .mp4, with its ground truth CLIP.gt.jsonl (tracks, lanes, ego, lead; for val-stream) and camera CLIP.camera.yaml."),
    frames: int = typer.Option(300, "--frames", min=1, help="Frames in the --video clip."),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes rendering scenes."),
    domain: str = typer.Option("classic", "--domain", help="Ranges of every scene factor: classic (the shipped model's look), wide, or a YAML file."),
    condition: str | None = typer.Option(None, "--condition", help="Fix one factor for a stress set: night, rain, fog, shadows, concrete, curves, dense, glare."),
) -> None:
    """Generate procedural driving scenes with exact labels (BDD100K layout, 1280x720; lane labels 8 px wide).

    --domain picks the ranges the camera, road, paint, light, weather, roadside, traffic and sensor are drawn
    from (model/domains/*.yaml; a YAML file of the same keys works too); --condition fixes one of them.

    Examples:

      roadsight data synth --out data/synth --n 2000 --seed 0

      roadsight data synth --out data/val --n 300 --seed 1 --val-fraction 1

      roadsight data synth --out data/clip --n 0 --video data/drive.mp4 --frames 600

      roadsight data synth --out data/wide --n 4000 --seed 10 --domain wide

      roadsight data synth --out data/night --n 100 --seed 9101 --domain wide --condition night --val-fraction 1
    """
    from model.synth import synth_command

    synth_command(out=out, n=n, seed=seed, val_fraction=val_fraction, video=video, frames=frames, workers=workers,
                  domain=domain, condition=condition)


@data_app.command("convert")
def data_convert(
    source: str = typer.Option(..., "--from", help="Source layout: bdd100k (the official 100K release), yolop or ayolom."),
    src: Path = typer.Option(..., "--src", help="Root folder of the source dataset."),
    out: Path = typer.Option(..., "--out", help="Folder to write in the project's layout (images are hard-linked when possible)."),
    drivable: str = typer.Option("direct", "--drivable", help="bdd100k: direct (YOLOP's choice) or direct+alternative lanes as drivable."),
    lanes: str = typer.Option("masks", "--lanes", help="bdd100k: lane labels from masks (labels/lane/masks) or polygons (8 px lines)."),
    workers: int = typer.Option(4, "--workers", min=1, help="Threads decoding and writing images and masks."),
) -> None:
    """Convert a BDD100K dataset as downloaded into the project's layout, reporting images kept and skipped.

    Examples:

      roadsight data convert --from bdd100k --src downloads/bdd100k --out data/bdd

      roadsight data convert --from bdd100k --src downloads/bdd100k --out data/bdd-alt --drivable direct+alternative

      roadsight data convert --from ayolom --src downloads/ayolom --out data/bdd

      roadsight data convert --from yolop --src downloads/yolop --out data/bdd
    """
    from model.convert import convert_command

    convert_command(source, src, out, drivable, lanes, workers)


def model_info(
    size: str = typer.Option("all", "--size", help="n, s or all."),
    attention: str = typer.Option("all", "--attention", help="vanilla, clipped, gated, clipped+gated or all."),
    imgsz: str = typer.Option("640x384", "--imgsz", help="Network input WIDTHxHEIGHT (multiples of 32)."),
) -> None:
    """Print parameters and GFLOPs for each network size and attention variant.

    Examples:

      roadsight model info

      roadsight model info --size n --attention gated --imgsz 320x192
    """
    from rich.console import Console

    from engines.errors import RoadsightError
    from engines.meta import ATTENTION_VARIANTS, parse_imgsz
    from model.config import SIZES
    from model.info import info_table

    sizes = list(SIZES) if size == "all" else [size]
    attentions = list(ATTENTION_VARIANTS) if attention == "all" else [attention]
    for value, allowed, name in ((sizes, SIZES, "size"), (attentions, ATTENTION_VARIANTS, "attention")):
        if any(v not in allowed for v in value):
            raise RoadsightError(f"--{name}: unknown {value[0]!r}. Expected one of {', '.join(allowed)} or all, got {value[0]!r}.")
    Console().print(info_table(sizes, attentions, parse_imgsz(imgsz)))


def train(
    data: Path = typer.Option(..., "--data", help="Dataset root in the BDD100K multi-task layout (images/train, ...)."),
    size: str = typer.Option("n", "--size", help="Network size: n or s."),
    attention: str = typer.Option("gated", "--attention", help="vanilla, clipped, gated or clipped+gated."),
    epochs: int = typer.Option(100, "--epochs", min=1, help="Number of epochs."),
    imgsz: str = typer.Option("640x384", "--imgsz", help="Network input WIDTHxHEIGHT (multiples of 32)."),
    batch: int = typer.Option(16, "--batch", min=1, help="Images per step."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (default 0.002 AdamW, 0.01 SGD)."),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw or sgd."),
    workers: int = typer.Option(4, "--workers", min=0, help="DataLoader worker processes."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (AMP is used on CUDA)."),
    out: Path = typer.Option(Path("runs/train/exp"), "--out", help="Run folder: last.pt, best.pt, results.csv/json."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt (model, optimizer, EMA, epoch)."),
    weights: Path | None = typer.Option(
        None, "--weights", help="Start a new run from this checkpoint's weights (fine-tune, e.g. at a larger --imgsz); "
        "size and attention come from it."
    ),
    pretrained: Path | None = typer.Option(
        None, "--pretrained", help="Start the backbone, neck and box head from an ultralytics detection checkpoint "
        "you downloaded (yolov8n.pt for --size n, yolov8s.pt for s; YOLO11 files transfer fewer tensors)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (model init, shuffling, augmentation)."),
    val_every: int = typer.Option(1, "--val-every", min=1, help="Validate every N epochs (and after the last)."),
    alpha: float = typer.Option(0.5, "--alpha", min=0.0, help="Clipped softmax: gamma = -alpha / tokens; keep it below 1 so fresh, near-uniform attention is not clipped to zero."),
    gate_init: float = typer.Option(0.5, "--gate-init", help="Gated attention: initial gate probability pi_init."),
    classes: str = typer.Option(
        "vehicle", "--classes", help="Detected classes: vehicle (car, bus, truck, train merged; default), bdd10, a list "
        "such as car,truck,bus,motorcycle, or merges such as car=vehicle,pedestrian=person. Stored in every artifact."
    ),
) -> None:
    """Train the multi-task network (vehicles, drivable area, lane lines).

    Validation runs on DATA/images/val when it exists (best.pt = best fitness, the mean of mAP50, drivable
    mIoU and lane IoU); otherwise best.pt is the epoch with the lowest training loss.

    Examples:

      roadsight train --data data/synth --size n --attention gated --epochs 30 --imgsz 640x384 --batch 16

      roadsight train --data data/bdd --size s --device cuda --out runs/train/s_gated --epochs 100

      roadsight train --data data/bdd --out runs/train/s_gated --epochs 100 --device cuda --resume

      roadsight train --data data/synth --weights runs/small/best.pt --imgsz 640x384 --epochs 10 --out runs/large

      roadsight train --data data/synth --pretrained yolov8n.pt --epochs 30

      roadsight train --data data/bdd --classes car,truck,bus,motorcycle --out runs/train/4class
    """
    from engines.meta import parse_imgsz
    from model.train import train as run_training
    from model.train_utils import TrainOptions

    opts = TrainOptions(
        data=data,
        out=out,
        size=size,
        attention=attention,
        imgsz=parse_imgsz(imgsz),
        epochs=epochs,
        batch=batch,
        lr=lr,
        optimizer=optimizer,
        workers=workers,
        device=device,
        resume=resume,
        weights=weights,
        pretrained=pretrained,
        seed=seed,
        val_every=val_every,
        alpha=alpha,
        gate_init=gate_init,
        classes=classes,
    )
    best = run_training(opts)
    typer.echo(f"best weights: {best}")


def export(
    weights: Path = typer.Option(..., "--weights", help="Checkpoint (.pt) written by `roadsight train`."),
    imgsz: str | None = typer.Option(None, "--imgsz", help="Network input WIDTHxHEIGHT (default: the training size)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Fixed batch size of the ONNX input."),
    dynamic: bool = typer.Option(False, "--dynamic", help="Dynamic batch axis instead of a fixed --batch."),
    half: bool = typer.Option(False, "--half", help="FP16 weights, activations and I/O (for TensorRT 11 strong typing)."),
    fp16_weights: bool = typer.Option(
        False, "--fp16-weights", help="Keep FP32 arithmetic but store the weights as FP16: half the file (Casts fold at load)."
    ),
    simplify: bool = typer.Option(True, "--simplify/--no-simplify", help="Run onnxslim (constant folding, cleanup)."),
    seg_output: str = typer.Option(
        "logits", "--seg-output",
        help="logits: float logits at the heads' strides (h/4, h/2), resized once to the frame by the runtime (fastest); "
        "prob: float probabilities at input size; mask: uint8 0/1 at input size (prob > 0.5).",
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (13..20; 17 suits TensorRT 10/11 and ORT INT8)."),
    out: Path | None = typer.Option(None, "--out", help="Output .onnx (default: WEIGHTS.onnx, or WEIGHTS.fp16.onnx)."),
    data: Path | None = typer.Option(None, "--data", help="Folder of frames for the parity check (default: random inputs)."),
) -> None:
    """Export a checkpoint to ONNX (images -> boxes, scores, drivable, lane) and check it against PyTorch.

    Prints PyTorch vs ONNX Runtime max and mean |diff| per output on the same inputs.

    Examples:

      roadsight export --weights runs/train/exp/best.pt

      roadsight export --weights best.pt --imgsz 640x384 --dynamic --data data/synth/images/val

      roadsight export --weights best.pt --half --seg-output mask --out best.fp16.onnx
    """
    from engines.meta import parse_imgsz
    from model.export import ExportOptions, export_command

    export_command(
        ExportOptions(
            weights=weights,
            imgsz=parse_imgsz(imgsz) if imgsz else None,
            batch=batch,
            dynamic=dynamic,
            half=half,
            fp16_weights=fp16_weights,
            simplify=simplify,
            seg_output=seg_output,
            opset=opset,
            out=out,
            data=data,
        )
    )


def val(
    weights: Path = typer.Option(..., "--weights", help="Model to evaluate: .pt checkpoint, .onnx or TensorRT .engine."),
    data: Path = typer.Option(..., "--data", help="Dataset root in the BDD100K multi-task layout."),
    split: str = typer.Option("val", "--split", help="Split folder under images/ to evaluate."),
    batch: int = typer.Option(8, "--batch", min=1, help="Frames per predictor call."),
    conf: float | None = typer.Option(None, "--conf", min=0.0, max=1.0, help="NMS confidence threshold (default: the protocol's, 0.001)."),
    iou: float | None = typer.Option(None, "--iou", min=0.0, max=1.0, help="NMS IoU threshold (default: the protocol's, 0.6)."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the results (with the protocol) to this JSON file."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate only the first N images."),
    lane_dilate: int = typer.Option(
        0, "--lane-dilate", min=0, help="Also report lane IoU against ground truth dilated by N px per side (train-width labels)."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (TensorRT engines always use the GPU); openvino or openvino:GPU runs an .onnx with OpenVINO."),
) -> None:
    """Score a model on a labelled split: detection mAP50/recall, drivable mIoU, lane IoU/accuracy.

    The classes are the model's own (stored by `train --classes`), so labels are mapped as in training.

    The protocol (NMS thresholds, input size, frame-size masks, one confusion matrix over the whole set)
    is printed beside the numbers and stored in the JSON.

    Examples:

      roadsight val --weights runs/train/exp/best.pt --data data/synth

      roadsight val --weights model.onnx --data data/bdd --batch 16 --json val.json

      roadsight val --weights model.engine --data data/bdd --device cuda --limit 500 --lane-dilate 3
    """
    import json

    from rich.console import Console

    from engines.errors import RoadsightError

    if not weights.is_file():
        raise RoadsightError(f"--weights: {weights} does not exist. Expected a .pt, .onnx or .engine file, got no file. Check the path.")
    from model.bdd import BDDDataset, require_split

    require_split(data, split)  # before the model loads
    import engines
    from model.classes import stored_class_map
    from model.evaluate import EVAL_CONF, EVAL_IOU, evaluate, format_report

    with engines.load(weights, device=device) as engine:
        dataset = BDDDataset(data, split, stored_class_map(engine.meta.names, engine.meta.class_map))
        Console().print(dataset.summary())
        predictor = engines.Predictor(engine, conf=EVAL_CONF if conf is None else conf, iou=EVAL_IOU if iou is None else iou)
        results = evaluate(predictor, dataset, batch=batch, limit=limit, lane_dilate=lane_dilate)
    results["weights"] = str(weights)
    Console().print(format_report(results))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1))
        typer.echo(f"results: {json_path}")


def val_stream(
    pred: Path = typer.Option(..., "--pred", help="JSONL of `roadsight run --jsonl` on the clip (with the driving stage: --track, --camera)."),
    gt: Path = typer.Option(..., "--gt", help="Ground truth CLIP.gt.jsonl written by `roadsight data synth --video`."),
    json_path: Path = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
    lead_max: float = typer.Option(40.0, "--lead-max", min=1.0, help="Score lead distances only where the true lead is closer than this (m)."),
) -> None:
    """Score tracks, lane geometry, ego facts and the lead vehicle of a run against a clip's ground truth.

    Prints MOTA, IDF1 and ID switches (TrackEval definitions via `trackers.eval`, IoU >= 0.5), lateral-offset and
    lane-width MAE (m), departure-event precision/recall/F1 and the lead-distance relative error, each beside the
    target it is held to. JSON keys: idf1, mota, id_switches, lateral_offset_mae_m, lane_width_mae_m, departure_f1,
    lead_distance_rel_error (then counts and coverage).

    Examples:

      roadsight data synth --out data/clip --n 0 --seed 3 --video data/drive.mp4 --frames 600

      roadsight run -m model.onnx -s data/drive.mp4 --camera data/drive.camera.yaml --jsonl runs/drive.jsonl

      roadsight val-stream --pred runs/drive.jsonl --gt data/drive.gt.jsonl --json runs/drive.val.json
    """
    import json

    from rich.console import Console

    from model.stream_eval import evaluate_stream, format_report

    results = evaluate_stream(pred, gt, lead_max)
    Console().print(format_report(results))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1))
        typer.echo(f"results: {json_path}")


def register(app: typer.Typer) -> None:
    """Add data/model/train/val/export commands to the root app."""
    app.add_typer(data_app, name="data")
    app.add_typer(model_app, name="model")
    model_app.command("info")(model_info)
    app.command("train")(train)
    app.command("val")(val)
    app.command("val-stream")(val_stream)
    app.command("export")(export)
