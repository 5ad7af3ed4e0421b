"""What `resdeep cam --sanity / --faithfulness` is asked to compute, checked before any work;
torch-free, so a plain `resdeep cam` call checks its options without loading the checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from resdeep.cam.defaults import DEFAULT_STEPS
from resdeep.choices import CAM_RANDOMIZATIONS
from resdeep.errors import UsageError

Progress = Callable[[str, int], None]  # (what is being done, how many steps it takes), then
# each call with an empty description advances one step


@dataclass(frozen=True)
class TrustSettings:
    """What --sanity and --faithfulness compute; the methods, layer and batch size are the
    call's own (ExplainSettings)."""

    seed: int = 0
    sanity: bool = False
    randomizations: tuple[str, ...] = CAM_RANDOMIZATIONS
    permuted: Path | None = None  # a run trained with data.permute_labels=true
    other_seed: Path | None = None  # a second true-label run, the data test's reference
    faithfulness: bool = False
    steps: int = DEFAULT_STEPS
    road: bool = True

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise UsageError(f"--seed must be 0 or more, got {self.seed}")
        if self.steps < 2:
            raise UsageError(f"--steps must be at least 2, got {self.steps}")
        if self.other_seed is not None and self.permuted is None:
            raise UsageError(
                "--other-seed is the data-randomisation test's reference; give --permuted too"
            )
        if (self.permuted is not None) and not self.sanity:
            raise UsageError("--permuted is a sanity check; add --sanity")
        if not self.sanity and self.randomizations != CAM_RANDOMIZATIONS:
            raise UsageError("--randomization is a --sanity option; add --sanity")
        if not self.faithfulness and (self.steps != DEFAULT_STEPS or not self.road):
            raise UsageError("--steps and --no-road are --faithfulness options; add --faithfulness")
        for path, option in ((self.permuted, "--permuted"), (self.other_seed, "--other-seed")):
            if path is not None and not path.exists():
                raise UsageError(f"{option} {path}: no such run directory or checkpoint")


def parse_randomizations(value: str) -> tuple[str, ...]:
    """--randomization: cascading, independent, both, or the two separated by a comma."""
    kinds = CAM_RANDOMIZATIONS if value == "both" else tuple(dict.fromkeys(value.split(",")))
    if not set(kinds) <= set(CAM_RANDOMIZATIONS):
        raise UsageError(
            f"--randomization must be {', '.join(CAM_RANDOMIZATIONS)} or both, got {value!r}"
        )
    return kinds
