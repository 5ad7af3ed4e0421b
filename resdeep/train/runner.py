"""Config -> objects, in exactly one place, then the loop, then the run directory's files."""

from __future__ import annotations

import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel

from resdeep.checkpoint import read_checkpoint, resolve_checkpoint_path, save_checkpoint
from resdeep.data import DeviceLoader
from resdeep.errors import ResdeepError, UsageError
from resdeep.experiment import data_from_config, model_kwargs_from_config
from resdeep.models import ModelConfigError, build_model, count_parameters, weight_layers
from resdeep.runs import claim_run_dir, refuse_existing_run, slurm_requeued
from resdeep.train import distributed
from resdeep.train.device import resolve_device, resolve_precision
from resdeep.train.distributed import World
from resdeep.train.interrupts import StopRequest
from resdeep.train.loop import LoopSettings, LoopState, TrainingLoop, evaluate
from resdeep.train.optim import build_optimizer, lr_multiplier
from resdeep.train.tensorboard import TensorBoardLogger
from resdeep.train.validation import validate

log = logging.getLogger("resdeep.train")


class Interrupted(ResdeepError):
    exit_code = 130


class Diverged(ResdeepError):
    """The loss became NaN/inf: a result of the configuration, not a crash."""


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


def per_device_batch(cfg: DictConfig, world: World) -> int:
    """`data.batch_size` is the global batch (split over devices) unless trainer.global_batch=false.

    The learning rate is never rescaled behind the user's back: change optim.lr explicitly.
    """
    batch_size = int(cfg.data.batch_size)
    if batch_size < 1:
        raise UsageError(f"data.batch_size must be at least 1, got {batch_size}")
    if not bool(cfg.trainer.get("global_batch", True)) or world.world_size == 1:
        return batch_size
    if batch_size % world.world_size:
        raise UsageError(
            f"data.batch_size={batch_size} does not split evenly over {world.world_size} devices"
        )
    return batch_size // world.world_size


def resume_target(trainer: DictConfig, run_dir: Path) -> Path | None:
    """The checkpoint to continue from, if any.

    `trainer.resume=auto` (and a SLURM requeue of a job that already checkpointed) continues
    this run dir when it holds a checkpoint; otherwise a run dir is never overwritten.
    """
    resume = trainer.get("resume")
    existing = run_dir / "checkpoints" / "last.pt"
    if resume == "auto" or (resume is None and slurm_requeued()):
        return existing if existing.exists() else None
    if resume:
        return resolve_checkpoint_path(resume, "last.pt")
    refuse_existing_run(run_dir, resuming=False)
    return None


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one configuration into `run_dir`; returns the final metrics."""
    validate(cfg)
    devices = int(cfg.trainer.get("devices", 1))
    if devices < 1:
        raise UsageError(f"trainer.devices must be at least 1, got {devices}")
    world = distributed.launched_world()
    if world is None and devices > 1:
        device_type = resolve_device(str(cfg.trainer.device)).type
        if device_type == "cuda" and torch.cuda.device_count() < devices:
            raise UsageError(
                f"trainer.devices={devices} but only {torch.cuda.device_count()} GPU(s) are present"
            )
        # Fail fast on what the workers would refuse, before paying for their start-up.
        per_device_batch(cfg, World(world_size=devices))
        if cfg.trainer.get("sync_bn", False) and device_type != "cuda":
            raise UsageError("trainer.sync_bn needs CUDA devices (SyncBatchNorm is GPU-only)")
        container = OmegaConf.to_container(cfg, resolve=True)
        distributed.spawn(_train_in_worker, (container, str(run_dir)), devices, device_type)
        from resdeep.runs import read_metrics

        return read_metrics(run_dir)
    world = world or World()
    if not world.distributed:
        return train(cfg, run_dir, world)
    distributed.join_process_group(world, resolve_device(str(cfg.trainer.device)).type)
    finished = False
    try:
        metrics = train(cfg, run_dir, world)
        finished = True
        return metrics
    finally:
        distributed.leave_process_group(finished)


def _train_in_worker(container: dict, run_dir: str, world: World) -> None:
    from resdeep.console import route_logging_through_rich

    if world.is_main:
        route_logging_through_rich()
        handler = logging.FileHandler(Path(run_dir) / "train.log")
        handler.setFormatter(
            logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s")
        )
        logging.getLogger().addHandler(handler)
    train(OmegaConf.create(container), Path(run_dir), world)


def _device_for(name: str, world: World) -> torch.device:
    device = resolve_device(name)
    if device.type == "cuda" and world.distributed:
        return torch.device("cuda", world.local_rank)
    return device


@dataclass
class Training:
    """Everything built from a config, ready to run (and to benchmark)."""

    loop: TrainingLoop
    model: torch.nn.Module
    test_loader: DeviceLoader
    hparams: dict[str, Any]


def build_training(
    cfg: DictConfig, run_dir: Path, world: World | None = None, checkpoint: dict | None = None
) -> Training:
    world = world or World()
    trainer = cfg.trainer
    seed_everything(int(cfg.seed), bool(trainer.get("deterministic", False)))
    device = _device_for(str(trainer.device), world)
    precision = resolve_precision(trainer.precision, device)
    data = data_from_config(cfg)
    kwargs = model_kwargs_from_config(cfg, data)
    try:
        model = build_model(**kwargs)
    except ModelConfigError as error:
        raise UsageError(str(error)) from error
    channels_last = _use_channels_last(trainer.get("channels_last", "auto"), device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)

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
        augment=bool(cfg.data.get("augment", True)),
        pad_crop=data.pad_crop,
        flip=data.flip,
        drop_last=True,
        generator=generator,
        channels_last=channels_last,
        rank=world.rank,
        world_size=world.world_size,
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
        state.status = "running"

    train_model: torch.nn.Module = model
    if trainer.get("sync_bn", False) and world.distributed:
        if device.type != "cuda":
            raise UsageError("trainer.sync_bn needs CUDA devices (SyncBatchNorm is GPU-only)")
        train_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if world.distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        train_model = DistributedDataParallel(train_model, device_ids=device_ids)
    if trainer.get("compile", False):
        train_model = torch.compile(train_model)

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
        "world_size": world.world_size,
        "per_device_batch": batch_size,
    }
    metadata = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "model_kwargs": kwargs,
        "classes": list(data.classes),
        "normalization": {"mean": list(data.mean), "std": list(data.std)},
        "input_shape": [data.in_channels, data.image_size, data.image_size],
    }
    logger = None
    if world.is_main:
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
            on_nan=str(trainer.get("on_nan", "stop")),
        ),
        state=state,
        run_dir=run_dir,
        logger=logger,
        checkpoint_metadata=metadata,
        metrics_extra=summary,
        world=world,
    )
    log.info(
        "%s-%d on %s (%d train / %d val / %d test, %s), %s params, %d epochs = %d steps, "
        "device %s%s, %d CPU thread%s",
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
        f" x {world.world_size} ranks" if world.distributed else "",
        torch.get_num_threads(),
        "s" if torch.get_num_threads() != 1 else "",
    )
    hparams = {
        **summary,
        "optim": optim_cfg.name,
        "lr": float(optim_cfg.lr),
        "batch_size": int(cfg.data.batch_size),
        "seed": int(cfg.seed),
        "epochs": epochs,
    }
    return Training(loop, model, test_loader, hparams)


def train(cfg: DictConfig, run_dir: Path, world: World) -> dict[str, Any]:
    target = resume_target(cfg.trainer, run_dir)
    checkpoint = read_checkpoint(target) if target is not None else None
    if world.is_main:
        # Claimed before the run writes anything of its own: a second run started into this
        # directory stops here, leaving no config or events of its own behind.
        claim_run_dir(
            run_dir, resuming=checkpoint is not None or cfg.trainer.get("resume") == "auto"
        )
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    training = build_training(cfg, run_dir, world, checkpoint)
    loop, model = training.loop, training.model
    if checkpoint is not None:
        log.info("resuming from %s at epoch %d, step %d", target, loop.state.epoch, loop.state.step)
    with StopRequest() as stop:
        loop.stop = stop
        status = loop.fit()
    if status == "interrupted":
        loop.save_interrupted()
        if world.is_main:
            loop.close()
        stop.pass_on()  # under submitit this requeues the job, which resumes from last.pt
        raise Interrupted(
            f"stopped by {stop.name} at epoch {loop.state.epoch + 1}, step {loop.state.step}; "
            f"resume with: resdeep train trainer.resume={run_dir}"
        )

    # Report test numbers of the model selected on validation (best.pt), the honest protocol.
    if loop.best_state is not None:
        model.load_state_dict(loop.best_state)
    elif (run_dir / "checkpoints" / "best.pt").exists():
        model.load_state_dict(read_checkpoint(run_dir / "checkpoints" / "best.pt")["model"])
    test_loss, test_acc = evaluate(model, training.test_loader, loop.autocast)
    extra = {"test_loss": test_loss, "test_acc": test_acc}
    if world.distributed:
        extra["rank_weight_checksums"] = loop.rank_weight_checksums()
    if not world.is_main:
        return {}
    final = loop.write_metrics(extra)
    if status == "completed":
        loop.logger.hyperparameters(
            training.hparams,
            {
                "test_acc": test_acc,
                "test_loss": test_loss,
                "best_val_acc": final["best_val_acc"] or 0.0,
                "train_loss": final["train_loss"] or float("nan"),
            },
        )
        # Keep the test numbers with the checkpoints too, so tools need nothing but the file.
        for name in ("best.pt", "last.pt"):
            path = run_dir / "checkpoints" / name
            if path.exists():
                payload = read_checkpoint(path)
                payload["metrics"] = {**payload.get("metrics", {}), **extra}
                save_checkpoint(path, payload)
    loop.close()
    if status == "diverged":
        kept = (
            f"the last good checkpoint is kept in {run_dir / 'checkpoints'}"
            if (run_dir / "checkpoints" / "last.pt").exists()
            else "no epoch completed, so no checkpoint was written"
        )
        raise Diverged(
            f"training diverged (non-finite loss) at step {loop.state.step}; {kept}; "
            "try a lower optim.lr or trainer.on_nan=skip"
        )
    return final


def _use_channels_last(setting: str | bool, device: torch.device) -> bool:
    """channels_last memory format: on where it was measured to be faster (`auto`).

    `resdeep bench` measured 1.28x for fp32 ResNet-20 training with oneDNN on 2 AVX-512 cores
    (channels_last_speedup), and cuDNN prefers it on GPUs; on CPUs without AVX-512 the
    contiguous layout stays, as PyTorch's default.
    """
    if setting == "auto":
        if device.type == "cuda":
            return True
        return "AVX512" in torch.backends.cpu.get_cpu_capability()
    return bool(setting)


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
