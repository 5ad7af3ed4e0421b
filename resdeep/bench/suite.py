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

from resdeep.bench.analysis import cam_variant, deterministic_pass_variant, mc_dropout_variant
from resdeep.bench.results import (
    BenchResult,
    bf16_supported,
    load_average,
    measurement_context,
    ratio,
    result,
)
from resdeep.bench.sizes import Sizes
from resdeep.bench.timing import Measured, Variant, interleaved, median_ratio
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
        bare = measured.rounds("bare")
        matmul_flops = 2 * self.matmul_size**3
        # (step FLOPs / step time) / (matmul FLOPs / matmul time), round by round
        utilization = median_ratio(measured.rounds("matmul"), bare)
        achieved = ratio(step_flops, _median(measured, "bare"))
        peak = ratio(matmul_flops, _median(measured, "matmul"))
        net = f"ResNet-{sizes.shallow_depth}, batch {sizes.batch}"
        return [
            *self.loop_results("resnet20", measured, log_every, baseline=_same_format(loader)),
            *self.graphs_results("resnet20", measured, log_every),
            result(
                "pipeline_over_model_ratio",
                median_ratio(bare, measured.rounds("pipeline")),
                "x",
                ">= 10",
                f"input pipeline (pad-crop, flip, normalise on {device.type}) images/s over the "
                f"bare training step's, {net}",
                measured,
                ("pipeline", "bare"),
            ),
            result(
                "flop_utilization_resnet20",
                None if utilization is None else utilization * step_flops / matmul_flops,
                "fraction",
                None,
                f"bare fp32 training step FLOP/s over {self.matmul_size}² fp32 matmul "
                f"FLOP/s, {net}",
                measured,
                ("matmul",),
                step_gflop=step_flops / 1e9,
                step_gflop_per_s=None if achieved is None else achieved / 1e9,
                matmul_gflop_per_s=None if peak is None else peak / 1e9,
                **(
                    {"note": "cuDNN convolutions may use TF32; the matmul is strict fp32"}
                    if device.type == "cuda"
                    else {}
                ),
            ),
            self.speedup("channels_last_speedup", measured, "bare_channels_last", "channels_last"),
            self.speedup("bf16_speedup", measured, "bare_bf16", "bf16 autocast"),
            self.speedup("compile_speedup", measured, "bare_compile", "torch.compile"),
            self.speedup(
                "bf16_compile_speedup",
                measured,
                "bare_bf16_compile",
                "bf16 autocast + torch.compile",
            ),
            result(
                "fast_path_speedup",
                median_ratio(bare, _logged_by_default(measured, "fast", log_every)),
                "x",
                ">= 2.0",
                f"resdeep loop, trainer.precision={fast_precision} "
                f"trainer.compile={str(sizes.compile).lower()}, over the "
                f"fp32 eager bare loop, {net}",
                measured,
                ("fast_every", "fast_never"),
            ),
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
        return [
            *self.loop_results("resnet110", measured, log_every, baseline=baseline),
            *self.graphs_results("resnet110", measured, log_every),
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

    def graphs_results(self, slot: str, measured: Measured, log_every: int) -> list[BenchResult]:
        depth = self.sizes.shallow_depth if slot == "resnet20" else self.sizes.deep_depth
        net = f"ResNet-{depth}, batch {self.sizes.batch}, {self.sizes.image}x{self.sizes.image}"
        eager = _logged_by_default(measured, "eager_bf16", log_every)
        graphs = _logged_by_default(measured, "graphs_bf16", log_every)
        steps = CIFAR10_TRAIN_IMAGES // self.sizes.batch
        per_step = None if eager is None else statistics.median(eager)
        results = [
            result(
                f"cuda_graphs_speedup_{slot}",
                median_ratio(eager, graphs),
                "x",
                None,
                f"resdeep loop, bf16, trainer.compile=true trainer.compile_mode=reduce-overhead "
                f"(CUDA graphs) over the same loop eager, log points every {log_every} steps, {net}",
                measured,
                ("graphs_bf16_every", "graphs_bf16_never", "eager_bf16_every", "eager_bf16_never"),
            )
        ]
        if slot == "resnet110":
            results.append(
                result(
                    "cifar10_epoch_s_resnet110_bf16",
                    None if per_step is None else per_step * steps,
                    "s",
                    None,
                    f"one CIFAR-10-sized epoch ({steps} steps of {self.sizes.batch}, "
                    f"{CIFAR10_TRAIN_IMAGES:,} images) from the median step time of resdeep's loop, "
                    f"bf16 eager, log points every {log_every} steps, {net}",
                    measured,
                    ("eager_bf16_every", "eager_bf16_never"),
                )
            )
        return results

    def loop_results(
        self, slot: str, measured: Measured, log_every: int, baseline: str
    ) -> list[BenchResult]:
        """The loop against the bare loop in the same memory format and precision: the ratio
        credits the loop's own work, not the format (channels_last has its own row)."""
        depth = self.sizes.shallow_depth if slot == "resnet20" else self.sizes.deep_depth
        layout = "channels_last" if baseline == "bare_channels_last" else "contiguous"
        net = f"ResNet-{depth}, batch {self.sizes.batch}, fp32 {layout}"
        bare = measured.rounds(baseline)
        logging_share = median_ratio(
            measured.rounds("resdeep_never"), measured.rounds("resdeep_every")
        )
        default_share = median_ratio(
            measured.rounds("resdeep_never"), _logged_by_default(measured, "resdeep", log_every)
        )
        # A GPU leaves the loop less slack than a CPU: each log point syncs the host.
        ratio_goal = ">= 0.95" if self.device.type == "cuda" else ">= 0.97"
        return [
            result(
                f"train_throughput_ratio_{slot}",
                median_ratio(bare, _logged_by_default(measured, "resdeep", log_every)),
                "x",
                ratio_goal,
                f"resdeep loop (log points every {log_every} steps, TensorBoard, progress bar) "
                f"over the bare loop, {net}",
                measured,
                (baseline, "resdeep_every", "resdeep_never"),
            ),
            # Reported, not judged: a log point reduces over every activation (ResNet-110: ~220
            # norms and stds), about a tenth of a CPU step; what a run pays is the next row.
            result(
                f"diagnostics_overhead_{slot}",
                None if logging_share is None else 1.0 - logging_share,
                "fraction",
                None,
                f"throughput lost logging gradient norms and diagnostics every step vs never, {net}",
                measured,
                ("resdeep_every", "resdeep_never"),
            ),
            result(
                f"diagnostics_overhead_default_{slot}",
                None if default_share is None else 1.0 - default_share,
                "fraction",
                "<= 0.03",
                f"throughput lost logging gradient norms and diagnostics every {log_every} steps "
                "(the default) "
                f"vs never, {net}",
                measured,
                ("resdeep_every", "resdeep_never"),
            ),
            result(
                f"bare_images_per_s_{slot}",
                ratio(self.sizes.batch, _median(measured, baseline)),
                "img/s",
                None,
                f"bare eager training loop, {net}",
            ),
        ]

    def speedup(
        self, name: str, measured: Measured, variant: str, feature: str, **extra: Any
    ) -> BenchResult:
        net = f"ResNet-{self.sizes.shallow_depth}, batch {self.sizes.batch}"
        return result(
            name,
            median_ratio(measured.rounds("bare"), measured.rounds(variant)),
            "x",
            None,
            f"bare loop with {feature} over the fp32 eager bare loop, {net}",
            measured,
            (variant,),
            **extra,
        )

    def analysis(self) -> list[BenchResult]:
        sizes, device = self.sizes, self.device
        torch.manual_seed(0)
        model = build_model("resnet", depth=sizes.shallow_depth, dropout=0.2, dropout_at="head")
        model.to(device).eval()
        shape = (3, sizes.image, sizes.image)
        mc_images = torch.randn(sizes.mc_images, *shape, device=device)
        cam_images = torch.randn(sizes.cam_batch, *shape, device=device)
        mc_name = f"mc_dropout_t{MC_SAMPLES}"
        variants = [
            deterministic_pass_variant(model, mc_images),
            mc_dropout_variant(model, mc_images, MC_SAMPLES),
            cam_variant(model, cam_images, "cam"),
            cam_variant(model, cam_images, "gradcam"),
        ]
        measured = self.measure(variants)
        net = f"ResNet-{sizes.shallow_depth}, {sizes.image}x{sizes.image}"
        per_image_ms = 1000 / sizes.cam_batch
        cam, gradcam = _median(measured, "cam"), _median(measured, "gradcam")
        return [
            result(
                "mc_dropout_head_cost_ratio_t32",
                median_ratio(measured.rounds(mc_name), measured.rounds("deterministic_pass")),
                "x",
                "<= 1.3",
                f"mc_predict T={MC_SAMPLES} (head-only dropout) over one deterministic pass, "
                f"{sizes.mc_images} images, {net}",
                measured,
                (mc_name, "deterministic_pass"),
            ),
            result(
                "cam_ms_per_image_batch64",
                None if cam is None else cam * per_image_ms,
                "ms",
                None,
                f"compute_cam(method='cam'), no backward pass, batch {sizes.cam_batch}, {net}",
                measured,
                ("cam",),
            ),
            result(
                "gradcam_ms_per_image_batch64",
                None if gradcam is None else gradcam * per_image_ms,
                "ms",
                None,
                f"compute_cam(method='gradcam'), one backward pass, batch {sizes.cam_batch}, {net}",
                measured,
                ("gradcam",),
            ),
        ]


def _median(measured: Measured, name: str) -> float | None:
    timing = measured.timings.get(name)
    return None if timing is None else timing.median


def _logged_by_default(measured: Measured, prefix: str, log_every: int) -> list[float] | None:
    """Seconds per step with a log point every `log_every` steps, per round, from the loop
    logging at every step and the loop never logging."""
    every, never = measured.rounds(f"{prefix}_every"), measured.rounds(f"{prefix}_never")
    if every is None or never is None:
        return None
    return [((log_every - 1) * n + e) / log_every for e, n in zip(every, never, strict=True)]


def _same_format(loader: DeviceLoader) -> str:
    """The bare variant in the memory format the resdeep loop (fed by `loader`) runs in."""
    return "bare_channels_last" if loader.channels_last else "bare"
