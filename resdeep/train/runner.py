"""Config -> objects, in exactly one place, then the loop, then the run directory's files."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from resdeep.checkpoint import read_checkpoint, save_checkpoint
from resdeep.device import resolve_device
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
from resdeep.train.distributed import World
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
    """One run, start to end: which run it is (new, or resumed with its own settings), its
    start in its directory, the fit, and its finish (test numbers, metrics, records)."""
    run = which_run(cfg, run_dir, world, start)
    if run.complete:  # continuing a sweep: this job is done
        log.info("%s is complete: nothing to train", run_dir)
        return read_metrics(run_dir)
    with started_run(run, run_dir, world, start) as training:
        status = fit(training, run, run_dir, world)
        return finish_run(training, status, run_dir, world)


@dataclass(frozen=True)
class WhichRun:
    """A run as resolved before anything is written: its config (a resumed run's own, with the
    changes it allows), the checkpoint it continues, and whether that run is already done."""

    cfg: DictConfig
    checkpoint: dict[str, Any] | None
    target: Path | None  # the checkpoint's path
    new_dir: bool  # the directory held no run before this start
    complete: bool = False


def which_run(cfg: DictConfig, run_dir: Path, world: World, start: RunStart) -> WhichRun:
    """New or resumed: a resumed run's settings come from its checkpoint, its budget is
    checked; a refusal leaves no directory that this start made."""
    new_dir = not (run_dir / "checkpoints" / "last.pt").exists()
    try:
        target = resume_target(cfg.trainer, run_dir, slurm_requeued())
        if target is None:
            return WhichRun(cfg, None, None, new_dir)
        checkpoint = read_checkpoint(target)
        if "optimizer" not in checkpoint:
            last = Path(target).parent / "last.pt"
            raise UsageError(
                f"{target} holds weights only (no optimizer state) and cannot be resumed"
                + (f"; resume from {last}" if last.is_file() else "")
            )
        resumed_run = run_dir_of(Path(target))
        cfg = resumed_config(checkpoint.get("config", {}), cfg, start.overrides, resumed_run)
        validate(cfg)
        complete = budget_check(checkpoint, cfg.trainer, resumed_run) == "complete"
        if complete and cfg.trainer.resume != "auto":
            raise UsageError(complete_message(checkpoint, resumed_run))
        return WhichRun(cfg, checkpoint, target, new_dir, complete)
    except BaseException:
        if world.is_main and new_dir:
            remove_empty_dirs(run_dir)  # the directory Hydra made for a start refused here
        raise


@contextlib.contextmanager
def started_run(run: WhichRun, run_dir: Path, world: World, start: RunStart) -> Iterator[Training]:
    """The run holding its directory, with its files written and its objects built, for the
    duration of the block. The claim comes first: a second run started into this directory
    stops there, leaving every file of the first as it was. A start that fails (bad depth,
    device, batch size, missing data) leaves the file system as it was."""
    resuming = run.checkpoint is not None or run.cfg.trainer.resume == "auto"
    with contextlib.ExitStack() as held:
        if world.is_main:
            held.enter_context(claim_run_dir(run_dir, resuming=resuming))
        try:
            if world.is_main:
                if resuming and run.checkpoint is None:
                    clear_dead_start(run_dir)  # a killed attempt without a checkpoint
                new = run.checkpoint is None or run.new_dir
                _write_startup_files(run_dir, run.cfg, start, new=new)
            training = build_training(run.cfg, run_dir, world, run.checkpoint)
        except BaseException:
            if world.is_main and run.new_dir:
                _detach_file_logs(run_dir)
                undo_failed_start(run_dir)
            raise
        try:
            yield training
        finally:
            # The run's log file is its own: a later run in this process must not write into it.
            _detach_file_logs(run_dir)


def fit(training: Training, run: WhichRun, run_dir: Path, world: World) -> str:
    """Train to the budget (or a stop request); an interrupted run leaves a resumable
    checkpoint and says how to resume. Returns the status."""
    loop = training.loop
    if run.checkpoint is not None:
        # Numbered like the stop message: the epoch in progress, and the step reached.
        log.info(
            "resuming from %s in epoch %d, at step %d",
            run.target, loop.state.epoch + 1, loop.state.step,
        )  # fmt: skip
    else:
        loop.save_initial_weights()
        if world.is_main:
            log.info("run dir: %s", run_dir)
    with loop.stop:
        status = loop.fit()
    if status == "interrupted":
        loop.save_interrupted()
        if world.is_main:
            loop.close()
        loop.stop.pass_on()  # under submitit this requeues the job, which resumes from last.pt
        raise Interrupted(
            f"stopped by {loop.stop.name} in epoch {loop.state.epoch + 1}, at step "
            f"{loop.state.step}; resume with: resdeep train trainer.resume={run_dir}"
        )
    return status


def finish_run(training: Training, status: str, run_dir: Path, world: World) -> dict[str, Any]:
    """The test numbers of the checkpoint chosen on validation (best.pt, the honest protocol),
    written to metrics.json, TensorBoard's HParams and both checkpoints; a diverged run ends
    with the line that says so. Returns the final metrics (empty on ranks but 0)."""
    loop, model = training.loop, training.model
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
        _record_test_numbers(training, final, extra, run_dir)
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


def _record_test_numbers(
    training: Training, final: dict[str, Any], extra: dict[str, Any], run_dir: Path
) -> None:
    """HParams beside the final numbers, and the test numbers inside both checkpoints too, so
    tools need nothing but the file."""
    loop = training.loop
    loop.logger.hyperparameters(
        training.description.hparams(),
        {
            "test_acc": extra["test_acc"],
            "test_loss": extra["test_loss"],
            "best_val_acc": final["best_val_acc"] or 0.0,
            "train_loss": final["train_loss"] or float("nan"),
        },
        loop.state.step,
    )
    for name in ("best.pt", "last.pt"):
        path = run_dir / "checkpoints" / name
        if path.exists():
            payload = read_checkpoint(path)
            payload["metrics"] = {**payload.get("metrics", {}), **extra}
            save_checkpoint(path, payload)
