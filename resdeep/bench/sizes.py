"""What the benchmark suite measures: its full sizes, and --quick's toy sizes of the same code."""

from __future__ import annotations

from dataclasses import dataclass

from resdeep.bench.timing import Schedule


@dataclass(frozen=True)
class Sizes:
    """What is measured: the full suite, or a smoke test of the same code at toy sizes.

    Result names keep the full suite's sizes (resnet20, batch64); `what` says what ran.
    """

    quick: bool
    batch: int  # training batch
    image: int  # square input side
    shallow_depth: int  # the resnet20 slot
    deep_depth: int  # the resnet110 slot
    max_steps: int  # most training steps in one window (sizes the synthetic data)
    pipeline_images: int  # uint8 images the input pipeline cycles through
    mc_images: int  # images per MC-dropout call
    cam_batch: int
    compile: bool  # time torch.compile variants (a cold compile is slow on a CPU)
    threads: int | None  # torch threads; None keeps torch's default (one per core)
    schedule: Schedule

    def named(self, name: str) -> str:
        """A full-suite result name at these sizes: resnet20 -> resnet8 for --quick."""
        return name.replace("resnet110", f"resnet{self.deep_depth}").replace(
            "resnet20", f"resnet{self.shallow_depth}"
        )

    def depth(self, slot: str) -> int:
        """The depth that fills a full-suite slot: resnet20 -> shallow, resnet110 -> deep."""
        return self.shallow_depth if slot == "resnet20" else self.deep_depth


FULL = Sizes(
    quick=False,
    batch=128,
    image=32,
    shallow_depth=20,
    deep_depth=110,
    max_steps=50,
    pipeline_images=10_240,
    mc_images=256,
    cam_batch=64,
    compile=True,
    threads=None,
    schedule=Schedule(repeats=7, window_s=1.0, max_units=2000),
)
# Numbers from --quick say only that every path runs; they are not performance figures.
QUICK = Sizes(
    quick=True,
    batch=16,
    image=16,
    shallow_depth=8,
    deep_depth=14,
    max_steps=3,
    pipeline_images=256,
    mc_images=32,
    cam_batch=64,
    compile=False,
    # Toy sizes gain nothing from threads, and one thread cannot stall waiting for another
    # that a busy shared machine has descheduled.
    threads=1,
    schedule=Schedule(repeats=1, window_s=0.02, max_units=50),
)
