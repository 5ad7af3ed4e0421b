"""A config -> the objects of one training run, in named steps.

`build_training` reads as the recipe: seed, device, data and model, loaders, optimizer and
schedule, restore, wrappers, logger, loop. Each step is one function, so a benchmark or a test
can build exactly the part it needs.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel

from resdeep.config import data_from_config, model_kwargs_from_config, seed_run
from resdeep.data import DataSplits, DeviceLoader
from resdeep.device import resolve_device, resolve_precision
from resdeep.errors import UsageError
from resdeep.models import ConvNet, ModelConfigError, build_model, count_parameters
from resdeep.train.description import RunDescription
from resdeep.train.diagnostics import LayerDiagnostics
from resdeep.train.distributed import World
from resdeep.train.loop import LoopSettings, LoopState, TrainingLoop
from resdeep.train.optim import build_optimizer, lr_multiplier
from resdeep.train.resume import planned_steps
from resdeep.train.tensorboard import TensorBoardLogger

log = logging.getLogger("resdeep.train")


@dataclass
class Training:
    """Everything built from a config, ready to run (and to benchmark)."""

    loop: TrainingLoop
    model: torch.nn.Module
    test_loader: DeviceLoader
    description: RunDescription


def seed_everything(seed: int, deterministic: bool) -> None:
    """Python, NumPy and torch from one seed; deterministic kernels when asked."""
    seed_run(seed)
    if deterministic:
        # Needed by cuBLAS for deterministic matmuls; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def plan_steps(trainer: DictConfig, steps_per_epoch: int) -> tuple[int, int]:
    """(epochs, total steps) from `trainer.epochs` and/or `trainer.max_steps`."""
    total = planned_steps(trainer, steps_per_epoch)
    return math.ceil(total / steps_per_epoch), total


def per_device_batch(cfg: DictConfig, world: World) -> int:
    """`data.batch_size` is the global batch (split over devices) unless trainer.global_batch=false.

    The learning rate is never rescaled behind the user's back: change optim.lr explicitly.
    """
    batch_size = int(cfg.data.batch_size)  # at least 1: checked with the config
    if not bool(cfg.trainer.global_batch) or world.world_size == 1:
        return batch_size
    if batch_size % world.world_size:
        raise UsageError(
            f"data.batch_size={batch_size} does not split evenly over {world.world_size} devices"
        )
    return batch_size // world.world_size


def device_for(name: str, world: World) -> torch.device:
    """The configured device; under DDP each rank takes the GPU of its local rank."""
    device = resolve_device(name)
    if device.type == "cuda" and world.distributed:
        return torch.device("cuda", world.local_rank)
    return device


def use_channels_last(setting: str | bool, device: torch.device) -> bool:
    """channels_last memory format: on where it was measured to be faster (`auto`): on GPUs
    (cuDNN prefers it) and on AVX-512 CPUs (oneDNN; `resdeep bench`'s channels_last_speedup,
    the README has the number); elsewhere the contiguous layout stays, PyTorch's default."""
    if setting == "auto":
        if device.type == "cuda":
            return True
        return "AVX512" in torch.backends.cpu.get_cpu_capability()
    return bool(setting)


def build_network(
    cfg: DictConfig, data: DataSplits, device: torch.device, channels_last: bool
) -> tuple[ConvNet, dict[str, Any]]:
    """The model the config describes, on `device` and in its memory format; with its kwargs."""
    kwargs = model_kwargs_from_config(cfg, data)
    try:
        model = build_model(**kwargs)
    except ModelConfigError as error:
        raise UsageError(str(error)) from error
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model, kwargs


def init_from_checkpoint(model: ConvNet, kwargs: dict[str, Any], source: str) -> None:
    """Start from another run's weights (its best.pt), e.g. an imported published net: the same
    network, a fresh optimizer and schedule. A different class count gets a fresh classifier."""
    from resdeep.checkpoint import (
        first_architecture_difference,
        read_checkpoint,
        resolve_checkpoint_path,
    )

    path = resolve_checkpoint_path(source, "best.pt")
    payload = read_checkpoint(path)
    theirs = payload["model_kwargs"]
    differing = first_architecture_difference(theirs, kwargs)
    if differing is not None:
        raise UsageError(
            f"trainer.init_from={source}: its net has {differing}={theirs[differing]}, this run "
            f"{kwargs.get(differing)}"
            + (
                ""
                if differing == "in_channels"
                else f" (set model.{differing}={theirs[differing]})"
            )
        )
    state = payload["model"]
    if theirs.get("num_classes") != kwargs["num_classes"]:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        log.info(
            "init_from %s: %s classes there, %s here: the classifier starts fresh",
            path, theirs.get("num_classes"), kwargs["num_classes"],
        )  # fmt: skip
    missing, unexpected = model.load_state_dict(state, strict=False)
    stray = [k for k in missing if not k.startswith("classifier.")] + list(unexpected)
    if stray:
        raise UsageError(f"trainer.init_from={source}: its weights do not fit ({stray[0]})")
    log.info("weights from %s", path)


def build_loaders(
    cfg: DictConfig, data: DataSplits, device: torch.device, world: World, channels_last: bool
) -> tuple[DeviceLoader, DeviceLoader, DeviceLoader]:
    """(train, val, test) loaders; the train loader is this rank's shard, augmented."""
    batch_size = per_device_batch(cfg, world)
    if batch_size * world.world_size > len(data.train.labels):
        raise UsageError(
            f"data.batch_size={cfg.data.batch_size} is larger than the {len(data.train.labels)} "
            f"training images of {data.name}; use a smaller batch"
        )
    # Every rank seeds its loader alike, so all ranks agree on each epoch's order.
    generator = torch.Generator().manual_seed(int(cfg.seed))
    train_loader = DeviceLoader(
        data.train,
        batch_size=batch_size,
        mean=data.mean,
        std=data.std,
        device=device,
        shuffle=True,
        augment=bool(cfg.data.augment),
        pad_crop=data.pad_crop,
        flip=data.flip,
        drop_last=True,
        generator=generator,
        channels_last=channels_last,
        rank=world.rank,
        world_size=world.world_size,
    )
    eval_batch = int(cfg.trainer.eval_batch_size)
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
    return train_loader, val_loader, test_loader


def build_optimization(
    cfg: DictConfig, model: torch.nn.Module, device: torch.device, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The optimizer and its step-wise learning-rate schedule (warm-up included)."""
    optim_cfg, schedule = cfg.optim, cfg.schedule
    optimizer = build_optimizer(
        model.parameters(),
        optim_cfg.name,
        lr=float(optim_cfg.lr),
        weight_decay=float(optim_cfg.weight_decay),
        momentum=float(optim_cfg.momentum),
        nesterov=bool(optim_cfg.nesterov),
        betas=tuple(optim_cfg.betas),
        fused=device.type == "cuda",
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lr_multiplier(
            schedule.name,
            total_steps=total_steps,
            base_lr=float(optim_cfg.lr),
            milestones=tuple(schedule.milestones),
            gamma=float(schedule.gamma),
            min_lr=float(schedule.min_lr),
            warmup_steps=int(schedule.warmup_steps),
            warmup_lr=schedule.warmup_lr,
            warmup=str(schedule.warmup),
        ),
    )
    return optimizer, scheduler


def restore(
    checkpoint: dict,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler,
    loader: DeviceLoader,
    state: LoopState,
    device: torch.device,
) -> None:
    """Weights, optimizer, schedule, scaler, RNG, the loader's position and the loop's state
    from a checkpoint: the resumed run continues exactly where the saved one stopped."""
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
    loader.load_state_dict(rng["loader"])
    for key, value in checkpoint["loop_state"].items():
        setattr(state, key, value)
    state.status = "running"
    follow_the_schedule(scheduler, checkpoint)


def follow_the_schedule(
    scheduler: torch.optim.lr_scheduler.LambdaLR, checkpoint: dict[str, Any]
) -> None:
    """The rate of the schedule planned for this run's budget, from the resumed step on.

    The schedule is a function of the budget (a cosine over all steps, milestones at fractions
    of them). A run resumed with a larger budget is re-planned over it: the rate at the current
    step is what a run planned for the new budget would have there (for a cosine that decayed to
    0 at the old end, it rises again), and one line says so.
    """
    step = scheduler.last_epoch
    rates = [
        base * schedule(step)
        for base, schedule in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)
    ]
    saved = [group["lr"] for group in scheduler.optimizer.param_groups]
    for group, rate in zip(scheduler.optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    if not math.isclose(rates[0], saved[0], rel_tol=1e-9, abs_tol=1e-12):
        log.info(
            "the schedule is planned over the new budget: lr at step %d goes from %.3g to %.3g",
            step, saved[0], rates[0],
        )  # fmt: skip


def wrap_for_training(
    model: torch.nn.Module, trainer: DictConfig, world: World, device: torch.device
) -> torch.nn.Module:
    """The module the steps run: SyncBatchNorm, DDP and torch.compile as configured. The bare
    model stays the one whose state is saved."""
    train_model = model
    if trainer.sync_bn and world.distributed:
        if device.type != "cuda":
            raise UsageError("trainer.sync_bn needs CUDA devices (SyncBatchNorm is GPU-only)")
        train_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if world.distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        train_model = DistributedDataParallel(train_model, device_ids=device_ids)
    if trainer.compile:
        train_model = torch.compile(train_model, mode=str(trainer.compile_mode))
    return train_model


def build_training(
    cfg: DictConfig, run_dir: Path, world: World | None = None, checkpoint: dict | None = None
) -> Training:
    """Every object of one run, from its config (and the checkpoint it resumes, if any): the
    process, data and model, loaders, optimizer and schedule, the resumed state, the logger and
    the loop, complete."""
    world = world or World()
    trainer = cfg.trainer
    device, precision, channels_last = prepare_process(trainer, int(cfg.seed), world)
    data = data_from_config(cfg)
    model, kwargs = build_network(cfg, data, device, channels_last)
    if trainer.init_from and checkpoint is None:  # a resumed run has its own weights
        init_from_checkpoint(model, kwargs, str(trainer.init_from))
    train_loader, val_loader, test_loader = build_loaders(cfg, data, device, world, channels_last)
    epochs, total_steps = plan_steps(trainer, len(train_loader))
    optimizer, scheduler = build_optimization(cfg, model, device, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16")
    state = LoopState()
    if checkpoint is not None:
        restore(
            checkpoint, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
            loader=train_loader, state=state, device=device,
        )  # fmt: skip
    state.steps_per_epoch = len(train_loader)
    description = describe_run(
        cfg, kwargs, model, data, str(device), precision, world, epochs, train_loader.batch_size
    )
    diagnostics = LayerDiagnostics(model)  # before SyncBatchNorm swaps modules (found by name)
    logger = None
    if world.is_main:  # only rank 0 writes; purge_step drops events a resumed run rewrites
        logger = TensorBoardLogger(
            run_dir,
            layout=diagnostics.layout,
            purge_step=state.step + 1 if checkpoint else None,
            title=f"{description.arch}-{description.depth}, seed {description.seed}, "
            f"{description.data}",
            residual=description.arch != "plain",
        )
    loop = TrainingLoop(
        model=model,
        train_model=wrap_for_training(model, trainer, world, device),
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        train_loader=train_loader,
        val_loader=val_loader,
        device=device,
        precision=precision,
        settings=loop_settings(trainer, epochs, total_steps, device),
        state=state,
        run_dir=run_dir,
        logger=logger,
        description=description,
        diagnostics=diagnostics,
        world=world,
    )
    _log_plan(description, data, total_steps, world)
    return Training(loop, model, test_loader, description)


def prepare_process(trainer: DictConfig, seed: int, world: World) -> tuple[torch.device, str, bool]:
    """Threads, seeds and kernels of this process; its device, precision and memory format."""
    if trainer.threads is not None:
        torch.set_num_threads(int(trainer.threads))
    seed_everything(seed, bool(trainer.deterministic))
    device = device_for(str(trainer.device), world)
    precision = resolve_precision(trainer.precision, device)
    return device, precision, use_channels_last(trainer.channels_last, device)


def loop_settings(
    trainer: DictConfig, epochs: int, total_steps: int, device: torch.device
) -> LoopSettings:
    return LoopSettings(
        epochs=epochs,
        total_steps=total_steps,
        log_every=int(trainer.log_every),
        dense_first_epoch=bool(trainer.dense_first_epoch),
        epoch_images=bool(trainer.figures),
        progress=str(trainer.progress),
        on_nan=str(trainer.on_nan),
        cuda_graphs=bool(trainer.compile)
        and str(trainer.compile_mode) == "reduce-overhead"
        and device.type == "cuda",
    )


def describe_run(
    cfg: DictConfig,
    kwargs: dict[str, Any],
    model: torch.nn.Module,
    data: DataSplits,
    device: str,
    precision: str,
    world: World,
    epochs: int,
    per_device_batch: int,
) -> RunDescription:
    """What a run is, for its checkpoints, metrics.json and HParams."""
    return RunDescription(
        arch=kwargs["arch"],
        depth=kwargs["depth"],
        data=data.name,
        init=kwargs["init"],
        norm=kwargs["norm"],
        residual_init=kwargs["residual_init"],
        params=count_parameters(model),
        device=device,
        precision=precision,
        world_size=world.world_size,
        per_device_batch=per_device_batch,
        optim=str(cfg.optim.name),
        lr=float(cfg.optim.lr),
        batch_size=int(cfg.data.batch_size),
        seed=int(cfg.seed),
        epochs=epochs,
        config=OmegaConf.to_container(cfg, resolve=True),
        model_kwargs=kwargs,
        classes=list(data.classes),
        mean=list(data.mean),
        std=list(data.std),
        input_shape=[data.in_channels, data.image_size, data.image_size],
    )


def _log_plan(description: RunDescription, data: DataSplits, total_steps: int, world: World):
    threads = torch.get_num_threads()
    log.info(
        "%s-%d on %s (%d train / %d val / %d test, %s), %s params, %d epochs = %d steps, "
        "device %s%s, %d CPU thread%s",
        description.arch,
        description.depth,
        data.name,
        len(data.train.labels),
        len(data.val.labels),
        len(data.test.labels),
        "x".join(map(str, description.input_shape)),
        f"{description.params:,}",
        description.epochs,
        total_steps,
        description.device,
        f" x {world.world_size} ranks" if world.distributed else "",
        threads,
        "s" if threads != 1 else "",
    )
