"""Config -> objects, in exactly one place, then the loop, then the run directory's files."""

from __future__ import annotations

import logging
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from resdeep.checkpoint import read_checkpoint, resolve_checkpoint_path, save_checkpoint
from resdeep.data import DataSplits, DeviceLoader, build_data
from resdeep.errors import UsageError
from resdeep.models import ModelConfigError, build_model, count_parameters, weight_layers
from resdeep.train.device import resolve_device, resolve_precision
from resdeep.train.loop import LoopSettings, LoopState, TrainingLoop, evaluate
from resdeep.train.optim import build_optimizer, lr_multiplier
from resdeep.train.tensorboard import TensorBoardLogger

log = logging.getLogger("resdeep.train")

MODEL_KEYS = (
    "arch",
    "depth",
    "block",
    "shortcut",
    "init",
    "norm",
    "zero_init_residual",
    "dropout",
    "dropout_at",
)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # Needed by cuBLAS for deterministic matmuls; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def load_data(cfg: DictConfig) -> DataSplits:
    data = cfg.data
    return build_data(
        data.name,
        root=data.get("root", "data"),
        download=bool(data.get("download", False)),
        val_size=data.get("val_size", 0.1),
        image_size=data.get("image_size"),
        classes=list(data.classes) if data.get("classes") is not None else None,
        seed=int(data.get("seed", cfg.seed)),
        canvas_size=int(data.get("canvas_size", 32)),
        num_samples=int(data.get("num_samples", 512)),
        num_classes=int(data.get("num_classes", 10)),
        channels=int(data.get("channels", 3)),
    )


def model_kwargs(cfg: DictConfig, data: DataSplits) -> dict[str, Any]:
    kwargs = {key: cfg.model[key] for key in MODEL_KEYS}
    kwargs["dropout"] = float(kwargs["dropout"])
    kwargs["depth"] = int(kwargs["depth"])
    kwargs["in_channels"] = data.in_channels
    kwargs["num_classes"] = len(data.classes)
    return kwargs


def plan_steps(trainer: DictConfig, steps_per_epoch: int) -> tuple[int, int]:
    """(epochs, total steps) from `trainer.epochs` and/or `trainer.max_steps`."""
    epochs, max_steps = trainer.get("epochs"), trainer.get("max_steps")
    if epochs is None and max_steps is None:
        raise UsageError("set trainer.epochs or trainer.max_steps")
    if epochs is not None and int(epochs) < 1:
        raise UsageError(f"trainer.epochs must be at least 1, got {epochs}")
    if max_steps is not None and int(max_steps) < 1:
        raise UsageError(f"trainer.max_steps must be at least 1, got {max_steps}")
    if epochs is None:
        return math.ceil(int(max_steps) / steps_per_epoch), int(max_steps)
    total = int(epochs) * steps_per_epoch
    if max_steps is not None:
        total = min(total, int(max_steps))
    return math.ceil(total / steps_per_epoch), total


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one configuration into `run_dir`; returns the final metrics."""
    trainer = cfg.trainer
    resume_from = trainer.get("resume")
    checkpoint = None
    if resume_from:
        checkpoint = read_checkpoint(resolve_checkpoint_path(resume_from, "last.pt"))
    elif (run_dir / "checkpoints" / "last.pt").exists():
        raise UsageError(
            f"{run_dir} already holds a run; continue it with trainer.resume={run_dir} "
            "or pick another hydra.run.dir"
        )

    deterministic = bool(trainer.get("deterministic", False))
    seed_everything(int(cfg.seed), deterministic)
    device = resolve_device(str(trainer.device))
    precision = resolve_precision(trainer.precision, device)
    data = load_data(cfg)
    kwargs = model_kwargs(cfg, data)
    try:
        model = build_model(**kwargs)
    except ModelConfigError as error:
        raise UsageError(str(error)) from error

    channels_last = _use_channels_last(str(trainer.get("channels_last", "auto")), device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)

    batch_size = int(cfg.data.batch_size)
    if batch_size < 1:
        raise UsageError(f"data.batch_size must be at least 1, got {batch_size}")
    if batch_size > len(data.train.labels):
        raise UsageError(
            f"data.batch_size={batch_size} is larger than the {len(data.train.labels)} training "
            f"images of {data.name}; use a smaller batch"
        )
    generator = torch.Generator().manual_seed(int(cfg.seed))
    augment = bool(cfg.data.get("augment", True))
    train_loader = DeviceLoader(
        data.train,
        batch_size=batch_size,
        mean=data.mean,
        std=data.std,
        device=device,
        shuffle=True,
        augment=augment,
        pad_crop=data.pad_crop,
        flip=data.flip,
        drop_last=True,
        generator=generator,
        channels_last=channels_last,
    )
    eval_batch = int(trainer.get("eval_batch_size", 512))
    val_loader, test_loader = (
        DeviceLoader(
            split,
            batch_size=eval_batch,
            mean=data.mean,
            std=data.std,
            device=device,
            channels_last=channels_last,
        )
        for split in (data.val, data.test)
    )
    epochs, total_steps = plan_steps(trainer, len(train_loader))

    optim_cfg = cfg.optim
    optimizer = build_optimizer(
        model.parameters(),
        optim_cfg.name,
        lr=float(optim_cfg.lr),
        weight_decay=float(optim_cfg.get("weight_decay", 0.0)),
        momentum=float(optim_cfg.get("momentum", 0.9)),
        nesterov=bool(optim_cfg.get("nesterov", False)),
        betas=tuple(optim_cfg.get("betas", (0.9, 0.999))),
        fused=device.type == "cuda",
    )
    schedule = cfg.schedule
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lr_multiplier(
            schedule.name,
            total_steps=total_steps,
            base_lr=float(optim_cfg.lr),
            milestones=tuple(schedule.get("milestones", (0.5, 0.75))),
            gamma=float(schedule.get("gamma", 0.1)),
            min_lr=float(schedule.get("min_lr", 0.0)),
            warmup_steps=int(schedule.get("warmup_steps", 0)),
            warmup_lr=schedule.get("warmup_lr"),
            warmup=str(schedule.get("warmup", "constant")),
        ),
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16")

    state = LoopState()
    if checkpoint is not None:
        _restore(checkpoint, model, optimizer, scheduler, scaler, train_loader, state, device)
        log.info("resuming from %s at epoch %d, step %d", resume_from, state.epoch, state.step)
        state.status = "running"

    train_model = torch.compile(model) if trainer.get("compile", False) else model
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    params = count_parameters(model)
    summary = {
        "arch": kwargs["arch"],
        "depth": kwargs["depth"],
        "data": data.name,
        "init": kwargs["init"],
        "norm": kwargs["norm"],
        "params": params,
        "device": str(device),
        "precision": precision,
    }
    metadata = {
        "config": resolved,
        "model_kwargs": kwargs,
        "classes": list(data.classes),
        "normalization": {"mean": list(data.mean), "std": list(data.std)},
        "input_shape": [data.in_channels, data.image_size, data.image_size],
    }
    logger = TensorBoardLogger(
        run_dir,
        layer_names=[name for name, _ in weight_layers(model)],
        purge_step=state.step + 1 if checkpoint else None,
    )
    loop = TrainingLoop(
        model=model,
        train_model=train_model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        train_loader=train_loader,
        val_loader=val_loader,
        device=device,
        precision=precision,
        settings=LoopSettings(
            epochs=epochs,
            total_steps=total_steps,
            log_every=int(trainer.log_every),
            dense_first_epoch=bool(trainer.get("dense_first_epoch", False)),
            progress=str(trainer.get("progress", "auto")),
        ),
        state=state,
        run_dir=run_dir,
        logger=logger,
        checkpoint_metadata=metadata,
        metrics_extra=summary,
    )
    log.info(
        "%s-%d on %s (%s train / %s val / %s test, %s), %s params, %d epochs = %d steps, device %s",
        kwargs["arch"],
        kwargs["depth"],
        data.name,
        len(data.train.labels),
        len(data.val.labels),
        len(data.test.labels),
        "x".join(map(str, metadata["input_shape"])),
        f"{params:,}",
        epochs,
        total_steps,
        device,
    )
    try:
        status = loop.fit()
    finally:
        state.status = state.status if state.status != "running" else "interrupted"
        loop.write_metrics()

    # Report test numbers of the model selected on validation (best.pt), the honest protocol.
    if loop.best_state is not None:
        model.load_state_dict(loop.best_state)
    elif (run_dir / "checkpoints" / "best.pt").exists():
        model.load_state_dict(read_checkpoint(run_dir / "checkpoints" / "best.pt")["model"])
    test_loss, test_acc = evaluate(model, test_loader, loop.autocast)
    final = loop.write_metrics({"test_loss": test_loss, "test_acc": test_acc, "status": status})
    if status == "completed":
        logger.hyperparameters(
            {
                **summary,
                "optim": optim_cfg.name,
                "lr": float(optim_cfg.lr),
                "batch_size": batch_size,
                "seed": int(cfg.seed),
                "epochs": epochs,
            },
            {
                "test_acc": test_acc,
                "test_loss": test_loss,
                "best_val_acc": final["best_val_acc"] or 0.0,
                "train_loss": final["train_loss"] or float("nan"),
            },
        )
    logger.close()
    # Keep the test numbers with the checkpoints too, so tools need nothing but the file.
    for name in ("best.pt", "last.pt"):
        path = run_dir / "checkpoints" / name
        if path.exists() and status == "completed":
            payload = read_checkpoint(path)
            payload["metrics"] = {
                **payload.get("metrics", {}),
                "test_acc": test_acc,
                "test_loss": test_loss,
            }
            payload.pop("format", None)
            payload.pop("format_version", None)
            save_checkpoint(path, payload)
    return final


def _use_channels_last(setting: str, device: torch.device) -> bool:
    if setting == "auto":
        return device.type == "cuda"  # faster for cuDNN convolutions; not measured faster on CPU
    return setting.lower() in ("true", "1", "yes")


def _restore(checkpoint, model, optimizer, scheduler, scaler, train_loader, state, device) -> None:
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise UsageError(
            "the checkpoint's model does not match this configuration; resume with the run's own "
            "settings"
        ) from error
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    scaler.load_state_dict(checkpoint["scaler"])
    rng = checkpoint["rng"]
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)
    train_loader.load_state_dict(rng["loader"])
    for key, value in checkpoint["loop_state"].items():
        setattr(state, key, value)
