"""What a `resdeep cam` call reports, step by step and torch-free (the command imports these to
print them): each explained image with its maps, an input that could not be explained, the
checkpoint picked for the caller, a file written and the benchmark's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resdeep.cam.evaluate import CamBenchmark
    from resdeep.cam.sanity import SanityResult
    from resdeep.cam.trust import FaithfulnessResult


@dataclass(frozen=True)
class ClassMap:
    """One map of one image: the method, what the model predicted, which class the map
    explains, and the files written."""

    method: str
    predicted: str
    predicted_probability: float
    target: str
    target_probability: float
    files: list[Path]

    @property
    def overlay(self) -> Path:
        return self.files[0]


@dataclass(frozen=True)
class ExplainedImage:
    path: Path
    width: int
    height: int
    maps: list[ClassMap] = field(default_factory=list)
    warning: str | None = None  # the input is far from what the checkpoint was trained on


@dataclass(frozen=True)
class BadInput:
    """An input that could not be explained, with the one-line reason."""

    message: str


@dataclass(frozen=True)
class LatestCheckpoint:
    """No checkpoint was named: this one, the latest trained run's under `root`, is used."""

    path: Path
    root: Path


@dataclass(frozen=True)
class Wrote:
    """A file of the whole call (the grid, the JSON record) is written."""

    path: Path


@dataclass(frozen=True)
class Benchmarked:
    """The localisation benchmark of one method on the checkpoint's test split."""

    result: CamBenchmark
    method: str
    data_name: str


@dataclass(frozen=True)
class Warned:
    """Something to know about the result that does not stop the call."""

    message: str


@dataclass(frozen=True)
class SanityChecked:
    """The sanity checks of every method on the evaluated images."""

    result: SanityResult
    evaluated_on: str


@dataclass(frozen=True)
class FaithfulnessScored:
    """Deletion, insertion and ROAD of every method and baseline on the evaluated images."""

    result: FaithfulnessResult
    evaluated_on: str


CamEvent = (
    LatestCheckpoint
    | BadInput
    | ExplainedImage
    | Wrote
    | Benchmarked
    | SanityChecked
    | Warned
    | FaithfulnessScored
)
