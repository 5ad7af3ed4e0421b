"""`make gpu-check`: every CUDA path of resdeep, run once, each step in a process of its own.

    python scripts/gpu_check.py                 # on the first CUDA device; writes gpu_check.json
    python scripts/gpu_check.py --device cpu    # the same steps on CPU at a tiny size

Steps: training on digits and on synthetic CIFAR-sized images (ResNet-20 and ResNet-110, precision
32 / bf16 / 16, eager and torch.compile, CUDA graphs), the diagnostics in mixed precision against
fp32, `cam` with every method, `uncertainty`, `lesion` and `signal` against the CPU, a checkpoint moved
between CUDA and CPU, several GPUs (NCCL, SyncBatchNorm) where present, `resdeep bench` (the
smoke test, then the full suite's speed goals) and one CIFAR-10-sized epoch.

A step that fails (or crashes its process) is recorded with its error line and the rest still run;
a step that cannot apply is skipped with the reason. Nothing is downloaded: the data are
scikit-learn's digits and generated images. gpu_check.json is rewritten after every step, so an
interrupted check keeps what it measured. Without CUDA, `--device cuda` (the default) prints one
line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

RESULT_MARK = "GPU_CHECK_RESULT "  # a step process prints its result on a line starting so


@dataclass(frozen=True)
class Sizes:
    """How big the steps are: real sizes on CUDA, toy sizes for the CPU run of the same steps."""

    batch: int
    image: int  # side of the synthetic images
    train_images: int  # synthetic training images per run (val and test come on top)
    epoch_images: int  # the one long epoch's training images
    shallow_depth: int
    deep_depth: int
    log_every: int
    cam_images: int
    bench_repeats: int


CUDA_SIZES = Sizes(
    batch=128,
    image=32,
    train_images=10_240,  # 80 steps: a fifth of CIFAR-10's 50,000, enough for steady throughput
    epoch_images=50_000,  # CIFAR-10's training split
    shallow_depth=20,
    deep_depth=110,
    log_every=10,
    cam_images=8,
    bench_repeats=3,
)
CPU_SIZES = Sizes(
    batch=32,
    image=16,
    train_images=160,
    epoch_images=320,
    shallow_depth=8,
    deep_depth=14,
    log_every=1,
    cam_images=2,
    bench_repeats=1,
)


@dataclass
class Step:
    name: str
    what: str
    timeout_s: float
    needs: str | None = None  # a step whose success this one builds on
    skip: str | None = None  # why it cannot apply here (decided before it runs)


@dataclass
class Outcome:
    name: str
    what: str
    status: str  # ok | failed | skipped
    seconds: float
    error: str | None = None
    result: dict[str, Any] | None = None


# ---- the plan ---------------------------------------------------------------------------------


def plan(device: str, sizes: Sizes, gpus: int) -> list[Step]:
    """Every step in the order it runs: each path once first, then the speed matrix."""
    cuda = device == "cuda"
    steps = [
        Step("train_digits", "resdeep train on digits, ResNet-20 with dropout, 1 epoch", 180),
        Step("cam", "resdeep cam, every method, on digits images", 180, needs="train_digits"),
        Step(
            "cam_trust",
            f"resdeep cam --sanity --faithfulness, every method, on {device} and on CPU: the "
            "same similarities and areas, the whole check timed",
            300,
            needs="train_digits",
        ),
        Step("uncertainty", "resdeep uncertainty, MC dropout T=8", 180, needs="train_digits"),
        Step(
            "uncertainty_shift",
            f"resdeep uncertainty --shift all --laplace --calibrate temperature on {device} and "
            "on CPU: the same curves for every method that draws nothing on the device, timed",
            240,
            needs="train_digits",
        ),
        Step(
            "lesion",
            f"resdeep lesion --paths --reorder on {device} and on CPU: the same accuracies",
            180,
            needs="train_digits",
        ),
        Step(
            "signal",
            f"resdeep signal (the nets at init) and --checkpoint on {device} and on CPU: the "
            "same correlations, one depth-1202 net timed",
            240,
            needs="train_digits",
        ),
        Step(
            "landscape",
            f"resdeep landscape --2d --between init --hessian on {device} and on CPU: the same "
            "losses and λmax, one 21×21 plane timed",
            240,
            needs="train_digits",
        ),
        Step(
            "checkpoint_devices",
            f"checkpoint trained on {device} loaded on CPU and back: the same logits",
            120,
            needs="train_digits",
        ),
        Step(
            "resume_on_cpu",
            f"the {device} run resumed on CPU for one more epoch, then on {device} again",
            240,
            needs="train_digits",
        ),
        Step(
            "multi_gpu",
            "trainer.devices=2 with NCCL and trainer.sync_bn=true, then torchrun, one run dir",
            300,
            skip=None
            if cuda and gpus >= 2
            else (
                "one GPU: DDP over NCCL and SyncBatchNorm need two or more"
                if cuda
                else "NCCL and SyncBatchNorm are CUDA-only (the CPU path is in the test suite)"
            ),
        ),
        Step(
            "diagnostics",
            "diagnostics at every log point: precision 32 eager against "
            + ("fp16 (GradScaler) with torch.compile" if cuda else "bf16")
            + ", the same net at step 0",
            300,
        ),
        Step("bench_quick", "resdeep bench --quick", 240),
    ]
    precisions = ("32", "bf16", "16")
    for compiled in (False, True):
        for precision in precisions:
            for depth in (sizes.shallow_depth, sizes.deep_depth):
                skip = None
                if precision == "16" and not cuda:
                    skip = "fp16 with a GradScaler needs CUDA"
                elif compiled and not cuda:
                    skip = "torch.compile is checked on CUDA (a cold compile takes minutes on CPU)"
                steps.append(
                    Step(
                        train_name(depth, precision, compiled and "default"),
                        f"resdeep train, synthetic {sizes.image}x{sizes.image}, ResNet-{depth}, "
                        f"precision {precision}, {'torch.compile' if compiled else 'eager'}, "
                        f"channels_last, {sizes.train_images:,} images, batch {sizes.batch}",
                        420 if compiled else 180,
                        skip=skip,
                    )
                )
        if not compiled:  # the speed goals come before the slowest compiles
            steps.append(
                Step(
                    "bench",
                    f"resdeep bench --device {device} --repeats {sizes.bench_repeats}: the speed "
                    "goals",
                    600,
                    skip=None if cuda else "the full suite is timed on CUDA (--quick runs on CPU)",
                )
            )
            steps.append(
                Step(
                    "epoch_resnet110_bf16",
                    f"one epoch of {sizes.epoch_images:,} synthetic images, "
                    f"ResNet-{sizes.deep_depth}, bf16, batch {sizes.batch}",
                    300,
                )
            )
            for depth in (sizes.shallow_depth, sizes.deep_depth):
                steps.append(
                    Step(
                        train_name(depth, "bf16", "reduce-overhead"),
                        f"resdeep train, ResNet-{depth}, bf16, torch.compile reduce-overhead "
                        "(CUDA graphs)",
                        420,
                        skip=None if cuda else "CUDA graphs need CUDA",
                    )
                )
    # Most important first among the compiled runs: bf16 is what a GPU user runs.
    compiled_steps = [s for s in steps if s.name.endswith("_compiled")]
    rest = [s for s in steps if not s.name.endswith("_compiled")]
    order = {"bf16": 0, "16": 1, "32": 2}
    compiled_steps.sort(key=lambda s: order[s.name.split("_")[2]])
    return rest + compiled_steps


def train_name(depth: int, precision: str, compile_mode: str | bool) -> str:
    suffix = {False: "eager", "default": "compiled", "reduce-overhead": "cudagraphs"}[compile_mode]
    return f"train_resnet{depth}_{precision}_{suffix}"


# ---- the steps (each runs in a child process) ------------------------------------------------


class Context:
    def __init__(self, device: str, sizes: Sizes, work: Path) -> None:
        self.device, self.sizes, self.work = device, sizes, work

    @property
    def digits_run(self) -> Path:
        return self.work / "train_digits"


def resdeep(*args: str) -> None:
    """The real CLI in this process; a non-zero exit is a failure with resdeep's own line."""
    from resdeep.cli import main

    try:
        main(list(args))
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise RuntimeError(f"resdeep {args[0]} exited with {exit_.code}") from None


def read_metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "metrics.json").read_text())


def throughput(run_dir: Path) -> dict[str, Any]:
    """Steady images/s of a run from its logged windows: the first two (compilation, cuDNN's
    autotuning, allocator growth) are left out when there are more."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    values = [e.value for e in events.Scalars("throughput/img_per_s")]
    steady = values[2:] if len(values) > 2 else values
    return {
        "images_per_s": round(statistics.median(steady), 1),
        "first_window_images_per_s": round(values[0], 1),
        "windows": len(values),
    }


def step_train_digits(ctx: Context) -> dict[str, Any]:
    resdeep(
        "train",
        "data=digits",
        "model=resnet",
        f"model.depth={ctx.sizes.shallow_depth}",
        "model.dropout=0.1",
        "trainer.epochs=1",
        f"trainer.device={ctx.device}",
        "trainer.progress=lines",
        f"hydra.run.dir={ctx.digits_run}",
    )
    metrics = read_metrics(ctx.digits_run)
    return {"test_acc": metrics["test_acc"], "steps": metrics["steps"]}


def step_diagnostics(ctx: Context) -> dict[str, Any]:
    """The same net and first batch in fp32 eager and in mixed precision (on CUDA fp16 with its
    loss scale, compiled, so log steps take the eager path): the backward signal at step 0
    must agree, and every diagnostic of every log point must be finite."""
    import math

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cuda = ctx.device == "cuda"
    variants = {"32": ("32", False), "mixed": ("16", True) if cuda else ("bf16", False)}
    signals = {}
    for name, (precision, compiled) in variants.items():
        run = ctx.work / f"diagnostics_{name}"
        resdeep(
            "train", "data=digits", "model=resnet", f"model.depth={ctx.sizes.shallow_depth}",
            "trainer.epochs=1", "trainer.log_every=1", f"trainer.precision={precision}",
            f"trainer.compile={str(compiled).lower()}", f"trainer.device={ctx.device}",
            "trainer.deterministic=true", "trainer.progress=lines", f"hydra.run.dir={run}",
        )  # fmt: skip
        events = EventAccumulator(str(run), size_guidance={"scalars": 0})
        events.Reload()
        tags = [t for t in events.Tags()["scalars"] if t.startswith("backward_signal/")]
        for tag in tags + [t for t in events.Tags()["scalars"] if t.startswith("relative_update/")]:
            values = [e.value for e in events.Scalars(tag) if e.step > 0]
            if not all(math.isfinite(v) and v >= 0 for v in values):
                raise RuntimeError(f"{name}: {tag} is not finite: {values[:5]}")
        signals[name] = {tag: events.Scalars(tag)[0].value for tag in sorted(tags)}
    worst = max(abs(signals["mixed"][tag] / signals["32"][tag] - 1) for tag in signals["32"])
    if worst > 0.1:
        raise RuntimeError(f"step-0 backward signal differs by {worst:.1%} between precisions")
    # A deep plain net's backward signal explodes at initialisation: in fp16 the GradScaler's
    # first steps may overflow (and be skipped). Recorded, not judged: the README says so.
    deep = ctx.work / "diagnostics_deep_plain"
    precision = variants["mixed"][0]
    resdeep(
        "train", "data=digits", "model=plain", f"model.depth={ctx.sizes.deep_depth}",
        "trainer.max_steps=5", "trainer.log_every=1", f"trainer.precision={precision}",
        f"trainer.device={ctx.device}", "trainer.progress=lines", f"hydra.run.dir={deep}",
    )  # fmt: skip
    events = EventAccumulator(str(deep), size_guidance={"scalars": 0})
    events.Reload()
    stem = {e.step: e.value for e in events.Scalars("backward_signal/000_stem")}
    return {
        "units": len(signals["32"]),
        "worst_relative_difference_at_step_0": round(worst, 4),
        f"plain{ctx.sizes.deep_depth}_{precision}_stem_signal_by_step": stem,
    }


def step_cam(ctx: Context) -> dict[str, Any]:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from resdeep.choices import CAM_METHODS

    images = ctx.work / "cam_inputs"
    images.mkdir(exist_ok=True)
    digits = load_digits()
    for index in range(ctx.sizes.cam_images):
        pixels = (digits.images[index] * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels).resize((64, 64), Image.NEAREST).save(images / f"d{index}.png")
    written = {}
    for method in CAM_METHODS:
        out = ctx.work / "cam" / method
        resdeep(
            "cam", str(images), "--checkpoint", str(ctx.digits_run), "--method", method,
            "--device", ctx.device, "--out", str(out),
        )  # fmt: skip
        written[method] = len(list(out.glob("*.png")))
        if written[method] != ctx.sizes.cam_images:
            raise RuntimeError(f"{method}: {written[method]} overlays for {ctx.sizes.cam_images}")
    return {"overlays": written}


def on_device_and_cpu(
    ctx: Context, run: Callable[[str], dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """`run(where)` on the device, then on the CPU: each one's result and wall seconds."""
    results, seconds = {}, {}
    for where in (ctx.device, "cpu"):
        started = time.perf_counter()
        results[where] = run(where)
        seconds[where] = time.perf_counter() - started
    return results, seconds


def step_cam_trust(ctx: Context) -> dict[str, Any]:
    """Sanity checks and faithfulness of every method on the digits test split, on the device and
    on the CPU with one seed: the similarities and areas must agree (maps are equal to float
    rounding, so only near-ties can reorder pixels)."""

    def check(where: str) -> dict[str, Any]:
        record = ctx.work / f"cam_trust_{where}.json"
        resdeep(
            "cam", "--checkpoint", str(ctx.digits_run), "--sanity", "--faithfulness",
            "--method", "all", "--steps", "10", "--device", where,
            "--out", str(ctx.work / f"cam_trust_{where}"), "--json", str(record),
        )  # fmt: skip
        return json.loads(record.read_text())

    checked, seconds = on_device_and_cpu(ctx, check)
    results = {}
    for where, record in checked.items():
        values = [
            estimate["mean"]
            for kind in record["sanity"]["randomizations"].values()
            for measures in kind["maps"].values()
            for estimates in measures.values()
            for estimate in estimates
        ]
        values += [
            estimate["mean"]
            for scores in record["faithfulness"]["scores"].values()
            for estimate in scores.values()
        ]
        results[where] = values
    worst = max(abs(a - b) for a, b in zip(results[ctx.device], results["cpu"], strict=True))
    if worst > 0.01:
        raise RuntimeError(
            f"cam --sanity/--faithfulness differ between device and cpu by {worst:.3g}"
        )
    return {
        "worst_abs_gap_to_cpu": worst,
        "seconds_on_device": seconds[ctx.device],
        "seconds_on_cpu": seconds["cpu"],
    }


def step_uncertainty(ctx: Context) -> dict[str, Any]:
    out = ctx.work / "uncertainty.json"
    resdeep(
        "uncertainty", "--checkpoint", str(ctx.digits_run), "--samples", "8",
        "--device", ctx.device, "--json", str(out),
    )  # fmt: skip
    return {"sections": sorted(json.loads(out.read_text()))}


def step_uncertainty_shift(ctx: Context) -> dict[str, Any]:
    """Every shift at three severities on the device and on the CPU. The deterministic pass, its
    temperature-scaled version and the Laplace posterior (its weight samples are drawn on the
    CPU) must agree up to a prediction or two flipped by float rounding; MC dropout draws its
    masks from the device's generator, so it is only timed."""

    def shifted(where: str) -> dict[str, Any]:
        out = ctx.work / f"shift_{where}"
        resdeep(
            "uncertainty", "--checkpoint", str(ctx.digits_run), "--shift", "all",
            "--severities", "0,2,4", "--laplace", "--calibrate", "temperature", "--samples", "8",
            "--device", where, "--out", str(out),
        )  # fmt: skip
        return json.loads((out / "shift.json").read_text())["curves"]

    curves, seconds = on_device_and_cpu(ctx, shifted)
    worst = 0.0
    for kind, methods in curves["cpu"].items():
        for method in ("deterministic", "temperature_scaled", "laplace"):
            for key in ("accuracy", "ece"):
                pairs = zip(
                    curves[ctx.device][kind][method][key]["mean"],
                    methods[method][key]["mean"],
                    strict=True,
                )
                worst = max([worst, *(abs(a - b) for a, b in pairs)])
    if worst > 0.01:
        raise RuntimeError(f"uncertainty --shift differs between device and cpu by {worst:.3g}")
    return {
        "worst_abs_gap_to_cpu": worst,
        "seconds_on_device": seconds[ctx.device],
        "seconds_on_cpu": seconds["cpu"],
    }


def step_lesion(ctx: Context) -> dict[str, Any]:
    """The lesion study on the device and on the CPU: deletions are exact, so every accuracy
    must agree up to a prediction or two flipped by float rounding."""
    results = {}
    for where in (ctx.device, "cpu"):
        out = ctx.work / f"lesion_{where}"
        resdeep(
            "lesion", str(ctx.digits_run), "--paths", "--reorder", "--path-samples", "4",
            "--device", where, "--out", str(out),
        )  # fmt: skip
        (run,) = json.loads((out / "lesion.json").read_text())["runs"]
        results[where] = run
    device, cpu = results[ctx.device], results["cpu"]
    gaps = [
        abs(a["accuracy"] - b["accuracy"])
        for a, b in zip(device["blocks"], cpu["blocks"], strict=True)
        if a["deleted"]
    ]
    worst = max(gaps + [abs(device["intact"]["accuracy"] - cpu["intact"]["accuracy"])])
    if worst > 2 / device["images"]:
        raise RuntimeError(f"lesion accuracies differ by {worst:.4f} between {ctx.device} and cpu")
    return {
        "blocks": len(device["blocks"]),
        "intact_accuracy": device["intact"]["accuracy"],
        "worst_accuracy_gap_to_cpu": worst,
        "path_window": device["paths"]["window"],
    }


def step_signal(ctx: Context) -> dict[str, Any]:
    """The signal study on the device and on the CPU (the same nets, seeded on the CPU, so the
    correlations agree to float rounding), on the digits run too, and one depth-1202 net timed
    on the device."""
    results = {}
    for where in (ctx.device, "cpu"):
        out = ctx.work / f"signal_{where}"
        resdeep(
            "signal", "model.depth=20,56", "model.norm=batch,none", "seed=0", "--pairs", "2",
            "--device", where, "--out", str(out),
        )  # fmt: skip
        grid = json.loads((out / "signal.json").read_text())["nets"]
        resdeep("signal", "--checkpoint", str(ctx.digits_run), "--pairs", "2", "--device",
                where, "--out", str(out / "run"))  # fmt: skip
        run = json.loads((out / "run" / "signal.json").read_text())["nets"]
        results[where] = [net["line"]["neighbour"] or 0.0 for net in grid + run]
    worst = max(abs(a - b) for a, b in zip(results[ctx.device], results["cpu"], strict=True))
    if worst > 0.02:
        raise RuntimeError(f"signal correlations differ by {worst:.4f} between device and cpu")
    deep = 1202 if ctx.device.startswith("cuda") else 110  # CPU mode stays a toy
    started = time.perf_counter()
    resdeep(
        "signal", "model=resnet", f"model.depth={deep}", "seed=0", "--pairs", "1", "--device",
        ctx.device, "--out", str(ctx.work / f"signal_{deep}"),
    )  # fmt: skip
    return {
        "correlations": results[ctx.device],
        "worst_gap_to_cpu": worst,
        f"depth_{deep}_seconds": time.perf_counter() - started,
    }


def step_landscape(ctx: Context) -> dict[str, Any]:
    """The landscape study of the digits run on the device and on the CPU (the same directions,
    drawn on the CPU, so the losses agree to float rounding), then one 21×21 plane timed on
    the device."""
    results = {}
    for where in (ctx.device, "cpu"):
        out = ctx.work / f"landscape_{where}"
        resdeep(
            "landscape", str(ctx.digits_run), "--2d", "--grid", "5", "--points", "5",
            "--between", "init", "--hessian", "--trace-samples", "4", "--subset", "256",
            "--device", where, "--out", str(out),
        )  # fmt: skip
        [run] = json.loads((out / "landscape.json").read_text())["runs"]
        losses = [loss for curve in run["slices"] for loss in curve["loss"]["train"]]
        losses += [loss for row in run["plane"]["loss"]["train"] for loss in row]
        losses += run["interpolation"]["loss"]["train"]
        results[where] = (losses, run["curvature"]["lambda_max"])
    (device_losses, device_max), (cpu_losses, cpu_max) = results[ctx.device], results["cpu"]
    worst = max(
        abs(a - b) / max(abs(b), 1e-6) for a, b in zip(device_losses, cpu_losses, strict=True)
    )
    if worst > 1e-3 or abs(device_max - cpu_max) > 0.01 * abs(cpu_max):
        raise RuntimeError(
            f"landscape differs between device and cpu: losses by {worst:.2e} (relative), "
            f"λmax {device_max:.4g} vs {cpu_max:.4g}"
        )
    started = time.perf_counter()
    resdeep("landscape", str(ctx.digits_run), "--2d", "--directions", "2", "--device",
            ctx.device, "--out", str(ctx.work / "landscape_plane"))  # fmt: skip
    return {
        "worst_relative_loss_gap_to_cpu": worst,
        "lambda_max": device_max,
        "lambda_max_cpu": cpu_max,
        "plane_21x21_seconds": time.perf_counter() - started,
    }


def step_checkpoint_devices(ctx: Context) -> dict[str, Any]:
    import torch

    from resdeep import load_checkpoint

    images = torch.randn(16, 1, 8, 8)
    on_cpu, _ = load_checkpoint(ctx.digits_run, device="cpu")
    on_device, _ = load_checkpoint(ctx.digits_run, device=ctx.device)
    with torch.no_grad():
        cpu_logits = on_cpu(images)
        device_logits = on_device(images.to(ctx.device)).cpu()
        # and back: the CPU copy's weights moved to the device give the device's logits
        back_logits = on_cpu.to(ctx.device)(images.to(ctx.device)).cpu()
    across = (cpu_logits - device_logits).abs().max().item()
    back = (back_logits - device_logits).abs().max().item()
    # cuDNN and the CPU sum in different orders: equal to float32 rounding, not bit for bit
    if across > 1e-3 or back > 1e-5:
        raise RuntimeError(f"logits differ: {across:.2e} across devices, {back:.2e} moved back")
    return {"max_abs_diff_across_devices": across, "max_abs_diff_moved_back": back}


def step_resume_on_cpu(ctx: Context) -> dict[str, Any]:
    import shutil

    run = ctx.work / "resumed_on_cpu"
    shutil.copytree(ctx.digits_run, run)
    resdeep("train", f"trainer.resume={run}", "trainer.epochs=2", "trainer.device=cpu")
    after_cpu = read_metrics(run)
    resdeep("train", f"trainer.resume={run}", "trainer.epochs=3", f"trainer.device={ctx.device}")
    after_back = read_metrics(run)
    if [after_cpu["epochs"], after_back["epochs"]] != [2, 3]:
        raise RuntimeError(
            f"epochs after the resumes: {after_cpu['epochs']}, {after_back['epochs']}"
        )
    return {
        "epochs": [1, after_cpu["epochs"], after_back["epochs"]],
        "test_acc": after_back["test_acc"],
    }


def step_multi_gpu(ctx: Context) -> dict[str, Any]:
    common = [
        "data=synthetic", f"data.num_samples={ctx.sizes.train_images}", "model.depth=20",
        "trainer.epochs=1", "trainer.device=cuda", "trainer.progress=lines",
    ]  # fmt: skip
    spawned = ctx.work / "multi_gpu_spawned"
    resdeep(
        "train", *common, "trainer.devices=2", "trainer.sync_bn=true", f"hydra.run.dir={spawned}"
    )
    launched = ctx.work / "multi_gpu_torchrun"
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "resdeep", "train", *common, f"hydra.run.dir={launched}"],
        check=True, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    return {
        "spawned_world_size": read_metrics(spawned)["world_size"],
        "torchrun_world_size": read_metrics(launched)["world_size"],
    }


def step_bench_quick(ctx: Context) -> dict[str, Any]:
    out = ctx.work / "bench_quick.json"
    resdeep("bench", "--quick", "--device", ctx.device, "--json", str(out))
    return {"benchmarks": len(json.loads(out.read_text()))}


def step_bench(ctx: Context) -> dict[str, Any]:
    out = ctx.work / "bench.json"
    resdeep(
        "bench", "--device", ctx.device, "--repeats", str(ctx.sizes.bench_repeats),
        "--json", str(out),
    )  # fmt: skip
    return {
        record["name"]: {k: record[k] for k in ("value", "unit", "goal", "met")}
        for record in json.loads(out.read_text())
    }


def synthetic_run(
    ctx: Context, name: str, depth: int, precision: str, compile_mode: str | bool, images: int
) -> dict[str, Any]:
    run = ctx.work / name
    sizes = ctx.sizes
    # Val and test each get a tenth of the training images on top.
    val = max(images // 10, sizes.batch)
    resdeep(
        "train",
        "data=synthetic",
        f"data.num_samples={images + 2 * val}",
        f"data.val_size={val}",
        f"data.canvas_size={sizes.image}",
        f"data.batch_size={sizes.batch}",
        "model=resnet",
        f"model.depth={depth}",
        f"trainer.device={ctx.device}",
        f"trainer.precision={precision}",
        f"trainer.compile={str(bool(compile_mode)).lower()}",
        f"trainer.compile_mode={compile_mode or 'default'}",
        "trainer.channels_last=true",
        "trainer.epochs=1",
        f"trainer.log_every={sizes.log_every}",
        "trainer.progress=lines",
        f"hydra.run.dir={run}",
    )
    metrics = read_metrics(run)
    return {
        **throughput(run),
        "steps": metrics["steps"],
        "wall_time_s": metrics["wall_time_s"],
        "train_loss": metrics["train_loss"],
    }


def run_step(name: str, ctx: Context) -> dict[str, Any]:
    if name == "epoch_resnet110_bf16":
        return synthetic_run(ctx, name, ctx.sizes.deep_depth, "bf16", False, ctx.sizes.epoch_images)
    if name.startswith("train_resnet"):
        _, net, precision, kind = name.split("_")
        mode = {"eager": False, "compiled": "default", "cudagraphs": "reduce-overhead"}[kind]
        depth = int(net.removeprefix("resnet"))
        return synthetic_run(ctx, name, depth, precision, mode, ctx.sizes.train_images)
    return {
        "train_digits": step_train_digits,
        "diagnostics": step_diagnostics,
        "cam": step_cam,
        "cam_trust": step_cam_trust,
        "uncertainty": step_uncertainty,
        "uncertainty_shift": step_uncertainty_shift,
        "lesion": step_lesion,
        "signal": step_signal,
        "landscape": step_landscape,
        "checkpoint_devices": step_checkpoint_devices,
        "resume_on_cpu": step_resume_on_cpu,
        "multi_gpu": step_multi_gpu,
        "bench_quick": step_bench_quick,
        "bench": step_bench,
    }[name](ctx)


# ---- the parent: runs each step in a child, records, writes the JSON ------------------------


def environment(device: str) -> dict[str, Any]:
    import torch

    import resdeep

    found: dict[str, Any] = {
        "device": device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "resdeep": resdeep.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        found.update(
            gpu=properties.name,
            gpu_memory_gib=round(properties.total_memory / 2**30, 1),
            compute_capability=f"{properties.major}.{properties.minor}",
            bf16=torch.cuda.is_bf16_supported(),
        )
    return found


def run_child(step: Step, ctx: Context, timeout: float) -> Outcome:
    """One step in a fresh Python process: a crash or a CUDA error there cannot hide the rest."""
    started = time.perf_counter()
    log = ctx.work / f"{step.name}.log"
    command = [
        sys.executable, __file__, "--step", step.name, "--device", ctx.device,
        "--sizes", "cuda" if ctx.sizes == CUDA_SIZES else "cpu", "--work", str(ctx.work),
    ]  # fmt: skip
    try:
        with log.open("w") as sink:
            done = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=sink, text=True, timeout=timeout
            )
    except subprocess.TimeoutExpired:
        return Outcome(
            step.name, step.what, "failed", time.perf_counter() - started,
            f"did not finish within {timeout:.0f} s (log: {log})",
        )  # fmt: skip
    seconds = time.perf_counter() - started
    marked = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode == 0 and marked:
        return Outcome(
            step.name, step.what, "ok", seconds, result=json.loads(marked[-1][len(RESULT_MARK) :])
        )
    error = _last_error_line(log) or f"exited with {done.returncode}"
    return Outcome(step.name, step.what, "failed", seconds, f"{error} (log: {log})")


def _last_error_line(log: Path) -> str | None:
    """resdeep's own one-line error if it printed one, else the step's exception."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for prefix in ("error:", "GPU_CHECK_ERROR "):
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[-1].removeprefix("GPU_CHECK_ERROR ")
    return lines[-1] if lines else None


def write_report(path: Path, report: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(temporary, path)


def throughput_table(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    rows = []
    for outcome in outcomes:
        if outcome.name.startswith(("train_resnet", "epoch_")) and outcome.status == "ok":
            rows.append({"step": outcome.name, **(outcome.result or {})})
    return rows


def check(
    device: str, sizes: Sizes, work: Path, out: Path, budget_s: float, only: set[str] | None
) -> int:
    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    found = environment(device)
    ctx = Context(device, sizes, work)
    report: dict[str, Any] = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "environment": found,
        "sizes": asdict(sizes),
        "work_dir": str(work),
        "budget_s": budget_s,
        "steps": [],
        "throughput": [],
    }
    outcomes: list[Outcome] = []
    by_name: dict[str, Outcome] = {}
    steps = plan(device, sizes, found["gpus"])
    if only:
        unknown = only - {step.name for step in steps}
        if unknown:
            print(f"error: no step named {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        steps = [step for step in steps if step.name in only]
    for step in steps:
        left = budget_s - (time.perf_counter() - started)
        if step.skip:
            outcome = Outcome(step.name, step.what, "skipped", 0.0, step.skip)
        elif step.needs and step.needs in by_name and by_name[step.needs].status != "ok":
            outcome = Outcome(
                step.name, step.what, "skipped", 0.0, f"needs {step.needs}, which did not pass"
            )
        elif left < 20:
            outcome = Outcome(
                step.name,
                step.what,
                "skipped",
                0.0,
                f"the time budget of {budget_s:.0f} s is spent",
            )
        else:
            print(f"… {step.name}: {step.what}", flush=True)
            outcome = run_child(step, ctx, min(step.timeout_s, left))
        outcomes.append(outcome)
        by_name[step.name] = outcome
        mark = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}[outcome.status]
        detail = f" ({outcome.error})" if outcome.error else ""
        print(f"{mark:>7} {outcome.name} {outcome.seconds:.1f} s{detail}", flush=True)
        report["steps"] = [asdict(o) for o in outcomes]
        report["throughput"] = throughput_table(outcomes)
        report["wall_time_s"] = round(time.perf_counter() - started, 1)
        write_report(out, report)
    failed = [o.name for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "failed", "skipped")}
    print(
        f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped in "
        f"{report['wall_time_s']:.0f} s; written to {out}"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--work", type=Path, help="run dirs and logs (default: a new temp dir)")
    parser.add_argument(
        "--budget", type=float, default=480, help="seconds; steps not started by then are skipped"
    )
    parser.add_argument(
        "--only", help="comma-separated step names (a step's inputs must be in --work already)"
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)  # a child running one step
    parser.add_argument("--sizes", choices=("cuda", "cpu"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = CUDA_SIZES if (args.sizes or args.device) == "cuda" else CPU_SIZES
    if args.step:
        ctx = Context(args.device, sizes, args.work)
        try:
            result = run_step(args.step, ctx)
        except BaseException as error:  # noqa: BLE001 - the parent records every failure
            traceback.print_exc()
            message = str(error).strip().splitlines()
            sys.stderr.write(
                f"GPU_CHECK_ERROR {type(error).__name__}: {message[0] if message else ''}\n"
            )
            return 1
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print(
                "no CUDA GPU here: nothing to check (make gpu-check DEVICE=cpu runs the steps on CPU)"
            )
            return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="resdeep-gpu-check-"))
    only = set(args.only.split(",")) if args.only else None
    return check(args.device, sizes, work, args.out, args.budget, only)


if __name__ == "__main__":
    sys.exit(main())
