"""The suite's result rows from measured variants: what each number is, its unit, goal and text.

resdeep's loop logs gradient norms and the diagnostics (backward signal, weight norms, relative
updates, forward and response std) every `log_every` steps (10 by default). Its per-step time
with that default is composed from two variants of the same loop, one logging at every step,
one never: ((L - 1) * never + every) / L. Windows of whole log periods would not fit the time
budget (a ResNet-110 step is slow on a CPU, and a ratio needs several windows of two variants),
and the two variants give the cost of a log point besides.
"""

from __future__ import annotations

import statistics

import torch

from resdeep.bench.results import BenchResult, ratio, result
from resdeep.bench.sizes import Sizes
from resdeep.bench.timing import Measured, median_ratio

CIFAR10_TRAIN_IMAGES = 50_000


def loop_rows(
    measured: Measured,
    sizes: Sizes,
    slot: str,
    *,
    device: torch.device,
    log_every: int,
    baseline: str,
) -> list[BenchResult]:
    """resdeep's loop against the bare loop `baseline` in the same memory format and precision
    (the ratio credits the loop's own work, not the format: channels_last has its own row), the
    cost of its log points, and the bare loop's images/s."""
    layout = "channels_last" if baseline == "bare_channels_last" else "contiguous"
    net = f"ResNet-{sizes.depth(slot)}, batch {sizes.batch}, fp32 {layout}"
    never = measured.rounds("resdeep_never")
    by_default = _logged_by_default(measured, "resdeep", log_every)
    logging_share = median_ratio(never, measured.rounds("resdeep_every"))
    default_share = median_ratio(never, by_default)
    return [
        result(
            f"train_throughput_ratio_{slot}",
            median_ratio(measured.rounds(baseline), by_default),
            "x",
            # A GPU leaves the loop less slack than a CPU: each log point syncs the host.
            ">= 0.95" if device.type == "cuda" else ">= 0.97",
            f"resdeep loop (log points every {log_every} steps, TensorBoard, progress bar) "
            f"over the bare loop, {net}",
            measured,
            (baseline, "resdeep_every", "resdeep_never"),
        ),
        # Reported, not judged: a log point reduces over every activation (ResNet-110: ~220
        # norms and stds), a sizeable share of a CPU step; what a run pays is the next row.
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
            f"(the default) vs never, {net}",
            measured,
            ("resdeep_every", "resdeep_never"),
        ),
        result(
            f"bare_images_per_s_{slot}",
            ratio(sizes.batch, _median_seconds(measured, baseline)),
            "img/s",
            None,
            f"bare eager training loop, {net}",
        ),
    ]


def speedup_row(
    measured: Measured, sizes: Sizes, name: str, variant: str, feature: str
) -> BenchResult:
    """The bare loop with one feature (`variant`) over the fp32 eager bare loop."""
    return result(
        name,
        median_ratio(measured.rounds("bare"), measured.rounds(variant)),
        "x",
        None,
        f"bare loop with {feature} over the fp32 eager bare loop, {_shallow_net(sizes)}",
        measured,
        (variant,),
    )


def fast_path_row(
    measured: Measured, sizes: Sizes, *, log_every: int, precision: str
) -> BenchResult:
    """resdeep's loop with its fast settings (bf16 where native, compiled) over the bare loop."""
    return result(
        "fast_path_speedup",
        median_ratio(measured.rounds("bare"), _logged_by_default(measured, "fast", log_every)),
        "x",
        ">= 2.0",
        f"resdeep loop, trainer.precision={precision} "
        f"trainer.compile={str(sizes.compile).lower()}, over the "
        f"fp32 eager bare loop, {_shallow_net(sizes)}",
        measured,
        ("fast_every", "fast_never"),
    )


def pipeline_row(measured: Measured, sizes: Sizes, device: torch.device) -> BenchResult:
    """How many times faster the input pipeline makes batches than the bare loop trains on them."""
    return result(
        "pipeline_over_model_ratio",
        median_ratio(measured.rounds("bare"), measured.rounds("pipeline")),
        "x",
        ">= 10",
        f"input pipeline (pad-crop, flip, normalise on {device.type}) images/s over the "
        f"bare training step's, {_shallow_net(sizes)}",
        measured,
        ("pipeline", "bare"),
    )


def flop_utilization_row(
    measured: Measured,
    sizes: Sizes,
    device: torch.device,
    *,
    step_flops: int,
    matmul_size: int,
) -> BenchResult:
    """The bare training step's FLOP/s as a share of what a square fp32 matmul reaches."""
    matmul_flops = 2 * matmul_size**3
    # (step FLOPs / step time) / (matmul FLOPs / matmul time), round by round
    utilization = median_ratio(measured.rounds("matmul"), measured.rounds("bare"))
    achieved = ratio(step_flops, _median_seconds(measured, "bare"))
    peak = ratio(matmul_flops, _median_seconds(measured, "matmul"))
    note = (
        {"note": "cuDNN convolutions may use TF32; the matmul is strict fp32"}
        if device.type == "cuda"
        else {}
    )
    return result(
        "flop_utilization_resnet20",
        None if utilization is None else utilization * step_flops / matmul_flops,
        "fraction",
        None,
        f"bare fp32 training step FLOP/s over {matmul_size}² fp32 matmul FLOP/s, "
        f"{_shallow_net(sizes)}",
        measured,
        ("matmul",),
        step_gflop=step_flops / 1e9,
        step_gflop_per_s=None if achieved is None else achieved / 1e9,
        matmul_gflop_per_s=None if peak is None else peak / 1e9,
        **note,
    )


def cuda_graphs_row(measured: Measured, sizes: Sizes, slot: str, *, log_every: int) -> BenchResult:
    """resdeep's loop in bf16 replaying CUDA graphs over the same loop eager."""
    return result(
        f"cuda_graphs_speedup_{slot}",
        median_ratio(
            _logged_by_default(measured, "eager_bf16", log_every),
            _logged_by_default(measured, "graphs_bf16", log_every),
        ),
        "x",
        None,
        f"resdeep loop, bf16, trainer.compile=true trainer.compile_mode=reduce-overhead "
        f"(CUDA graphs) over the same loop eager, log points every {log_every} steps, "
        f"{_graphs_net(sizes, slot)}",
        measured,
        ("graphs_bf16_every", "graphs_bf16_never", "eager_bf16_every", "eager_bf16_never"),
    )


def cifar10_epoch_row(measured: Measured, sizes: Sizes, *, log_every: int) -> BenchResult:
    """The seconds of one CIFAR-10-sized epoch of the deep net in bf16 eager."""
    eager = _logged_by_default(measured, "eager_bf16", log_every)
    steps = CIFAR10_TRAIN_IMAGES // sizes.batch
    return result(
        "cifar10_epoch_s_resnet110_bf16",
        None if eager is None else statistics.median(eager) * steps,
        "s",
        None,
        f"one CIFAR-10-sized epoch ({steps} steps of {sizes.batch}, "
        f"{CIFAR10_TRAIN_IMAGES:,} images) from the median step time of resdeep's loop, "
        f"bf16 eager, log points every {log_every} steps, {_graphs_net(sizes, 'resnet110')}",
        measured,
        ("eager_bf16_every", "eager_bf16_never"),
    )


def analysis_rows(measured: Measured, sizes: Sizes, *, samples: int) -> list[BenchResult]:
    """MC dropout's cost over one deterministic pass, and the milliseconds per image of CAM and
    Grad-CAM."""
    net = f"ResNet-{sizes.shallow_depth}, {sizes.image}x{sizes.image}"
    mc_name = f"mc_dropout_t{samples}"
    per_image_ms = 1000 / sizes.cam_batch
    cam, gradcam = _median_seconds(measured, "cam"), _median_seconds(measured, "gradcam")
    return [
        result(
            "mc_dropout_head_cost_ratio_t32",
            median_ratio(measured.rounds(mc_name), measured.rounds("deterministic_pass")),
            "x",
            "<= 1.3",
            f"mc_predict T={samples} (head-only dropout) over one deterministic pass, "
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


def _logged_by_default(measured: Measured, prefix: str, log_every: int) -> list[float] | None:
    """Seconds per step with a log point every `log_every` steps, per round, from the loop
    logging at every step and the loop never logging."""
    every, never = measured.rounds(f"{prefix}_every"), measured.rounds(f"{prefix}_never")
    if every is None or never is None:
        return None
    return [((log_every - 1) * n + e) / log_every for e, n in zip(every, never, strict=True)]


def _median_seconds(measured: Measured, name: str) -> float | None:
    """The median seconds per unit of variant `name`; None when it was not measured."""
    timing = measured.timings.get(name)
    return None if timing is None else timing.median


def _shallow_net(sizes: Sizes) -> str:
    return f"ResNet-{sizes.shallow_depth}, batch {sizes.batch}"


def _graphs_net(sizes: Sizes, slot: str) -> str:
    return f"ResNet-{sizes.depth(slot)}, batch {sizes.batch}, {sizes.image}x{sizes.image}"
