"""The training-side variants: resdeep's real loop, the bare loop it is compared with, the input
pipeline alone, and a matmul that measures what the device can do at all."""

from __future__ import annotations

import copy
import itertools
import os
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resdeep.bench.timing import Variant, WindowClock, timed
from resdeep.config import compose_train_config
from resdeep.console import console
from resdeep.data import DeviceLoader
from resdeep.data.splits import Split
from resdeep.train.build import Training, build_training
from resdeep.train.loop import autocast_context
from resdeep.train.progress import TrainingProgress

NEVER = sys.maxsize  # a log_every no step count reaches: nothing is ever logged

# The paper's optimizer, written as a researcher would: torch's own defaults for the rest.
BARE_SGD = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}


def build_bench_training(
    run_dir: Path,
    *,
    device: torch.device,
    depth: int,
    batch_size: int,
    image_size: int,
    num_samples: int,
    precision: str = "32",
    compile_model: bool = False,
    compile_mode: str = "default",
) -> Training:
    """resdeep's own objects for a ResNet on synthetic images, every other setting at its
    default: the loop, its TensorBoard logger and its gradient-norm tracker included."""
    cfg = compose_train_config(
        [
            "data=synthetic",
            f"data.num_samples={num_samples}",
            f"data.batch_size={batch_size}",
            f"data.canvas_size={image_size}",
            "model=resnet",
            f"model.depth={depth}",
            f"trainer.device={device}",
            f"trainer.precision={precision}",
            f"trainer.compile={str(compile_model).lower()}",
            f"trainer.compile_mode={compile_mode}",
            "trainer.epochs=null",
            f"trainer.max_steps={10**9}",  # the schedule stays at its base lr while we time
        ]
    )
    return build_training(cfg, run_dir)


@contextmanager
def progress_bar_off_screen() -> Iterator[None]:
    """Keep the training loop's rich progress bar (its per-step cost included) off the screen:
    the shared console writes to the null device meanwhile."""
    with open(os.devnull, "w") as sink:
        # The console's own setting, not the stream it resolves to: None means "whatever
        # sys.stdout is when printing", which a test's or a redirect's stream must not replace.
        previous = vars(console).get("_file")
        console.file = sink
        try:
            yield
        finally:
            console.file = previous


class ResdeepLoop:
    """`TrainingLoop.train_epoch`, resdeep's real step loop, timed over windows of steps.

    One loop serves several variants that differ only in how often they log (gradient norms and
    the diagnostics).
    """

    def __init__(self, training: Training, progress: TrainingProgress) -> None:
        self.loop = training.loop
        self.clock = WindowClock(self.loop.train_loader, self.loop.device)
        self.loop.train_loader = self.clock
        self.progress = progress

    def variant(self, name: str, log_every: int) -> Variant:
        """The loop logging every `log_every` steps (`NEVER`: not at all), timed per step."""

        def run(steps: int) -> float:
            self.clock.steps = steps
            # A window of `steps` steps with its own log interval; the run's settings stay.
            # Its figures come after the window closes: untimed, so not drawn at all.
            window = replace(
                self.loop.settings,
                log_every=log_every,
                total_steps=self.loop.state.step + steps,
                epoch_images=False,
            )
            self.loop.train_epoch(self.loop.state.epoch + 1, self.progress, window)
            return self.clock.window_seconds()

        return Variant(name, run)


class BareLoop:
    """The loop a researcher writes by hand: forward, cross-entropy, backward, SGD, nothing
    else. It trains its own copy of the model on the same batches as the resdeep loop."""

    def __init__(
        self,
        model: nn.Module,
        loader: DeviceLoader,
        device: torch.device,
        *,
        precision: str = "32",
        channels_last: bool = False,
        compile_model: bool = False,
    ) -> None:
        model = copy.deepcopy(model)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model.to(memory_format=self.memory_format)
        self.optimizer = torch.optim.SGD(model.parameters(), **BARE_SGD)
        self.model = torch.compile(model) if compile_model else model
        self.autocast = autocast_context(device, precision)
        self.clock = WindowClock(loader, device)

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """One training step: forward, cross-entropy, backward, SGD."""
        images = images.contiguous(memory_format=self.memory_format)
        with self.autocast():
            loss = F.cross_entropy(self.model(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def run(self, steps: int) -> float:
        """Seconds of `steps` training steps on the next pass of the loader."""
        self.model.train()
        self.clock.steps = steps
        for index, (images, labels) in enumerate(self.clock):
            if index == steps:
                break
            self.step(images, labels)
        return self.clock.window_seconds()


def training_step_flops(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> int:
    """FLOPs of one forward and backward pass (a multiply-add counts 2), by torch's counter."""
    model = copy.deepcopy(model).train()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(images), labels).backward()
    return counter.get_total_flops()


def augmenting_loader(
    *, device: torch.device, batch_size: int, image_size: int, count: int
) -> DeviceLoader:
    """A CIFAR-like input pipeline: uint8 images on the device, 4-pixel pad + random crop and
    flips per batch, normalised, exactly as `resdeep train` feeds CIFAR-10."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, image_size, image_size), generator=generator)
    split = Split(images.to(torch.uint8), torch.randint(0, 10, (count,), generator=generator))
    return DeviceLoader(
        split,
        batch_size=batch_size,
        mean=(0.49, 0.48, 0.45),
        std=(0.25, 0.24, 0.26),
        device=device,
        shuffle=True,
        augment=True,
        pad_crop=4,
        flip=True,
        drop_last=True,
        generator=generator,
    )


def pipeline_variant(loader: DeviceLoader, device: torch.device) -> Variant:
    """Batches of the input pipeline alone, pass after pass; each pass plans its own epoch."""
    passes = itertools.chain.from_iterable(iter(loader) for _ in itertools.count())

    def run(batches: int) -> float:
        # A zero-length deque consumes the batches without keeping any alive.
        return timed(device, lambda: deque(itertools.islice(passes, batches), maxlen=0))

    return Variant("pipeline", run)


def matmul_variant(device: torch.device, size: int) -> Variant:
    """Square fp32 matmuls: the device's practical FLOP/s for the utilisation ratio."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(device) for _ in range(2))
    out = torch.empty_like(a)

    def run(count: int) -> float:
        def work() -> None:
            for _ in range(count):
                torch.mm(a, b, out=out)

        return timed(device, work)

    return Variant("matmul", run)
