"""Side-by-side timing: variants interleaved A, B, C, A, B, C, ... after warm-up.

Every variant runs under the same machine load (other jobs on a shared CPU, a GPU's clocks) at
nearly the same moment, so ratios taken within a round stay meaningful when absolute times drift.
A variant times its own window, because only it knows where its work starts and ends (the
resdeep loop is timed from inside its loader, see `WindowClock`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from resdeep.errors import first_line


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a clock read covers it (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], Any]) -> float:
    """Seconds of `work()`, including the device work it queued."""
    synchronize(device)
    started = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - started


@dataclass
class Variant:
    """One thing to time, in windows of a number of units (steps, batches, calls)."""

    name: str
    run: Callable[[int], float]  # run(units) -> seconds of the timed window over `units` units
    max_units: int | None = None  # most units one window can hold (a loader pass's batches)


@dataclass
class Timing:
    """One variant's timed windows: its window size and, per window, what it measured."""

    units_per_window: int
    seconds_per_unit: list[float] = field(default_factory=list)  # window r of round r
    # Per window: the share of its time this process's threads were ready to run but waited
    # for a CPU that other processes held. Near 0 on an idle machine; None off Linux.
    cpu_wait: list[float | None] = field(default_factory=list)

    @property
    def median(self) -> float:
        """The median seconds per unit over the windows."""
        return statistics.median(self.seconds_per_unit)


@dataclass
class Measured:
    """What one interleaved run of variants yields: their timings, and why others failed."""

    timings: dict[str, Timing]
    failures: dict[str, str]  # variant -> why it was not measured
    rounds_rerun: int = 0  # rounds timed again because other processes took the CPU

    def rounds(self, name: str) -> list[float] | None:
        """Seconds per unit of `name`, one per kept round (every variant ran once a round)."""
        timing = self.timings.get(name)
        return None if timing is None else timing.seconds_per_unit


def median_ratio(numerators: list[float] | None, denominators: list[float] | None) -> float | None:
    """The median over rounds of numerator / denominator from the same round: windows timed
    seconds apart share the machine's load, where the medians of each side might not."""
    if numerators is None or denominators is None:
        return None
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


@dataclass(frozen=True)
class Schedule:
    """How variants are timed: how many windows, how long each, and the warm-up before."""

    repeats: int  # timed windows per variant
    window_s: float  # aim for timed windows of about this length...
    max_units: int  # ...but never more units than this in one window
    # Untimed one-unit windows per variant first; the quickest sizes its timed windows. The
    # first pays for torch.compile, oneDNN's kernel choice and the allocator, so never sizes.
    warmup: int = 2
    # A round in which some window waited longer than this share of its time for a CPU held
    # by other processes is timed again, up to repeats // 2 times per group.
    max_cpu_wait: float = 0.1


def interleaved(variants: list[Variant], schedule: Schedule) -> Measured:
    """Warm every variant up, size its window from its quickest warm-up, then time
    `schedule.repeats` rounds of one window per variant, in the given order each round.

    A variant that raises while warming up (say `torch.compile` without a C++ compiler) is
    dropped and its error kept, so one missing feature does not void the other numbers.
    """
    units: dict[str, int] = {}
    failures: dict[str, str] = {}
    for variant in variants:
        try:
            seconds = min(variant.run(1) for _ in range(schedule.warmup))
        except Exception as error:  # reported per variant; the rest still run
            failures[variant.name] = f"{type(error).__name__}: {first_line(error)}"
            continue
        cap = min(schedule.max_units, variant.max_units or schedule.max_units)
        units[variant.name] = max(1, min(cap, round(schedule.window_s / seconds)))
    kept = [variant for variant in variants if variant.name in units]
    measured = Measured({name: Timing(count) for name, count in units.items()}, failures)
    kept_rounds, reruns_left = 0, schedule.repeats // 2
    while kept and kept_rounds < schedule.repeats:
        windows = {variant.name: _window(variant, units[variant.name]) for variant in kept}
        disturbed = any((wait or 0.0) > schedule.max_cpu_wait for _, wait in windows.values())
        if disturbed and reruns_left > 0:
            reruns_left -= 1
            measured.rounds_rerun += 1
            continue
        for name, (seconds, wait) in windows.items():
            measured.timings[name].seconds_per_unit.append(seconds)
            measured.timings[name].cpu_wait.append(wait)
        kept_rounds += 1
    return measured


def _window(variant: Variant, units: int) -> tuple[float, float | None]:
    """(seconds per unit, share of the time spent waiting for a CPU) of one timed window."""
    waited_before, started = cpu_wait_s(), time.perf_counter()
    seconds = variant.run(units)
    elapsed, waited_after = time.perf_counter() - started, cpu_wait_s()
    if waited_before is None or waited_after is None:
        return seconds / units, None
    # Waits of all threads over the time of the threads torch computes with.
    wait = max(0.0, waited_after - waited_before) / (elapsed * torch.get_num_threads())
    return seconds / units, wait


def cpu_wait_s() -> float | None:
    """Seconds this process's threads have spent runnable but waiting for a CPU, from Linux's
    scheduler statistics (the second field of /proc/self/task/*/schedstat); None elsewhere."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    total = 0
    for stat in tasks.glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):  # a thread that ended meanwhile
            continue
    return total / 1e9


class WindowClock:
    """A loader wrapper that times `steps` training steps from inside any loop that consumes it.

    The clock starts once the pass's first batch is made and stops when the loop asks for batch
    `steps`, or leaves the pass after `steps` batches (resdeep's loop stops right after its last
    step), so a window holds exactly `steps` steps and their batches, and nothing of the pass's
    set-up or of the loop's work after its last step (epoch summaries, figures).
    """

    def __init__(self, loader: Any, device: torch.device) -> None:
        self.loader = loader
        self.device = device
        self.steps = 1
        self.seconds = float("nan")  # of the last completed window

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        self.seconds = float("nan")
        started, handed = 0.0, 0
        try:
            for index, batch in enumerate(self.loader):
                if index == 0:
                    synchronize(self.device)
                    started = time.perf_counter()
                elif index == self.steps:
                    synchronize(self.device)
                    self.seconds = time.perf_counter() - started
                handed = index + 1
                yield batch
        finally:
            # The loop left the pass (CPython closes the generator at once): the window ends
            # with the last batch handed out.
            if self.seconds != self.seconds and handed == self.steps:
                synchronize(self.device)
                self.seconds = time.perf_counter() - started

    def window_seconds(self) -> float:
        """The last window's length; an error when the loop stopped before `steps` steps."""
        if self.seconds != self.seconds:  # NaN: the window never closed
            raise RuntimeError(
                f"the loop stopped before {self.steps} steps (loss not finite, or a pass of "
                f"{len(self.loader)} batches is too short)"
            )
        return self.seconds
