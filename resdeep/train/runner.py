"""Config -> objects, in exactly one place, then the loop, then the run directory's files."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from resdeep.checkpoint import read_checkpoint, save_checkpoint
from resdeep.errors import ResdeepError, UsageError
from resdeep.runs import (
    claim_run_dir,
    clear_dead_start,
    read_metrics,
    remove_empty_dirs,
    run_dir_of,
    slurm_requeued,
    undo_failed_start,
)
from resdeep.train import distributed
from resdeep.train.build import Training, build_training, per_device_batch
from resdeep.train.device import resolve_device
from resdeep.train.distributed import World
from resdeep.train.interrupts import StopRequest
from resdeep.train.loop import evaluate
from resdeep.train.resume import budget_check, complete_message, resume_target, resumed_config
from resdeep.train.validation import validate

log = logging.getLogger("resdeep.train")


class Interrupted(ResdeepError):
    exit_code = 130


class Diverged(ResdeepError):
    """The loss became NaN/inf: a result of the configuration, not a crash."""


def run(cfg: DictConfig, run_dir: Path, start: RunStart | None = None) -> dict[str, Any]:
    """Train one configuration into `run_dir`; returns the final metrics. `start`: the command
    line's overrides and Hydra's record of it (a resumed run checks the former against its own
    settings; a new run writes the latter once it holds its directory)."""
    start = start or RunStart()
    validate(cfg)
    devices = int(cfg.trainer.devices)
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
        distributed.spawn(_train_in_worker, (container, str(run_dir), start), devices, device_type)
        from resdeep.runs import read_metrics

        return read_metrics(run_dir)
    world = world or World()
    if not world.distributed:
        return train(cfg, run_dir, world, start)
    distributed.join_process_group(world, resolve_device(str(cfg.trainer.device)).type)
    finished = False
    try:
        metrics = train(cfg, run_dir, world, start)
        finished = True
        return metrics
    finally:
        distributed.leave_process_group(finished)


def _train_in_worker(container: dict, run_dir: str, start: RunStart, world: World) -> None:
    from resdeep.console import route_logging_through_rich

    if world.is_main:
        route_logging_through_rich()
    train(OmegaConf.create(container), Path(run_dir), world, start)


@dataclass(frozen=True)
class RunStart:
    """How a run was started: the command line's overrides, and Hydra's record of the start
    (`.hydra/<name>` -> its text), written only once the run holds its directory."""

    overrides: tuple[str, ...] = ()
    record: dict[str, str] = field(default_factory=dict)


def _write_startup_files(run_dir: Path, cfg: DictConfig, start: RunStart, new: bool) -> None:
    """What a run writes once it holds its directory: Hydra's record (a new run only: a resumed
    one keeps how it was started), the config it trains with, and its log file."""
    if new:
        for name, text in start.record.items():
            (run_dir / ".hydra").mkdir(exist_ok=True)
            (run_dir / ".hydra" / name).write_text(text)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s"))
    logging.getLogger().addHandler(handler)


def _detach_file_logs(run_dir: Path) -> None:
    """Close the log files kept in `run_dir` (train.log) so they can go."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if (
            isinstance(handler, logging.FileHandler)
            and Path(handler.baseFilename).parent == run_dir.resolve()
        ):
            root.removeHandler(handler)
            handler.close()


def train(cfg: DictConfig, run_dir: Path, world: World, start: RunStart) -> dict[str, Any]:
    # A directory that held no run before this start is taken back whole if the start fails.
    new_dir = not (run_dir / "checkpoints" / "last.pt").exists()
    try:
        target = resume_target(cfg.trainer, run_dir, slurm_requeued())
        checkpoint = read_checkpoint(target) if target is not None else None
        if checkpoint is not None:
            resumed_run = run_dir_of(Path(target))
            cfg = resumed_config(checkpoint.get("config", {}), cfg, start.overrides, resumed_run)
            validate(cfg)
            if budget_check(checkpoint, cfg.trainer, resumed_run) == "complete":
                if cfg.trainer.resume == "auto":  # continuing a sweep: this job is done
                    log.info("%s is complete: nothing to train", run_dir)
                    return read_metrics(run_dir)
                raise UsageError(complete_message(checkpoint, resumed_run))
    except BaseException:
        if world.is_main and new_dir:
            remove_empty_dirs(run_dir)  # the directory Hydra made for a start refused here
        raise
    resuming = checkpoint is not None or cfg.trainer.resume == "auto"
    with contextlib.ExitStack() as held:
        if world.is_main:
            # Claimed before the run writes anything of its own: a second run started into
            # this directory stops here, leaving every file of the first as it was.
            held.enter_context(claim_run_dir(run_dir, resuming=resuming))
        try:
            if world.is_main:
                if resuming and checkpoint is None:
                    clear_dead_start(run_dir)  # a killed attempt without a checkpoint
                _write_startup_files(run_dir, cfg, start, new=checkpoint is None or new_dir)
            training = build_training(cfg, run_dir, world, checkpoint)
        except BaseException:
            if world.is_main and new_dir:
                # A start that fails (bad depth, device, batch size, missing data) leaves the
                # file system as it was: no run directory, no claim.
                _detach_file_logs(run_dir)
                undo_failed_start(run_dir)
            raise
        try:
            return _train_and_finish(training, cfg, run_dir, world, checkpoint, target)
        finally:
            # The run's log file is its own: a later run in this process must not write into it.
            _detach_file_logs(run_dir)


def _train_and_finish(
    training: Training,
    cfg: DictConfig,
    run_dir: Path,
    world: World,
    checkpoint: dict[str, Any] | None,
    target: Path | None,
) -> dict[str, Any]:
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
