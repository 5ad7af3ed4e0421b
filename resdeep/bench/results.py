"""Benchmark results and the context they were measured in, as JSON records."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from resdeep.bench.timing import Measured


@dataclass
class BenchResult:
    """One benchmark's number with its unit and goal, and how it was measured."""

    name: str
    value: float | None  # None: not measured (the reason is in detail["error"])
    unit: str
    goal: str | None  # ">= 0.97", "<= 0.05", or None for numbers that are only reported
    what: str
    detail: dict[str, Any] = field(default_factory=dict)
    judged: bool = True  # False at --quick's toy sizes: a goal there says nothing

    @property
    def met(self) -> bool | None:
        """Whether the value reaches its goal; None when there is no goal, no value, or no
        judging (--quick)."""
        if self.goal is None or self.value is None or not self.judged:
            return None
        relation, threshold = self.goal.split()
        if relation == ">=":
            return self.value >= float(threshold)
        return self.value <= float(threshold)

    def record(self, context: dict[str, Any]) -> dict[str, Any]:
        """One JSON object. Each carries its context, so files from a CPU and a GPU can simply
        be concatenated into one list."""
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "goal": self.goal,
            "met": self.met,
            "judged": self.judged,
            "what": self.what,
            "detail": self.detail,
            "context": context,
        }


def result(
    name: str,
    value: float | None,
    unit: str,
    goal: str | None,
    what: str,
    measured: Measured | None = None,
    variants: tuple[str, ...] = (),
    **extra: Any,
) -> BenchResult:
    """A result whose detail holds, per variant it came from, the median seconds per unit, the
    units per window, and per window its seconds per unit and the share of its time the process
    waited for a CPU held by others; or why the variant was not measured."""
    detail: dict[str, Any] = dict(extra)
    errors: dict[str, list[str]] = {}  # reason -> the variants it stopped
    for variant in variants if measured is not None else ():
        if variant in measured.failures:
            errors.setdefault(measured.failures[variant], []).append(variant)
        elif variant in measured.timings:
            timing = measured.timings[variant]
            detail[variant] = {
                "median_s": timing.median,
                "units_per_window": timing.units_per_window,
                "windows_s": [round(seconds, 6) for seconds in timing.seconds_per_unit],
                "cpu_wait": [None if w is None else round(w, 3) for w in timing.cpu_wait],
            }
    if errors:
        detail["error"] = "; ".join(f"{', '.join(names)}: {why}" for why, names in errors.items())
    if measured is not None and measured.rounds_rerun:
        detail["rounds_rerun"] = measured.rounds_rerun
    return BenchResult(name, value, unit, goal, what, detail)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either side was not measured."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def bf16_supported(device: torch.device) -> bool:
    """Native bf16 kernels: avx512_bf16 or AMX through oneDNN on CPU, Ampere or later on CUDA."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:  # the check torch's own tests use; private, so absent means unknown: no
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def measurement_context(device: torch.device, *, repeats: int, quick: bool) -> dict[str, Any]:
    """Where and how the numbers were measured: device, torch, threads, repeats, load."""
    return {
        "device": str(device),
        "device_name": _device_name(device),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": _cpu_flags(),
        "repeats": repeats,
        "quick": quick,
        "load_average_1m": load_average(),
    }


def load_average() -> float | None:
    """The 1-minute load average: above the core count, other jobs compete for the CPU."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    """The CPU features that decide the fast paths: AVX-512, bf16 dot products, AMX tiles."""
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return [
                f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags
            ]
    return []


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return ""
