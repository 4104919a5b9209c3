"""Checkpoint -> ONNX (FP32 or FP16) with the raw-output contract, roadsight metadata and a parity check.

What mirrors ultralytics' exporter (engine/exporter.py, 8.4): BatchNorm folded into the convolutions
(`Conv.forward_fuse`), `C2f.forward_split` (Split instead of chunk, friendlier to TensorRT), eval mode,
no gradients, `torch.onnx.export(..., dynamo=False)` (the TorchScript exporter: stable names, dynamic_axes).
Detect's own `export`/`format`/`dynamic`/`max_det` flags are not needed: RoadNet never calls
`Detect.forward` in eval, it decodes the boxes itself and emits `boxes` and `scores` as separate outputs
(INT8 on a tensor mixing pixel coordinates and probabilities would crush the probabilities).

Precision: `--half` traces `model.half()` on the CPU, so every weight, activation and I/O tensor is FP16
(`images` float16 in; `boxes`, `scores` and probabilities float16 out, masks uint8). TensorRT 11 is
strongly typed and builds exactly these types; on TensorRT 10 the same graph builds with STRONGLY_TYPED.
FP16 boxes are exact to 0.25 px below 512 px and 0.5 px above (11-bit mantissa).
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.ultra import torch
from engines.errors import RoadsightError
from engines.meta import SEG_OUTPUTS, ModelMeta, format_imgsz
from model.config import ATTENTION_STRIDE, ModelConfig
from model.network import RoadNet, load_checkpoint
from model.onnx_weights import store_fp16

INPUT_NAME = "images"
OUTPUT_NAMES = ("boxes", "scores", "drivable", "lane")
# Opset 17: every op RoadNet uses (Resize-13, Softmax-13, Clip-13, Split-13) is at its final form there, and
# it is inside what all targets accept: the TensorRT 10.3 parser of JetPack 6 and TensorRT 10.x/11.x desktop,
# ONNX Runtime's static INT8 quantizer (rejects opset >= 21) and ORT-CUDA (lacks Resize-19 kernels).
# Per-channel QuantizeLinear needs >= 13. Newer opsets add nothing this graph uses.
DEFAULT_OPSET, MIN_OPSET, MAX_OPSET = 17, 13, 20


@dataclass
class ExportOptions:
    """Settings of one export; imgsz None takes the checkpoint's training size."""

    weights: Path
    imgsz: tuple[int, int] | None = None
    batch: int = 1
    dynamic: bool = False
    half: bool = False
    fp16_weights: bool = False  # FP32 graph, weights stored as FP16 (model/onnx_weights.py): half the file
    simplify: bool = True
    seg_output: str = "logits"
    opset: int = DEFAULT_OPSET
    out: Path | None = None
    data: Path | None = None
    parity_samples: int = 2


@dataclass
class ExportResult:
    """What `export_onnx` wrote and measured. parity: output name -> (max |diff|, mean |diff|)."""

    path: Path
    meta: ModelMeta
    seconds: float
    size_bytes: int
    parity: dict[str, tuple[float, float]] = field(default_factory=dict)
    parity_source: str = "random"


def model_meta(
    cfg: ModelConfig,
    imgsz: tuple[int, int] | None = None,
    precision: str = "fp32",
    seg_output: str = "logits",
    batch: int | None = 1,
) -> ModelMeta:
    """The ModelMeta of a RoadNet built from `cfg` (shared by the exporter and the PyTorch backend)."""
    dtype = "float16" if precision == "fp16" else "float32"
    return ModelMeta(
        names=tuple(cfg.names),
        imgsz=tuple(imgsz or cfg.imgsz),
        class_map=dict(cfg.class_map),
        stride=ATTENTION_STRIDE,
        attention=cfg.attention,
        size=cfg.size,
        precision=precision,
        seg_output=seg_output,
        batch=batch,
        preprocess=f"letterbox, BGR->RGB, /255, NCHW {dtype}, pad 114",
    )


def check_options(opts: ExportOptions) -> None:
    """One-line errors for settings that cannot work, before anything heavy loads."""
    if opts.seg_output not in SEG_OUTPUTS:
        raise RoadsightError(
            f"--seg-output: unknown value {opts.seg_output!r}. Expected logits, prob or mask, got {opts.seg_output!r}."
        )
    if not MIN_OPSET <= opts.opset <= MAX_OPSET:
        raise RoadsightError(
            f"--opset: {opts.opset} is out of range. Expected {MIN_OPSET}..{MAX_OPSET}, got {opts.opset}. "
            f"Use {DEFAULT_OPSET} (TensorRT 10/11 and ONNX Runtime INT8 all accept it)."
        )
    if opts.dynamic and opts.batch != 1:
        raise RoadsightError(
            f"--batch/--dynamic: both given. Expected a fixed --batch N or --dynamic, got --batch {opts.batch} "
            "and --dynamic. Drop one of them."
        )
    if opts.out is not None and Path(opts.out).suffix.lower() != ".onnx":
        raise RoadsightError(
            f"--out: {opts.out} does not end in .onnx. Expected a path like model.onnx, got {opts.out}."
        )
    if opts.batch < 1:
        raise RoadsightError(f"--batch: {opts.batch}. Expected a positive batch size, got {opts.batch}.")


def default_out(weights: Path, half: bool) -> Path:
    return weights.with_suffix(".fp16.onnx" if half else ".onnx")


def export_onnx(opts: ExportOptions) -> ExportResult:
    """Load the checkpoint, export it to ONNX, write metadata and measure PyTorch vs ONNX Runtime parity."""
    import onnx

    check_options(opts)
    start = time.perf_counter()
    model = load_checkpoint(opts.weights)
    model.seg_output = opts.seg_output
    reference = copy.deepcopy(model)  # unfused FP32: the parity covers fusion, tracing and FP16
    cfg = model.cfg
    imgsz = tuple(opts.imgsz or cfg.imgsz)
    if any(v <= 0 or v % ATTENTION_STRIDE for v in imgsz):
        raise RoadsightError(
            f"--imgsz: {format_imgsz(imgsz)} is not a positive multiple of 32. Expected e.g. 640x384, "
            f"got {format_imgsz(imgsz)}."
        )
    images, source = parity_inputs(imgsz, 2 if opts.dynamic else opts.batch, opts.data)  # fail before exporting
    precision = "fp16" if opts.half else "fp32"
    meta = model_meta(cfg, imgsz, precision, opts.seg_output, None if opts.dynamic else opts.batch)
    out = Path(opts.out or default_out(Path(opts.weights), opts.half))
    out.parent.mkdir(parents=True, exist_ok=True)

    model.prepare_export()
    if opts.half:
        model.half()
    trace_batch = 2 if opts.dynamic else opts.batch  # batch 2 keeps the tracer from baking a size-1 batch
    dtype = torch.float16 if opts.half else torch.float32
    dummy = torch.zeros(trace_batch, 3, *imgsz, dtype=dtype)
    dynamic_axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)} if opts.dynamic else None
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated (still the stable path for dynamic_axes); image h, w are
        # traced as constants on purpose (only the batch axis is dynamic)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            _OrderedOutputs(model),
            (dummy,),
            str(out),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            opset_version=opts.opset,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            dynamo=False,
        )
    graph = onnx.load(str(out))
    if opts.simplify:
        graph = _slim(graph)
    if opts.fp16_weights and not opts.half:
        store_fp16(graph)
    _write_meta(graph, meta)
    onnx.checker.check_model(graph)
    onnx.save(graph, str(out))
    seconds = time.perf_counter() - start

    parity = compare(reference, out, images)
    return ExportResult(out, meta, seconds, out.stat().st_size, parity, source)


class _OrderedOutputs(torch.nn.Module):
    """RoadNet's eval dict as a tuple in OUTPUT_NAMES order (the ONNX output order)."""

    def __init__(self, model: RoadNet):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(images)
        return tuple(outputs[name] for name in OUTPUT_NAMES)


def _slim(graph):
    """onnxslim: constant folding, dead-node removal, shape inference; keeps names and dynamic axes."""
    import onnxslim

    return onnxslim.slim(graph)


def _write_meta(graph, meta: ModelMeta) -> None:
    graph.producer_name = "roadsight"
    graph.doc_string = "roadsight multi-task network: images -> boxes, scores, drivable, lane"
    meta.write_onnx(graph)


def parity_inputs(imgsz: tuple[int, int], batch: int, data: Path | None, seed: int = 0) -> tuple[np.ndarray, str]:
    """(batch, 3, h, w) float32 inputs: letterboxed images from `data` (a folder, searched recursively), else random."""
    if data is None:
        rng = np.random.default_rng(seed)
        return rng.random((batch, 3, *imgsz), dtype=np.float32), "random"
    import cv2

    from engines.media import IMAGE_SUFFIXES, expand
    from engines.preprocess import letterbox

    data = Path(data)
    root = data / "images" if (data / "images").is_dir() else data  # a dataset root: frames only, not its masks
    files = (expand(root, IMAGE_SUFFIXES) or []) if root.is_dir() else []
    frames = [frame for frame in (cv2.imread(str(path)) for path in files[:batch]) if frame is not None]
    if not frames:
        raise RoadsightError(
            f"--data: no readable images in {data}. Expected a folder with .jpg/.png frames (searched "
            "recursively), got none."
        )
    images, _ = letterbox((frames * batch)[:batch], imgsz)
    return images, f"{len(frames)} image(s) from {data}"


def compare(reference: RoadNet, onnx_path: Path, images: np.ndarray) -> dict[str, tuple[float, float]]:
    """PyTorch `reference` vs ONNX Runtime on `images`: output name -> (max |diff|, mean |diff|).

    Masks (uint8) compare as 0/1, so the mean is the fraction of pixels that disagree.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed_type = np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, {INPUT_NAME: images.astype(feed_type)})))
    with torch.no_grad():
        want = reference.eval()(torch.from_numpy(images.astype(np.float32)))
    diffs = {}
    for name in OUTPUT_NAMES:
        diff = np.abs(got[name].astype(np.float64) - want[name].numpy().astype(np.float64))
        diffs[name] = (float(diff.max()), float(diff.mean()))
    return diffs


def export_command(opts: ExportOptions) -> ExportResult:
    """`roadsight export`: run the export under a spinner, then print the file, its size and the parity table."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    check_options(opts)
    with console.status(f"exporting {opts.weights} to ONNX (opset {opts.opset}) and checking parity..."):
        result = export_onnx(opts)
    meta = result.meta
    batch = "dynamic" if meta.batch is None else meta.batch
    console.print(
        f"[bold]{result.path}[/bold]  {result.size_bytes / 1e6:.2f} MB  in {result.seconds:.1f} s  "
        f"({meta.size}/{meta.attention}, {meta.imgsz[1]}x{meta.imgsz[0]}, batch {batch}, {meta.precision}, "
        f"seg {meta.seg_output}, opset {opts.opset})"
    )
    table = Table(title=f"PyTorch FP32 vs ONNX Runtime CPU ({result.parity_source})")
    for column in ("output", "max |diff|", "mean |diff|"):
        table.add_column(column, justify="left" if column == "output" else "right")
    for name, (worst, mean) in result.parity.items():
        table.add_row(name, f"{worst:.3g}", f"{mean:.3g}")
    console.print(table)
    if meta.seg_output == "mask":
        console.print("masks: mean |diff| is the fraction of pixels where PyTorch and ONNX disagree")
    return result
