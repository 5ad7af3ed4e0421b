"""The training loop: steps, evaluation, logging points and checkpoints.

Loss and accuracy accumulate on the device and are read back only at log points and epoch
ends, so a step never waits for the host. At a log point the step also measures the net
(resdeep.train.diagnostics).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resdeep.checkpoint import INITIAL_CHECKPOINT, save_checkpoint
from resdeep.io import save_json_atomic
from resdeep.train.description import RunDescription
from resdeep.train.diagnostics import LayerDiagnostics
from resdeep.train.distributed import World
from resdeep.train.interrupts import StopRequest
from resdeep.train.progress import TrainingProgress
from resdeep.train.tensorboard import TensorBoardLogger

log = logging.getLogger("resdeep.train")


@dataclass
class LoopSettings:
    epochs: int
    total_steps: int
    log_every: int
    dense_first_epoch: bool = False
    progress: str = "auto"
    on_nan: str = "stop"  # stop the run, or skip the step (costs one host sync per step)
    cuda_graphs: bool = False  # the model replays CUDA graphs (torch.compile reduce-overhead)
    epoch_images: bool = True  # TensorBoard's figures at an epoch's end (the bench times none)


@dataclass
class LoopState:
    """Everything beyond module/optimizer state that a resumed run needs to continue exactly."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimizer steps
    best_val_acc: float = -1.0
    best_epoch: int = 0
    wall_time_s: float = 0.0
    skipped_steps: int = 0
    steps_per_epoch: int = 0  # of the run's data and batch: how a new budget becomes steps
    history: list[dict[str, float]] = field(default_factory=list)
    status: str = "running"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def autocast_context(device: torch.device, precision: str) -> Callable[[], Any]:
    """A factory of autocast contexts (bf16 / fp16) or no-ops for full precision."""
    if precision == "32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


@torch.inference_mode()
def evaluate(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], autocast: Callable
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over `batches`, with one host sync at the end."""
    was_training = model.training
    model.eval()
    totals: torch.Tensor | None = None
    count = 0
    for images, labels in batches:
        with autocast():
            logits = model(images)
        batch = torch.stack(
            [
                F.cross_entropy(logits.float(), labels, reduction="sum"),
                (logits.argmax(dim=1) == labels).sum().float(),
            ]
        )
        totals = batch if totals is None else totals + batch
        count += labels.numel()  # known on the host: no tensor per batch for it
    model.train(was_training)
    if totals is None:
        return float("nan"), float("nan")
    loss_sum, correct = totals.tolist()
    return loss_sum / count, correct / count


class TrainingLoop:
    """One run's training: epochs of steps, evaluation at each epoch end, checkpoints and
    metrics.json after every epoch, TensorBoard scalars and the net's diagnostics at log points.

    A step is forward, loss, backward, optimizer and schedule step; its loss and accuracy are
    added up on the device. A log step runs the forward and backward with the diagnostics'
    hooks on, and around the optimizer step measures every layer's gradient, weight and update
    norms. The host waits for the device only at log points (one copy of the window's loss,
    accuracy and every diagnostic together), at epoch ends and, with on_nan=skip, once a step.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        train_model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        train_loader: Any,
        val_loader: Any,
        device: torch.device,
        precision: str,
        settings: LoopSettings,
        state: LoopState,
        run_dir: Path,
        logger: TensorBoardLogger | None,
        description: RunDescription,
        diagnostics: LayerDiagnostics,
        world: World | None = None,
    ) -> None:
        self.model = model  # the module whose state is saved
        self.train_model = train_model  # the same module, possibly compiled or DDP-wrapped
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.device = device
        self.autocast = autocast_context(device, precision)
        self.settings = settings
        self.state = state
        self.run_dir = run_dir
        self.logger = logger  # None on every rank but the main one: only rank 0 writes
        self.world = world or World()
        self.stop = StopRequest()
        self.description = description
        self.diagnostics = diagnostics
        self.best_state: dict[str, torch.Tensor] | None = None

    # ---- checkpoints and metrics -------------------------------------------------------
    def rng_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "loader": self.train_loader.state_dict(),
        }
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def checkpoint_payload(self) -> dict[str, Any]:
        return {
            **self.description.checkpoint_fields(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": self.rng_state(),
            "epoch": self.state.epoch,
            "step": self.state.step,
            "loop_state": self.state.as_dict(),
            "metrics": self.latest_metrics(),
        }

    def latest_metrics(self) -> dict[str, Any]:
        last = self.state.history[-1] if self.state.history else {}
        return {
            **self.description.summary(),
            "train_loss": last.get("train_loss"),
            "train_acc": last.get("train_acc"),
            "val_loss": last.get("val_loss"),
            "val_acc": last.get("val_acc"),
            "best_val_acc": self.state.best_val_acc if self.state.best_val_acc >= 0 else None,
            "best_epoch": self.state.best_epoch,
            "epochs": self.state.epoch,
            "steps": self.state.step,
            "wall_time_s": round(self.state.wall_time_s, 3),
            "skipped_steps": self.state.skipped_steps,
            "status": self.state.status,
            "history": self.state.history,
        }

    def write_metrics(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        metrics = {**self.latest_metrics(), **(extra or {})}
        if self.world.is_main:
            save_json_atomic(metrics, self.run_dir / "metrics.json")
        return metrics

    def save_checkpoint(self, *names: str) -> None:
        if self.world.is_main:
            payload = self.checkpoint_payload()
            for name in names:
                save_checkpoint(self.run_dir / "checkpoints" / name, payload)

    def save_initial_weights(self) -> None:
        """`init.pt`: the weights before the first step (no optimizer state: it resumes
        nothing), for the tools that compare a run's start with its end (landscape, signal)."""
        if self.world.is_main:
            payload = {
                **self.description.checkpoint_fields(),
                "model": self.model.state_dict(),
                "epoch": 0,
                "step": 0,
                "metrics": {},
            }
            save_checkpoint(self.run_dir / "checkpoints" / INITIAL_CHECKPOINT, payload)

    def save_interrupted(self) -> None:
        """A mid-epoch `last.pt`: the loader's position is in it, so a resume replays nothing."""
        self.save_checkpoint("last.pt")
        self.write_metrics()

    def rank_weight_checksums(self) -> list[float]:
        """Each rank's sum of all weights: equal values show the replicas stayed in sync."""
        local = torch.stack([p.detach().double().sum() for p in self.model.parameters()]).sum()
        gathered = [torch.zeros_like(local) for _ in range(self.world.world_size)]
        torch.distributed.all_gather(gathered, local)
        return [float(v) for v in gathered]

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()

    def _log_scalars(self, values: dict[str, float], step: int) -> None:
        if self.logger is not None:
            self.logger.scalars(values, step)

    # ---- the loop ----------------------------------------------------------------------
    def should_log(self, epoch: int, step: int, settings: LoopSettings | None = None) -> bool:
        """Is `step` (counted from 1) a log point?"""
        settings = settings or self.settings
        if settings.dense_first_epoch and epoch == 1:
            return True
        # Step 1 always: the progress bar has numbers at once, and step 1's measurements are the
        # net as initialised (step 0), where deep plain nets' backward signal explodes.
        return step == 1 or step % settings.log_every == 0

    @property
    def eager_model(self) -> nn.Module:
        """The module log steps run: the training module without torch.compile, so the
        diagnostics' hooks see every activation and no compiled graph is rebuilt around them
        (DDP, if any, stays: the gradients are still averaged over ranks)."""
        return getattr(self.train_model, "_orig_mod", self.train_model)

    def _loss_scale(self) -> torch.Tensor | None:
        """fp16's loss scale as a device tensor (GradScaler.get_scale() would copy it to the
        host and wait), or None when the loss is not scaled."""
        return self.scaler._get_scale_async() if self.scaler.is_enabled() else None

    def fit(self) -> str:
        """Train until the step budget is spent; returns the final status."""
        settings, state = self.settings, self.state
        progress_mode = settings.progress if self.world.is_main else "off"
        with TrainingProgress(settings.total_steps, state.step, progress_mode) as progress:
            # The step budget decides: an epoch cut short by an earlier budget is finished by
            # the first pass after a resume, so epochs can outnumber settings.epochs.
            while state.step < settings.total_steps:
                epoch = state.epoch + 1
                started = time.perf_counter()
                train_loss, train_acc = self.train_epoch(epoch, progress)
                if state.status == "interrupted":
                    state.wall_time_s += time.perf_counter() - started
                    break
                if not math.isfinite(train_loss):
                    state.status = "diverged"
                    log.error(
                        "loss became %s in epoch %d; stopping (last good checkpoint kept)",
                        train_loss,
                        epoch,
                    )
                    break
                # The bare module on every rank: same weights, so the same numbers, and no
                # collective that only some ranks would enter.
                val_loss, val_acc = evaluate(self.model, self.val_loader, self.autocast)
                state.wall_time_s += time.perf_counter() - started
                state.epoch = epoch
                state.history.append(
                    {
                        "epoch": epoch,
                        "step": state.step,
                        "train_loss": train_loss,
                        "train_acc": train_acc,
                        "val_loss": val_loss,
                        "val_acc": val_acc,
                        "lr": self.current_lr(),
                    }
                )
                self._log_scalars(
                    {"val/loss": val_loss, "val/acc": val_acc, "epoch": epoch}, state.step
                )
                improved = val_acc > state.best_val_acc
                if improved:
                    state.best_val_acc, state.best_epoch = val_acc, epoch
                    self.best_state = {
                        k: v.detach().clone() for k, v in self.model.state_dict().items()
                    }
                self.save_checkpoint("last.pt", *(["best.pt"] if improved else []))
                self.write_metrics()
                of = f"/{settings.epochs}" if epoch <= settings.epochs else ""
                progress.epoch_done(
                    f"epoch {epoch}{of}  step {state.step}  train loss {train_loss:.4f} "
                    f"acc {train_acc:.3f}  val loss {val_loss:.4f} acc {val_acc:.3f}"
                    + ("  (best)" if improved else "")
                )
        if state.status == "running":
            state.status = "completed"
        return state.status

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def train_epoch(
        self, epoch: int, progress: TrainingProgress, settings: LoopSettings | None = None
    ) -> tuple[float, float]:
        """One pass over this rank's shard (or up to the step budget): (mean loss, accuracy)
        of the training batches, summed over ranks. Stops early when asked to (signal) or
        when a logged loss is non-finite. `settings`: other than the run's own (a benchmark's
        window of steps with its own log interval)."""
        settings = settings or self.settings
        state = self.state
        self.train_model.train()
        epoch_totals, window = RunningTotals(self.device), RunningTotals(self.device)
        logged = False  # a log point this epoch: the epoch ends with its pictures
        for images, labels in self.train_loader:
            log_now = self.should_log(epoch, state.step + 1, settings)
            stepped = self._step(images, labels, log_now, settings)
            if stepped is None:  # a non-finite loss, skipped (trainer.on_nan=skip)
                continue
            logits, loss, measured = stepped
            correct = (logits.detach().argmax(dim=1) == labels).sum()
            batch_loss = loss.detach().float() * labels.numel()
            for totals in (epoch_totals, window):
                totals.add(batch_loss, correct, labels.numel())
            progress.advance(epoch)
            # One process checks its flag every step for free; ranks agree at log points only.
            if (not self.world.distributed and self.stop.requested) or (
                log_now and self.world.any(self.stop.requested, self.device)
            ):
                state.status = "interrupted"
                break
            if log_now:
                logged = True
                if not math.isfinite(self._log_point(window, measured, epoch, progress)):
                    break
                window = RunningTotals(self.device)
            # Checked after the step, not before the next batch: the loader's position must not
            # move past a batch this run never trained, or a resumed run would skip it.
            if state.step >= settings.total_steps:
                break
        loss_sum, correct_sum, seen = self.world.all_reduce_sum(epoch_totals.stacked()).tolist()
        if logged and self.logger is not None and settings.epoch_images:
            final = (
                epoch >= settings.epochs
                or state.step >= settings.total_steps
                or state.status == "interrupted"
                or not math.isfinite(loss_sum)
            )
            self.logger.epoch_images(state.step, epoch, heatmaps=heatmaps_due(epoch, final))
        if seen == 0:
            return float("nan"), float("nan")
        return loss_sum / seen, correct_sum / seen

    def _step(
        self, images: torch.Tensor, labels: torch.Tensor, log_now: bool, settings: LoopSettings
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, float] | None] | None:
        """Forward, loss, backward, optimizer and schedule step: (logits, loss, and at a log
        point (every diagnostic on the device, the rate the step used)), or None for a step
        skipped for its non-finite loss."""
        # Gradients go before the forward pass: with CUDA graphs, the last step's gradients
        # live in memory the next replay reuses.
        self.optimizer.zero_grad(set_to_none=True)
        if settings.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with self.diagnostics.recording() if log_now else contextlib.nullcontext():
            with self.autocast():
                logits = (self.eager_model if log_now else self.train_model)(images)
                loss = F.cross_entropy(logits, labels)
            if settings.on_nan == "skip" and not bool(torch.isfinite(loss)):
                self.state.skipped_steps += 1
                log.warning("non-finite loss at step %d: step skipped", self.state.step + 1)
                return None
            self.scaler.scale(loss).backward()
        self.state.step += 1
        if log_now:
            self._measure_before_step()
            step_lr = self.current_lr()  # the rate this step uses, before the schedule moves
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return logits, loss, (self.diagnostics.values(), step_lr) if log_now else None

    def _log_point(
        self,
        window: RunningTotals,
        measured: tuple[torch.Tensor, float],
        epoch: int,
        progress: TrainingProgress,
    ) -> float:
        """The one host sync of a log point (the window's loss and accuracy, summed over ranks,
        and every diagnostic together), then its scalars, diagnostics and progress line.
        Returns the window's loss sum (non-finite: the run is diverging)."""
        values, step_lr = measured
        numbers = torch.cat([self.world.all_reduce_sum(window.stacked()), values]).tolist()
        loss_sum, correct, seen = numbers[:3]
        point = self.diagnostics.layout.split(numbers[3:])
        speed = seen / window.seconds() if window.seconds() > 0 else 0.0
        step = self.state.step
        self._log_scalars(
            {
                "train/loss": loss_sum / seen,
                "train/acc": correct / seen,
                "lr": step_lr,
                "throughput/img_per_s": speed,
            },
            step,
        )
        if self.logger is not None:
            if step == 1:
                # Step 1 measured the net as initialised (its gradient, weights and signals
                # come before its update): that is step 0, the state before any update, where
                # deep plain nets' backward signal explodes.
                self.logger.diagnostics(point.before_update(), 0)
            self.logger.diagnostics(point, step)
        progress.show(epoch=epoch, loss=loss_sum / seen, acc=correct / seen, images_per_s=speed)
        return loss_sum

    def _measure_before_step(self) -> None:
        """A log step, between backward and the optimizer: the backward signal unscaled while
        the loss scale is the one backward used, the true (unscaled) gradients' norms, and the
        weights the optimizer is about to change."""
        self.diagnostics.end_backward(self._loss_scale())
        self.scaler.unscale_(self.optimizer)
        self.diagnostics.grad_norms()
        self.diagnostics.before_step()


class RunningTotals:
    """Loss and correct predictions added up on the device, images counted on the host (known
    there without a copy), since the window or epoch began: read back in one copy."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device)
        self.seen = 0
        self.started = time.perf_counter()

    def add(self, loss_sum: torch.Tensor, correct: torch.Tensor, count: int) -> None:
        self.loss += loss_sum
        self.correct += correct
        self.seen += count

    def stacked(self) -> torch.Tensor:
        """(loss sum, correct, images) as one device tensor."""
        count = torch.tensor(float(self.seen), device=self.device)
        return torch.stack([self.loss, self.correct.float(), count])

    def seconds(self) -> float:
        return time.perf_counter() - self.started


def heatmaps_due(epoch: int, final: bool) -> bool:
    """Each heatmap holds every log point so far, so epochs 1, 2, 4, 8, ... and the run's last
    tell its whole story at a fraction of the cost of drawing them every epoch."""
    return final or epoch & (epoch - 1) == 0
