"""The benchmark suite behind `resdeep bench`: what is timed together, and what it yields.

Three groups, each timed side by side (see `resdeep.bench.timing`):

- ResNet-20: the bare loop against resdeep's loop, the feature variants (channels_last, bf16,
  compile), resdeep's fast path, the input pipeline alone and a matmul;
- ResNet-110: the bare loop against resdeep's loop;
- on CUDA, for both nets: resdeep's loop in bf16 replaying CUDA graphs (torch.compile
  mode reduce-overhead) against the same loop eager, and the time of a CIFAR-10-sized epoch;
- analysis: one deterministic pass, T=32 MC dropout, CAM and Grad-CAM.

resdeep's loop logs gradient norms and the diagnostics (backward signal, weight norms, relative
updates, forward and response std) every `log_every` steps (10 by default). Its per-step time
with that default is composed from two variants of the same loop, one logging at every step,
one never: ((L - 1) * never + every) / L. Windows of whole log periods would not fit the time
budget (ten ResNet-110 steps take 15 s on 2 CPU cores, and a ratio needs several windows of
two variants), and the two variants give the cost of a log point besides.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from resdeep.bench import rows
from resdeep.bench.analysis import cam_variant, deterministic_pass_variant, mc_dropout_variant
from resdeep.bench.results import (
    BenchResult,
    bf16_supported,
    load_average,
    measurement_context,
)
from resdeep.bench.sizes import Sizes
from resdeep.bench.timing import Measured, Variant, interleaved
from resdeep.bench.training import (
    NEVER,
    BareLoop,
    ResdeepLoop,
    augmenting_loader,
    build_bench_training,
    matmul_variant,
    pipeline_variant,
    progress_bar_off_screen,
    training_step_flops,
)
from resdeep.data import DeviceLoader
from resdeep.models import build_model
from resdeep.train.build import Training
from resdeep.train.progress import TrainingProgress

REQUIRED_NAMES = (
    "train_throughput_ratio_resnet20",
    "train_throughput_ratio_resnet110",
    "diagnostics_overhead_resnet110",
    "pipeline_over_model_ratio",
    "flop_utilization_resnet20",
    "mc_dropout_head_cost_ratio_t32",
    "cam_ms_per_image_batch64",
    "gradcam_ms_per_image_batch64",
    "channels_last_speedup",
    "bf16_speedup",
    "compile_speedup",
    "fast_path_speedup",
)
CIFAR10_TRAIN_IMAGES = 50_000


MC_SAMPLES = 32


@dataclass
class BenchReport:
    results: list[BenchResult]
    context: dict[str, Any]  # device, torch, threads, repeats, load, wall time

    def records(self) -> list[dict[str, Any]]:
        return [r.record(self.context) for r in self.results]


def run_suite(
    device: torch.device,
    sizes: Sizes,
    *,
    repeats: int | None = None,
    on_stage: Callable[[str], None] = lambda message: None,
) -> BenchReport:
    """Every benchmark on `device`, required names first in the README's order."""
    started = time.perf_counter()
    if repeats is not None:
        sizes = replace(sizes, schedule=replace(sizes.schedule, repeats=repeats))
    if sizes.threads is not None:
        torch.set_num_threads(sizes.threads)
    context = measurement_context(device, repeats=sizes.schedule.repeats, quick=sizes.quick)
    on_stage(
        f"{device} ({context['device_name']}), torch {context['torch']}, "
        f"{context['threads']} threads, load average {context['load_average_1m']}"
    )
    with tempfile.TemporaryDirectory(prefix="resdeep-bench-") as scratch:
        group = _Group(device, sizes, Path(scratch))
        on_stage(f"ResNet-{sizes.shallow_depth}: bare and resdeep loops, fast paths, pipeline")
        results = group.shallow()
        on_stage(f"ResNet-{sizes.deep_depth}: bare and resdeep loops")
        results += group.deep()
        on_stage(f"analysis: MC dropout (T={MC_SAMPLES}), CAM, Grad-CAM")
        results += group.analysis()
    order = {name: index for index, name in enumerate(REQUIRED_NAMES)}
    results.sort(key=lambda r: order.get(r.name, len(order)))
    if sizes.quick:
        # Rows say what they timed (ResNet-8, not ResNet-20), and no goal is judged.
        results = [replace(r, name=sizes.named(r.name), judged=False) for r in results]
    context["wall_time_s"] = round(time.perf_counter() - started, 1)
    context["load_average_1m_end"] = load_average()
    context["cpu_wait_worst"] = _worst_cpu_wait(results)
    return BenchReport(results, context)


def _worst_cpu_wait(results: list[BenchResult]) -> float | None:
    """The largest of the variants' median shares of time spent waiting for a CPU."""
    medians = []
    for r in results:
        for timing in r.detail.values():
            waits = (
                [w for w in timing["cpu_wait"] if w is not None] if isinstance(timing, dict) else []
            )
            if waits:
                medians.append(statistics.median(waits))
    return max(medians, default=None)


class _Group:
    def __init__(self, device: torch.device, sizes: Sizes, scratch: Path) -> None:
        self.device, self.sizes, self.scratch = device, sizes, scratch
        self.matmul_size = 8192 if device.type == "cuda" else 2048
        self.bars: list[TrainingProgress] = []  # of the resdeep loops about to be timed

    def measure(self, variants: list[Variant]) -> Measured:
        """Time the variants side by side, the resdeep loops' progress bars running off screen."""
        with progress_bar_off_screen(), ExitStack() as running:
            for bar in self.bars:
                running.enter_context(bar)
            measured = interleaved(variants, self.sizes.schedule)
        self.bars.clear()
        return measured

    # ---- building the variants ---------------------------------------------------------
    def training(self, name: str, depth: int, **options: Any) -> Training:
        sizes = self.sizes
        # One pass of the train split (nine tenths of the images) holds the longest window.
        num_samples = (sizes.max_steps + 2) * sizes.batch * 10 // 9 + 10
        return build_bench_training(
            self.scratch / name,
            device=self.device,
            depth=depth,
            batch_size=sizes.batch,
            image_size=sizes.image,
            num_samples=num_samples,
            **options,
        )

    def resdeep(self, training: Training, prefix: str) -> list[Variant]:
        """The same loop never logging, and logging (gradient norms, diagnostics) at every step (never
        first: it weighs (L - 1) / L in the default and sits next to the bare baseline)."""
        progress = TrainingProgress(10**9, 0, mode="bar")
        self.bars.append(progress)
        loop = ResdeepLoop(training, progress)
        variants = [loop.variant(f"{prefix}_never", NEVER), loop.variant(f"{prefix}_every", 1)]
        for variant in variants:
            variant.max_units = min(self.sizes.max_steps, len(loop.clock) - 1)
        return variants

    def bare(self, name: str, training: Training, **options: Any) -> Variant:
        """The bare loop on a copy of the training's model and on its batches; build it before
        `resdeep` wraps the training's loader in a clock."""
        loader = training.loop.train_loader
        loop = BareLoop(training.model, loader, self.device, **options)
        return Variant(name, loop.run, max_units=min(self.sizes.max_steps, len(loader) - 1))

    # ---- the groups ----------------------------------------------------------------------
    def shallow(self) -> list[BenchResult]:
        sizes, device = self.sizes, self.device
        bf16 = bf16_supported(device)
        fast_precision = "bf16" if bf16 else "32"
        default = self.training("shallow", sizes.shallow_depth)
        fast = self.training(
            "fast", sizes.shallow_depth, precision=fast_precision, compile_model=sizes.compile
        )
        log_every = default.loop.settings.log_every
        loader = default.loop.train_loader
        options = {
            "bare": {},
            "bare_channels_last": {"channels_last": True},
            "bare_compile": {"compile_model": True},
            "bare_bf16": {"precision": "bf16"},
            "bare_bf16_compile": {"precision": "bf16", "compile_model": True},
        }
        skipped = {}
        for name, option in options.items():
            if option.get("precision") == "bf16" and not bf16:
                skipped[name] = f"no native bf16 kernels on {device}"
            elif option.get("compile_model") and not sizes.compile:
                skipped[name] = "torch.compile is not timed with --quick (a cold compile is slow)"
        pipeline = augmenting_loader(
            device=device,
            batch_size=sizes.batch,
            image_size=sizes.image,
            count=sizes.pipeline_images,
        )
        bare_variants = [
            self.bare(name, default, **option)
            for name, option in options.items()
            if name not in skipped
        ]
        graphs = self.graphs_trainings("shallow", sizes.shallow_depth)
        variants = [
            bare_variants[0],  # the baseline, next to the resdeep loop it is compared with
            *self.resdeep(default, "resdeep"),
            *bare_variants[1:],
            *self.resdeep(fast, "fast"),
            *self.graphs_variants(graphs),
            pipeline_variant(pipeline, device),
            matmul_variant(device, self.matmul_size),
        ]
        measured = self.measure(variants)
        measured.failures.update(skipped)
        measured.failures.update(self.graphs_skipped())
        for training in (default, fast, *graphs):
            training.loop.close()

        images, labels = next(iter(loader))
        step_flops = training_step_flops(default.model, images, labels)
        return [
            *rows.loop_rows(
                measured,
                sizes,
                "resnet20",
                device=device,
                log_every=log_every,
                baseline=_same_format(loader),
            ),
            rows.cuda_graphs_row(measured, sizes, "resnet20", log_every=log_every),
            rows.pipeline_row(measured, sizes, device),
            rows.flop_utilization_row(
                measured, sizes, device, step_flops=step_flops, matmul_size=self.matmul_size
            ),
            rows.speedup_row(
                measured, sizes, "channels_last_speedup", "bare_channels_last", "channels_last"
            ),
            rows.speedup_row(measured, sizes, "bf16_speedup", "bare_bf16", "bf16 autocast"),
            rows.speedup_row(measured, sizes, "compile_speedup", "bare_compile", "torch.compile"),
            rows.speedup_row(
                measured,
                sizes,
                "bf16_compile_speedup",
                "bare_bf16_compile",
                "bf16 autocast + torch.compile",
            ),
            rows.fast_path_row(measured, sizes, log_every=log_every, precision=fast_precision),
        ]

    def deep(self) -> list[BenchResult]:
        training = self.training("deep", self.sizes.deep_depth)
        baseline = _same_format(training.loop.train_loader)
        bare = self.bare(baseline, training, channels_last=baseline == "bare_channels_last")
        graphs = self.graphs_trainings("deep", self.sizes.deep_depth)
        measured = self.measure(
            [bare, *self.resdeep(training, "resdeep"), *self.graphs_variants(graphs)]
        )
        measured.failures.update(self.graphs_skipped())
        for each in (training, *graphs):
            each.loop.close()
        log_every = training.loop.settings.log_every
        sizes = self.sizes
        return [
            *rows.loop_rows(
                measured,
                sizes,
                "resnet110",
                device=self.device,
                log_every=log_every,
                baseline=baseline,
            ),
            rows.cuda_graphs_row(measured, sizes, "resnet110", log_every=log_every),
            rows.cifar10_epoch_row(measured, sizes, log_every=log_every),
        ]

    # ---- CUDA graphs (torch.compile mode reduce-overhead) --------------------------------
    def graphs_wanted(self) -> bool:
        return self.device.type == "cuda" and self.sizes.compile and bf16_supported(self.device)

    def graphs_skipped(self) -> dict[str, str]:
        if self.graphs_wanted():
            return {}
        if self.device.type != "cuda":
            reason = "CUDA graphs need a CUDA device"
        elif not self.sizes.compile:
            reason = "torch.compile is not timed with --quick (a cold compile is slow)"
        else:
            reason = f"no native bf16 kernels on {self.device}"
        return {f"{prefix}_{kind}": reason for prefix in ("eager_bf16", "graphs_bf16")
                for kind in ("never", "every")}  # fmt: skip

    def graphs_trainings(self, name: str, depth: int) -> list[Training]:
        """resdeep's loop in bf16, eager and replaying CUDA graphs; none where not wanted."""
        if not self.graphs_wanted():
            return []
        return [
            self.training(f"{name}_eager_bf16", depth, precision="bf16"),
            self.training(
                f"{name}_graphs_bf16",
                depth,
                precision="bf16",
                compile_model=True,
                compile_mode="reduce-overhead",
            ),
        ]

    def graphs_variants(self, trainings: list[Training]) -> list[Variant]:
        variants = []
        for prefix, training in zip(("eager_bf16", "graphs_bf16"), trainings, strict=False):
            variants += self.resdeep(training, prefix)
        return variants

    def analysis(self) -> list[BenchResult]:
        sizes, device = self.sizes, self.device
        torch.manual_seed(0)
        model = build_model("resnet", depth=sizes.shallow_depth, dropout=0.2, dropout_at="head")
        model.to(device).eval()
        shape = (3, sizes.image, sizes.image)
        mc_images = torch.randn(sizes.mc_images, *shape, device=device)
        cam_images = torch.randn(sizes.cam_batch, *shape, device=device)
        variants = [
            deterministic_pass_variant(model, mc_images),
            mc_dropout_variant(model, mc_images, MC_SAMPLES),
            cam_variant(model, cam_images, "cam"),
            cam_variant(model, cam_images, "gradcam"),
        ]
        measured = self.measure(variants)
        return rows.analysis_rows(measured, sizes, samples=MC_SAMPLES)


def _same_format(loader: DeviceLoader) -> str:
    """The bare variant in the memory format the resdeep loop (fed by `loader`) runs in."""
    return "bare_channels_last" if loader.channels_last else "bare"
