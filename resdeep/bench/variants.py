"""The suite's training variants at its sizes, and their measurement side by side.

A group asks the builder for resdeep's objects (`training`), then for the variants that train
them: resdeep's loop never logging and logging at every step, the bare loop in a memory format
or precision, resdeep's loop in bf16 eager and replaying CUDA graphs. The builder remembers
what it made for the next `measure`: the progress bars that must run while the loops are
timed, the trainings to close after, and the variants it skipped with the reason why.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from resdeep.bench.results import bf16_supported
from resdeep.bench.sizes import Sizes
from resdeep.bench.timing import Measured, Variant, interleaved
from resdeep.bench.training import (
    NEVER,
    BareLoop,
    ResdeepLoop,
    build_bench_training,
    progress_bar_off_screen,
)
from resdeep.data import DeviceLoader
from resdeep.train.build import Training
from resdeep.train.progress import TrainingProgress

COMPILE_NOT_TIMED = "torch.compile is not timed with --quick (a cold compile is slow)"


class VariantBuilder:
    """Builds the timed variants of one suite run on `device` at `sizes`, and measures them."""

    def __init__(self, device: torch.device, sizes: Sizes, scratch: Path) -> None:
        self.device, self.sizes, self.scratch = device, sizes, scratch
        self.matmul_size = 8192 if device.type == "cuda" else 2048
        # What the next `measure` needs: built since the last one.
        self.bars: list[TrainingProgress] = []  # of the resdeep loops about to be timed
        self.trainings: list[Training] = []  # closed once timed
        self.skipped: dict[str, str] = {}  # variant -> why it was not built

    def measure(self, variants: list[Variant]) -> Measured:
        """Time the variants side by side, the resdeep loops' progress bars running off screen;
        then close the trainings they ran on and report the skipped variants as failures."""
        with progress_bar_off_screen(), ExitStack() as running:
            for bar in self.bars:
                running.enter_context(bar)
            measured = interleaved(variants, self.sizes.schedule)
        for training in self.trainings:
            training.loop.close()
        measured.failures.update(self.skipped)
        self.bars, self.trainings, self.skipped = [], [], {}
        return measured

    def training(self, name: str, depth: int, **options: Any) -> Training:
        """resdeep's objects for a ResNet of `depth` on synthetic images at the suite's sizes;
        `options` are `build_bench_training`'s (precision, compile)."""
        sizes = self.sizes
        # One pass of the train split (nine tenths of the images) holds the longest window.
        num_samples = (sizes.max_steps + 2) * sizes.batch * 10 // 9 + 10
        training = build_bench_training(
            self.scratch / name,
            device=self.device,
            depth=depth,
            batch_size=sizes.batch,
            image_size=sizes.image,
            num_samples=num_samples,
            **options,
        )
        self.trainings.append(training)
        return training

    def resdeep_loop(self, training: Training, prefix: str) -> list[Variant]:
        """The same loop never logging, and logging (gradient norms, diagnostics) at every step
        (never first: it weighs (L - 1) / L in the default and sits next to the bare baseline)."""
        progress = TrainingProgress(10**9, 0, mode="bar")
        self.bars.append(progress)
        loop = ResdeepLoop(training, progress)
        variants = [loop.variant(f"{prefix}_never", NEVER), loop.variant(f"{prefix}_every", 1)]
        for variant in variants:
            variant.max_units = min(self.sizes.max_steps, len(loop.clock) - 1)
        return variants

    def bare_loop(self, name: str, training: Training, **options: Any) -> Variant:
        """The bare loop on a copy of the training's model and on its batches; build it before
        `resdeep_loop` wraps the training's loader in a clock. `options` are `BareLoop`'s."""
        loader = training.loop.train_loader
        loop = BareLoop(training.model, loader, self.device, **options)
        return Variant(name, loop.run, max_units=min(self.sizes.max_steps, len(loader) - 1))

    def bare_loops(self, training: Training, options: dict[str, dict[str, Any]]) -> list[Variant]:
        """A bare loop for each name -> `BareLoop` options this device and these sizes can time;
        the others are skipped with the reason why."""
        variants = []
        for name, option in options.items():
            reason = self._bare_skip_reason(option)
            if reason is None:
                variants.append(self.bare_loop(name, training, **option))
            else:
                self.skipped[name] = reason
        return variants

    def _bare_skip_reason(self, option: dict[str, Any]) -> str | None:
        if option.get("precision") == "bf16" and not bf16_supported(self.device):
            return f"no native bf16 kernels on {self.device}"
        if option.get("compile_model") and not self.sizes.compile:
            return COMPILE_NOT_TIMED
        return None

    def cuda_graphs_loops(self, name: str, depth: int) -> list[Variant]:
        """resdeep's loop in bf16, eager ("eager_bf16") and replaying CUDA graphs
        (torch.compile mode reduce-overhead, "graphs_bf16"); skipped off CUDA, with --quick, or
        without native bf16."""
        reason = self._cuda_graphs_skip_reason()
        if reason is not None:
            for prefix in ("eager_bf16", "graphs_bf16"):
                for kind in ("never", "every"):
                    self.skipped[f"{prefix}_{kind}"] = reason
            return []
        eager = self.training(f"{name}_eager_bf16", depth, precision="bf16")
        graphs = self.training(
            f"{name}_graphs_bf16",
            depth,
            precision="bf16",
            compile_model=True,
            compile_mode="reduce-overhead",
        )
        return [*self.resdeep_loop(eager, "eager_bf16"), *self.resdeep_loop(graphs, "graphs_bf16")]

    def _cuda_graphs_skip_reason(self) -> str | None:
        if self.device.type != "cuda":
            return "CUDA graphs need a CUDA device"
        if not self.sizes.compile:
            return COMPILE_NOT_TIMED
        if not bf16_supported(self.device):
            return f"no native bf16 kernels on {self.device}"
        return None


def same_format_baseline(loader: DeviceLoader) -> str:
    """The bare variant in the memory format the resdeep loop (fed by `loader`) runs in."""
    return "bare_channels_last" if loader.channels_last else "bare"
