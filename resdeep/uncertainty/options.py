"""What `resdeep uncertainty` is asked, checked before any net is loaded: each mistake is one
line naming the option, exit 2 (a missing ensemble member, as a missing file: exit 1)."""

from __future__ import annotations

import math
from pathlib import Path

from resdeep.choices import LAPLACE_PRIORS
from resdeep.errors import UsageError
from resdeep.output_paths import check_output_path
from resdeep.runs import holds_runs, is_run_dir
from resdeep.uncertainty.data import SPLITS, check_ood_name
from resdeep.uncertainty.sampling import check_samples
from resdeep.uncertainty.shift import parse_kinds, parse_severities

CALIBRATIONS = ("temperature",)


def check_request(
    *,
    images: list[Path],
    checkpoint: Path | None,
    ensemble: list[Path],
    samples: int,
    split: str,
    ood_data: str | None,
    calibrate: str | None,
    bins: int,
    outputs: dict[str, Path | None],
    laplace: bool = False,
    laplace_prior: str | None = None,
    shift: str | None = None,
    severities: str | None = None,
) -> dict[str, list[int]] | None:
    """Every option alone and together; `outputs` maps --json, --save-probs, --plot and --out
    (folders) to their paths, checked as typed before any work. Returns the severities of each
    --shift kind (None without --shift)."""
    check_samples(samples)
    if laplace_prior is not None:
        if not laplace:
            raise UsageError("--laplace-prior belongs to --laplace; add --laplace")
        check_laplace_prior(laplace_prior)
    if laplace and images:
        raise UsageError("--laplace scores a data set; drop it when giving images")
    if bins < 1:
        raise UsageError(f"--bins must be at least 1, got {bins}")
    if split not in SPLITS:
        raise UsageError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if laplace_prior == "val-nll" and split == "val":
        raise UsageError(
            "--laplace-prior val-nll chooses its prior on the val split: score the test split "
            "(--split test), or choose it by --laplace-prior marglik"
        )
    shifts = _check_shift(
        shift, severities, images=images, split=split, ood_data=ood_data, outputs=outputs
    )
    if ood_data is not None:
        check_ood_name(ood_data)
    if images:
        _refuse_runs_as_images(images, ensemble, checkpoint)
        if ood_data is not None or outputs.get("--plot") is not None:
            raise UsageError("--ood-data and --plot score a data set; drop them when giving images")
        if ensemble:
            raise UsageError("--ensemble scores a data set; drop it when giving images")
    if calibrate is not None:
        if calibrate not in CALIBRATIONS:
            raise UsageError(f"--calibrate knows temperature, got {calibrate!r}")
        if images or split == "val":
            raise UsageError(
                "--calibrate fits its temperature on the val split: score the test split "
                "(no images, --split test)"
            )
    for option, path in outputs.items():
        if path is not None:
            check_output_path(path, option, folder=option in ("--plot", "--out"))
    return shifts


def check_laplace_prior(prior: str) -> None:
    if prior in LAPLACE_PRIORS:
        return
    try:
        value = float(prior)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(
            f"--laplace-prior takes {' or '.join(LAPLACE_PRIORS)} or a positive number, "
            f"got {prior!r}"
        )


def _check_shift(
    shift: str | None,
    severities: str | None,
    *,
    images: list[Path],
    split: str,
    ood_data: str | None,
    outputs: dict[str, Path | None],
) -> dict[str, list[int]] | None:
    if shift is None:
        if severities is not None or outputs.get("--out") is not None:
            option = "--severities" if severities is not None else "--out"
            raise UsageError(f"{option} belongs to --shift; add e.g. --shift rotation")
        return None
    if images:
        raise UsageError("--shift corrupts the test split; drop the images")
    if split != "test":
        raise UsageError(
            "--shift corrupts the test split (the val split fits temperature and Laplace "
            "priors, so it stays clean); drop --split val"
        )
    if ood_data is not None:
        raise UsageError("--shift and --ood-data are separate questions; run them one at a time")
    for option in ("--json", "--plot"):
        if outputs.get(option) is not None:
            raise UsageError(
                f"with --shift the numbers and the figure go to --out (shift.json, shift.png); "
                f"drop {option}"
            )
    kinds = parse_kinds(shift)
    return parse_severities(severities, kinds)


def _refuse_runs_as_images(
    images: list[Path], ensemble: list[Path], checkpoint: Path | None
) -> None:
    """A run or sweep dir among the images is a net meant as --checkpoint or --ensemble (the
    option takes one value each time: `--ensemble A B` leaves B here): say what to type."""
    runs = [p for p in images if p.is_dir() and (is_run_dir(p) or holds_runs(p))]
    if not runs:
        return
    what = f"{', '.join(str(p) for p in runs)}: " + (
        "a run directory, not an image" if len(runs) == 1 else "run directories, not images"
    )
    if ensemble or len(runs) > 1:
        spelled = " ".join(f"--ensemble {p}" for p in dict.fromkeys([*ensemble, *runs]))
        raise UsageError(f"{what}; --ensemble takes one run or sweep dir each time: {spelled}")
    if checkpoint is None:
        raise UsageError(f"{what}; score it with --checkpoint {runs[0]}")
    raise UsageError(f"{what}; for an ensemble: --ensemble {checkpoint} --ensemble {runs[0]}")
