"""Config -> objects, in exactly one place, then the loop, then the run directory's files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from resdeep.checkpoint import read_checkpoint, resolve_checkpoint_path, save_checkpoint
from resdeep.errors import ResdeepError, UsageError
from resdeep.runs import (
    claim_run_dir,
    refuse_existing_run,
    run_dir_of,
    slurm_requeued,
    undo_failed_start,
)
from resdeep.train import distributed
from resdeep.train.build import build_training, per_device_batch
from resdeep.train.device import resolve_device
from resdeep.train.distributed import World
from resdeep.train.interrupts import StopRequest
from resdeep.train.loop import evaluate
from resdeep.train.validation import validate

log = logging.getLogger("resdeep.train")


class Interrupted(ResdeepError):
    exit_code = 130


class Diverged(ResdeepError):
    """The loss became NaN/inf: a result of the configuration, not a crash."""


def resume_target(trainer: DictConfig, run_dir: Path) -> Path | None:
    """The checkpoint to continue from, if any.

    `trainer.resume=auto` (and a SLURM requeue of a job that already checkpointed) continues
    this run dir when it holds a checkpoint; otherwise a run dir is never overwritten.
    """
    resume = trainer.resume
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
    devices = int(cfg.trainer.devices)
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
        if cfg.trainer.sync_bn and device_type != "cuda":
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


def refuse_finished(checkpoint: dict[str, Any], trainer: DictConfig, run_dir: Path) -> None:
    # run_dir: the finished run's own directory, the one to name in the advice
    """Resuming a run that already has its budget is a mistake worth one line: say so, and how
    to extend it, before anything is written."""
    state = checkpoint.get("loop_state", {})
    epoch, step = int(state.get("epoch", 0)), int(state.get("step", 0))
    done_epochs = trainer.epochs is not None and epoch >= int(trainer.epochs)
    done_steps = trainer.max_steps is not None and step >= int(trainer.max_steps)
    if state.get("status") != "interrupted" and (done_epochs or done_steps):
        raise UsageError(
            f"{run_dir} is complete ({epoch} epochs, {step} steps); to train on, give a larger "
            f"budget: resdeep train trainer.resume={run_dir} trainer.epochs={epoch * 2 or 1}"
        )


def _detach_file_logs(run_dir: Path) -> None:
    """Close the log files kept in `run_dir` (Hydra's train.log) so they can go."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if (
            isinstance(handler, logging.FileHandler)
            and Path(handler.baseFilename).parent == run_dir.resolve()
        ):
            root.removeHandler(handler)
            handler.close()


def train(cfg: DictConfig, run_dir: Path, world: World) -> dict[str, Any]:
    target = resume_target(cfg.trainer, run_dir)
    checkpoint = read_checkpoint(target) if target is not None else None
    if checkpoint is not None:
        refuse_finished(checkpoint, cfg.trainer, run_dir_of(Path(target)))
    if world.is_main:
        # Claimed before the run writes anything of its own: a second run started into this
        # directory stops here, leaving no config or events of its own behind.
        claim_run_dir(run_dir, resuming=checkpoint is not None or cfg.trainer.resume == "auto")
    try:
        if world.is_main:
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        training = build_training(cfg, run_dir, world, checkpoint)
    except BaseException:
        if world.is_main and checkpoint is None:
            # A start that fails (bad depth, device, batch size, missing data) leaves the file
            # system as it was: no run directory, no claim.
            _detach_file_logs(run_dir)
            undo_failed_start(run_dir)
        raise
    loop, model = training.loop, training.model
    if checkpoint is not None:
        # Numbered like the stop message: the epoch in progress, and the step reached.
        log.info(
            "resuming from %s in epoch %d, at step %d",
            target,
            loop.state.epoch + 1,
            loop.state.step,
        )
    elif world.is_main:
        log.info("run dir: %s", run_dir)
    with StopRequest() as stop:
        loop.stop = stop
        status = loop.fit()
    if status == "interrupted":
        loop.save_interrupted()
        if world.is_main:
            loop.close()
        stop.pass_on()  # under submitit this requeues the job, which resumes from last.pt
        raise Interrupted(
            f"stopped by {stop.name} in epoch {loop.state.epoch + 1}, at step {loop.state.step}; "
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
            training.description.hparams(),
            {
                "test_acc": test_acc,
                "test_loss": test_loss,
                "best_val_acc": final["best_val_acc"] or 0.0,
                "train_loss": final["train_loss"] or float("nan"),
            },
            loop.state.step,
        )
        # Keep the test numbers with the checkpoints too, so tools need nothing but the file.
        for name in ("best.pt", "last.pt"):
            path = run_dir / "checkpoints" / name
            if path.exists():
                payload = read_checkpoint(path)
                payload["metrics"] = {**payload.get("metrics", {}), **extra}
                save_checkpoint(path, payload)
    loop.close()
    if status == "completed":
        log.info(
            "test acc %.4f (best.pt: epoch %d of %d), best val acc %.4f, %.0f s; run dir %s",
            test_acc, loop.state.best_epoch, loop.state.epoch, loop.state.best_val_acc,
            loop.state.wall_time_s, run_dir,
        )  # fmt: skip
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
