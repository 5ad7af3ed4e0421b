"""`resdeep bench`: resdeep's loop and analysis tools timed side by side with bare PyTorch."""

from resdeep.bench.results import BenchResult
from resdeep.bench.sizes import FULL, QUICK, Sizes
from resdeep.bench.suite import REQUIRED_NAMES, BenchReport, run_suite

__all__ = [
    "FULL",
    "QUICK",
    "REQUIRED_NAMES",
    "BenchReport",
    "BenchResult",
    "Sizes",
    "run_suite",
]
