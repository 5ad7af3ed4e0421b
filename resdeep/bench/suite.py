"""The benchmark suite behind `resdeep bench`: what is timed together, and what it yields.

Three groups, each timed side by side (see `resdeep.bench.timing`):

- ResNet-20: the bare loop against resdeep's loop, the feature variants (channels_last, bf16,
  compile), resdeep's fast path, the input pipeline alone and a matmul;
- ResNet-110: the bare loop against resdeep's loop;
- on CUDA, within both nets' groups: resdeep's loop in bf16 replaying CUDA graphs (torch.compile
  mode reduce-overhead) against the same loop eager, and the time of a CIFAR-10-sized epoch;
- analysis: one deterministic pass, T=32 MC dropout, CAM and Grad-CAM.

`resdeep.bench.variants` builds and times the variants, `resdeep.bench.rows` turns what was
measured into result rows (and says how the loop's time at its default log interval is composed).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from resdeep.bench import rows
from resdeep.bench.analysis import cam_variant, deterministic_pass_variant, mc_dropout_variant
from resdeep.bench.results import BenchResult, bf16_supported, load_average, measurement_context
from resdeep.bench.sizes import Sizes
from resdeep.bench.training import (
    augmenting_loader,
    matmul_variant,
    pipeline_variant,
    training_step_flops,
)
from resdeep.bench.variants import VariantBuilder, same_format_baseline
from resdeep.models import build_model

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


MC_SAMPLES = 32


# The bare loop in each memory format and precision the speed-up rows compare; "bare" (never
# skipped) is the baseline.
BARE_OPTIONS: dict[str, dict[str, Any]] = {
    "bare": {},
    "bare_channels_last": {"channels_last": True},
    "bare_compile": {"compile_model": True},
    "bare_bf16": {"precision": "bf16"},
    "bare_bf16_compile": {"precision": "bf16", "compile_model": True},
}


@dataclass
class BenchReport:
    """The suite's results and the context they were measured in."""

    results: list[BenchResult]
    context: dict[str, Any]  # device, torch, threads, repeats, load, wall time

    def records(self) -> list[dict[str, Any]]:
        """The results as JSON objects, each carrying the context."""
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
        builder = VariantBuilder(device, sizes, Path(scratch))
        on_stage(f"ResNet-{sizes.shallow_depth}: bare and resdeep loops, fast paths, pipeline")
        results = _shallow_group(builder)
        on_stage(f"ResNet-{sizes.deep_depth}: bare and resdeep loops")
        results += _deep_group(builder)
        on_stage(f"analysis: MC dropout (T={MC_SAMPLES}), CAM, Grad-CAM")
        results += _analysis_group(builder)
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


def _shallow_group(builder: VariantBuilder) -> list[BenchResult]:
    """ResNet-20: the bare loop against resdeep's loop, the bare loop's feature variants,
    resdeep's fast path, CUDA graphs, the input pipeline alone and a matmul."""
    sizes, device = builder.sizes, builder.device
    fast_precision = "bf16" if bf16_supported(device) else "32"
    default = builder.training("shallow", sizes.shallow_depth)
    fast = builder.training(
        "fast", sizes.shallow_depth, precision=fast_precision, compile_model=sizes.compile
    )
    log_every = default.loop.settings.log_every
    loader = default.loop.train_loader  # taken before `resdeep_loop` wraps it in a clock
    pipeline = augmenting_loader(
        device=device, batch_size=sizes.batch, image_size=sizes.image, count=sizes.pipeline_images
    )
    bare, *bare_features = builder.bare_loops(default, BARE_OPTIONS)
    measured = builder.measure(
        [
            bare,  # the baseline, next to the resdeep loop it is compared with
            *builder.resdeep_loop(default, "resdeep"),
            *bare_features,
            *builder.resdeep_loop(fast, "fast"),
            *builder.cuda_graphs_loops("shallow", sizes.shallow_depth),
            pipeline_variant(pipeline, device),
            matmul_variant(device, builder.matmul_size),
        ]
    )
    images, labels = next(iter(loader))
    step_flops = training_step_flops(default.model, images, labels)
    baseline = same_format_baseline(loader)
    return [
        *rows.loop_rows(
            measured, sizes, "resnet20", device=device, log_every=log_every, baseline=baseline
        ),
        rows.cuda_graphs_row(measured, sizes, "resnet20", log_every=log_every),
        rows.pipeline_row(measured, sizes, device),
        rows.flop_utilization_row(
            measured, sizes, device, step_flops=step_flops, matmul_size=builder.matmul_size
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


def _deep_group(builder: VariantBuilder) -> list[BenchResult]:
    """ResNet-110: the bare loop against resdeep's loop, CUDA graphs and a CIFAR-10 epoch."""
    sizes = builder.sizes
    training = builder.training("deep", sizes.deep_depth)
    baseline = same_format_baseline(training.loop.train_loader)
    bare = builder.bare_loop(baseline, training, channels_last=baseline == "bare_channels_last")
    measured = builder.measure(
        [
            bare,
            *builder.resdeep_loop(training, "resdeep"),
            *builder.cuda_graphs_loops("deep", sizes.deep_depth),
        ]
    )
    log_every = training.loop.settings.log_every
    return [
        *rows.loop_rows(
            measured,
            sizes,
            "resnet110",
            device=builder.device,
            log_every=log_every,
            baseline=baseline,
        ),
        rows.cuda_graphs_row(measured, sizes, "resnet110", log_every=log_every),
        rows.cifar10_epoch_row(measured, sizes, log_every=log_every),
    ]


def _analysis_group(builder: VariantBuilder) -> list[BenchResult]:
    """One deterministic pass, MC dropout, CAM and Grad-CAM on a ResNet-20 with head dropout."""
    sizes, device = builder.sizes, builder.device
    torch.manual_seed(0)
    model = build_model("resnet", depth=sizes.shallow_depth, dropout=0.2, dropout_at="head")
    model.to(device).eval()
    shape = (3, sizes.image, sizes.image)
    mc_images = torch.randn(sizes.mc_images, *shape, device=device)
    cam_images = torch.randn(sizes.cam_batch, *shape, device=device)
    measured = builder.measure(
        [
            deterministic_pass_variant(model, mc_images),
            mc_dropout_variant(model, mc_images, MC_SAMPLES),
            cam_variant(model, cam_images, "cam"),
            cam_variant(model, cam_images, "gradcam"),
        ]
    )
    return rows.analysis_rows(measured, sizes, samples=MC_SAMPLES)
