"""One function over many checkpoints, on the CPU's cores: the analysis tools' worker pool."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch

Item = TypeVar("Item")
Result = TypeVar("Result")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def map_on_cores(
    function: Callable[..., Result],
    items: Sequence[Item],
    *args: Any,
    device: torch.device,
    jobs: int,
) -> Iterator[Result]:
    """function(item, *args) for each item, in order. On the CPU, `jobs` worker processes share
    the cores (one thread each when there are as many jobs as cores): a small net's convolutions
    do not keep two threads busy, so two nets at once finish sooner than one after the other.
    On a GPU, or with one job, in this process. `function` must be importable (a module-level
    function), since the workers are spawned."""
    jobs = max(1, min(jobs, len(items)))
    if jobs == 1 or device.type != "cpu":
        for item in items:
            yield function(item, *args)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, available_cores() // jobs)
    context = multiprocessing.get_context("spawn")  # no fork of a process that runs OpenMP
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=torch.set_num_threads, initargs=(threads,)
    ) as pool:
        yield from pool.map(function, items, *([arg] * len(items) for arg in args))
