"""Train a RoadNet: one readable loop (data -> model -> loss -> AdamW/SGD + EMA -> validate -> checkpoints).

Outputs in opts.out: last.pt (everything needed to resume), best.pt (EMA weights at the best fitness),
results.csv / results.json (one row per epoch). Checkpoint "model" always holds the EMA weights, which is what
load_checkpoint / export / val use.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np

from model.ultra import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from ultralytics.utils.torch_utils import ModelEMA

from engines.errors import RoadsightError
from model.classes import parse_classes, stored_class_map
from model.config import ModelConfig
from model.loss import ITEMS, RoadLoss
from model.network import RoadNet, read_checkpoint, save_checkpoint
from model.pretrained import transfer
from model.train_utils import (
    EpochLog,
    TrainOptions,
    Validator,
    build_optimizer,
    default_validator,
    fine_tune_config,
    lr_at,
    select_device,
)

SHORT = {"box": "box", "cls": "cls", "dfl": "dfl", "drivable": "da", "lane": "ll", "total": "total"}


def train(opts: TrainOptions, validate: Validator | None = None, console: Console | None = None) -> Path:
    """Run training; returns the path of best.pt. `validate` defaults to default_validator(opts.data)."""
    from model.dataset import TrainDataset, collate

    console = console or Console()
    # ---- setup: seeds, threads, device
    random.seed(opts.seed)
    np.random.seed(opts.seed)
    torch.manual_seed(opts.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    device = select_device(opts.device)
    amp = device.type == "cuda"
    opts.out.mkdir(parents=True, exist_ok=True)
    last_path, best_path = opts.out / "last.pt", opts.out / "best.pt"

    resume = read_checkpoint(last_path) if opts.resume else None
    if opts.resume and "optimizer" not in resume:
        raise RoadsightError(f"resume: {last_path} has no optimizer state. Expected a last.pt written by `roadsight train`.")
    imgsz = tuple(resume["config"]["imgsz"]) if resume else opts.imgsz

    # ---- data (checked whole before the first epoch; resumed runs keep their checkpoint's classes)
    classes = stored_class_map(resume["config"]["names"], resume["config"].get("class_map")) if resume else parse_classes(opts.classes)
    train_set = TrainDataset(opts.data, "train", imgsz, augment=opts.augment, class_map=classes)
    console.print(train_set.summary())
    if len(train_set) < opts.batch:
        raise RoadsightError(
            f"train: {len(train_set)} training images in {opts.data} but --batch {opts.batch}. "
            f"Expected at least one full batch. Lower --batch or add images."
        )
    if validate is None:
        validate = default_validator(opts.data, classes)
    if validate is None:
        console.print("[yellow]no validation (no DATA/images/val or model.evaluate missing): best.pt = lowest train loss")
    loader = torch.utils.data.DataLoader(
        train_set,
        batch_size=opts.batch,
        shuffle=True,
        num_workers=opts.workers,
        collate_fn=collate,
        drop_last=True,
        pin_memory=amp,
        persistent_workers=opts.workers > 0,
        generator=torch.Generator().manual_seed(opts.seed),
        worker_init_fn=_seed_worker,
    )

    # ---- model, loss, optimizer, EMA (or everything from last.pt with --resume)
    start = read_checkpoint(opts.weights) if opts.weights else None
    if resume:
        cfg = ModelConfig.from_dict(resume["config"])
    elif start:
        cfg = fine_tune_config(start["config"], opts, classes)
    else:
        cfg = ModelConfig(
            size=opts.size,
            attention=opts.attention,
            names=classes.names,
            class_map=dict(classes.mapping),
            imgsz=opts.imgsz,
            alpha=opts.alpha,
            gate_init=opts.gate_init,
        )
    model = RoadNet(cfg)
    if start:
        model.load_state_dict(start["model"])
        console.print(f"starting from {opts.weights} ({cfg.size}, {cfg.attention}) at {cfg.imgsz[1]}x{cfg.imgsz[0]}")
    elif opts.pretrained:
        copied, total = transfer(model, opts.pretrained)
        console.print(f"pretrained: transferred {copied} of {total} tensors from {opts.pretrained}")
    model = model.to(device)
    criterion = RoadLoss(model)
    optimizer = build_optimizer(model, opts)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    ema = ModelEMA(model)
    start_epoch, best_fitness = 0, float("-inf")
    if resume:
        model.load_state_dict(resume["train_model"])
        ema.ema.load_state_dict(resume["model"])
        ema.updates = resume["ema_updates"]
        optimizer.load_state_dict(resume["optimizer"])
        scaler.load_state_dict(resume["scaler"])
        start_epoch, best_fitness = resume["epoch"] + 1, resume["best_fitness"]
        loader.generator.manual_seed(opts.seed + start_epoch)  # a fresh shuffle order, not epoch 1's again
        console.print(f"resuming {last_path} at epoch {start_epoch + 1}/{opts.epochs} ({cfg.size}, {cfg.attention})")
        if (opts.size, opts.attention, tuple(opts.imgsz)) != (cfg.size, cfg.attention, cfg.imgsz):
            console.print("[yellow]--size/--attention/--imgsz ignored: the architecture comes from last.pt")
        if parse_classes(opts.classes).names != cfg.names:
            console.print(f"[yellow]--classes ignored: last.pt detects {', '.join(cfg.names)}")
        if start_epoch >= opts.epochs:
            raise RoadsightError(
                f"resume: {last_path} already finished {start_epoch} epochs. Expected --epochs > {start_epoch}, "
                f"got {opts.epochs}. Raise --epochs to train longer."
            )
    log = EpochLog(opts.out, resume=bool(resume))
    steps_per_epoch = len(loader)
    total_steps = opts.epochs * steps_per_epoch
    warmup_steps = min(max(round(opts.warmup_epochs * steps_per_epoch), 100), total_steps // 2)

    # ---- epochs
    for epoch in range(start_epoch, opts.epochs):
        model.train()
        sums = dict.fromkeys(ITEMS, 0.0)
        t0 = time.perf_counter()
        with _progress(console) as progress:
            task = progress.add_task(f"{epoch + 1}/{opts.epochs}", total=steps_per_epoch, losses="")
            for i, batch in enumerate(loader):
                step = epoch * steps_per_epoch + i
                lr = lr_at(step, total_steps, warmup_steps, opts.lr, opts.final_lr_fraction)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                images = batch["img"].to(device, non_blocking=True).float() / 255
                with torch.autocast(device.type, enabled=amp):
                    loss, items = criterion(model(images), batch)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=opts.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                ema.update(model)
                for key in ITEMS:
                    sums[key] += items[key]
                shown = " ".join(f"{SHORT[k]} {sums[k] / (i + 1):.2f}" for k in ITEMS)
                progress.update(task, advance=1, losses=shown)
        row = {"epoch": epoch + 1, "lr": lr, "time_s": round(time.perf_counter() - t0, 2)}
        row.update({f"train_{k}": round(v / steps_per_epoch, 5) for k, v in sums.items()})

        # ---- validate, log, checkpoint
        if validate and ((epoch + 1) % opts.val_every == 0 or epoch + 1 == opts.epochs):
            metrics = validate(ema.ema.eval())
            row.update({f"val_{k}": v for k, v in metrics.items()})
            fitness = metrics["fitness"]
            console.print("val " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        elif validate:
            fitness = None  # no validation this epoch: best.pt can only change on validated epochs
        else:
            fitness = -row["train_total"]
        improved = fitness is not None and fitness > best_fitness
        if improved:
            best_fitness = fitness
        row["fitness"] = fitness if fitness is not None else ""
        log.add(row)
        state = {"epoch": epoch, "best_fitness": best_fitness, "train_args": opts.to_dict(), "metrics": row}
        save_checkpoint(
            last_path,
            ema.ema,
            cfg,
            train_model=_float_state(model),
            ema_updates=ema.updates,
            optimizer=optimizer.state_dict(),
            scaler=scaler.state_dict(),
            **state,
        )
        if improved:
            save_checkpoint(best_path, ema.ema, cfg, **state)
        console.print(
            f"epoch {epoch + 1}: loss {row['train_total']:.4f}, lr {lr:.2e}, {row['time_s']:.0f} s"
            + (f", fitness {fitness:.4f}" if fitness is not None else "")
            + (" [green](best)" if improved else "")
        )
    return best_path


def _float_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: numpy/random seeded from torch's per-worker seed (reproducible augmentation)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=12),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[losses]}"),
        console=console,
        transient=False,
    )
