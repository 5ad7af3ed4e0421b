"""One `resdeep cam` call: what it asks for, checked before any work, and `run_cam`, which
answers it step by step (the checkpoint, each image's maps, the grid, the benchmark, the JSON
record) as events a caller prints as they come."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from resdeep.cam.defaults import DEFAULT_THRESHOLD
from resdeep.cam.explain import (
    ExplainSettings,
    benchmark_checkpoint,
    expand_inputs,
    explain_images,
)
from resdeep.cam.outputs import draw_grid, image_record, model_name
from resdeep.cam.render import make_folder
from resdeep.cam.results import (
    BadInput,
    Benchmarked,
    CamEvent,
    ExplainedImage,
    FaithfulnessScored,
    LatestCheckpoint,
    SanityChecked,
    Warned,
    Wrote,
)
from resdeep.cam.trust_settings import Progress, TrustSettings
from resdeep.checkpoint import CheckpointInfo, load_checkpoint
from resdeep.choices import CAM_METHODS
from resdeep.device import resolve_device
from resdeep.errors import ResdeepError, UsageError
from resdeep.io import save_json_atomic
from resdeep.models import ConvNet
from resdeep.output_paths import check_output_path
from resdeep.runs import DEFAULT_RUNS_ROOT, latest_checkpoint


def parse_methods(value: str) -> tuple[str, ...]:
    """`--method`: one method, several separated by commas (each once), or all."""
    methods = CAM_METHODS if value == "all" else tuple(dict.fromkeys(value.split(",")))
    unknown = [m for m in methods if m not in CAM_METHODS]
    if unknown:
        raise UsageError(
            f"unknown method {unknown[0]!r}; choose from {', '.join(CAM_METHODS)} or all"
        )
    return methods


@dataclass(frozen=True)
class CamRequest:
    """Everything one call asks for, checked on construction: an option or output path that
    cannot work as typed is refused with one line before any checkpoint is read."""

    inputs: tuple[Path, ...]  # image files and directories of them; may be empty with evaluate
    explain: ExplainSettings  # how the maps are drawn (and, with evaluate, which one method)
    checkpoint: Path | None = None  # a file or run dir; None: the latest trained run's best.pt
    evaluate: bool = False  # also benchmark the maps on the checkpoint's test split
    threshold: float = DEFAULT_THRESHOLD  # the benchmark's box, as a fraction of the map's max
    grid: Path | None = None  # a PNG of every input by every method (or top-k class)
    json_path: Path | None = None  # the call's record: per image, and the benchmark's
    device: str = "auto"
    # --sanity / --faithfulness: checked on the inputs when given, else on the test split; the
    # figures go to explain.out.
    trust: TrustSettings | None = None
    progress: Progress | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.grid is not None and self.grid.suffix.lower() != ".png":
            raise UsageError(
                f"--grid writes a PNG; give a file ending in .png, not {self.grid.name}"
            )
        if not self.inputs and not self.evaluate and self.trust is None:
            raise UsageError(
                "give image files or directories, or --evaluate, --sanity or --faithfulness"
            )
        if not 0.0 <= self.threshold <= 1.0:
            raise UsageError(
                f"--threshold is a fraction of the map's max in [0, 1], got {self.threshold}"
            )
        if self.inputs or self.trust is not None:
            check_output_path(self.explain.out, "--out", folder=True)
        for written, option in ((self.grid, "--grid"), (self.json_path, "--json")):
            if written is not None:
                check_output_path(written, option)


def run_cam(request: CamRequest) -> Iterator[CamEvent]:
    """The request's results in order, each as soon as it is known. Inputs that could not be
    explained are results too; after everything else, a ResdeepError says how many there were."""
    path = request.checkpoint
    if path is None:
        path = latest_checkpoint(DEFAULT_RUNS_ROOT)
        yield LatestCheckpoint(path, DEFAULT_RUNS_ROOT)
    model, info = load_checkpoint(path, device=resolve_device(request.device))
    request.explain.check_against(model, info)

    record: dict[str, Any] = {}
    failures = 0
    if request.inputs:
        record, failures = yield from _explain(request, model, info)
    if request.evaluate:
        benchmarks = {}
        for method in request.explain.methods:
            result, benchmarks[method] = benchmark_checkpoint(
                model,
                info,
                method=method,
                layer=request.explain.layer,
                threshold=request.threshold,
                batch_size=request.explain.batch_size,
            )
            yield Benchmarked(result, method, info.data_name)
        # One method: its record as it always was; several: each under its name.
        evaluation = (
            benchmarks[method]
            if len(benchmarks) == 1
            else {"checkpoint": str(info.path), "data": info.data_name, "split": "test",
                  "benchmarks": benchmarks}
        )  # fmt: skip
        record = {**record, "evaluate": evaluation} if request.inputs else evaluation
    if request.trust is not None:
        checked = yield from _check_trust(request, model, info)
        record = {**record, **checked}
    if request.json_path is not None:
        save_json_atomic(record, request.json_path)
        yield Wrote(request.json_path)
    if failures:
        raise ResdeepError(f"{failures} input(s) could not be processed; see the lines above")


def _explain(
    request: CamRequest, model: ConvNet, info: CheckpointInfo
) -> Generator[CamEvent, None, tuple[dict[str, Any], int]]:
    """Each input's result, then the grid; returns (the JSON record, inputs that failed)."""
    settings = replace(request.explain, model_name=model_name(info))
    explained: list[ExplainedImage] = []
    failures = 0
    for item in explain_images(model, info, list(request.inputs), settings):
        if isinstance(item, BadInput):
            failures += 1
        else:
            explained.append(item)
        yield item
    if request.grid is not None and explained:
        draw_grid(request.grid, explained, settings)
        yield Wrote(request.grid)
    record = {
        "checkpoint": str(info.path),
        "model": settings.model_name,
        "crop": settings.crop,
        "images": [image_record(item) for item in explained],
    }
    return record, failures


def _check_trust(
    request: CamRequest, model: ConvNet, info: CheckpointInfo
) -> Generator[CamEvent, None, dict[str, Any]]:
    """The sanity checks and faithfulness scores, their figures; returns their JSON record."""
    # The checks load torchvision, torchmetrics and scipy's solvers: only when asked for.
    from resdeep.cam.trust import (
        check_faithfulness,
        check_sanity,
        file_images,
        test_split_images,
    )
    from resdeep.cam.trust_figures import (
        faithfulness_figure,
        sanity_examples_figure,
        sanity_figure,
    )

    settings = request.trust
    assert settings is not None
    if request.inputs:
        paths, _ = expand_inputs(list(request.inputs))  # problems were reported with the maps
        evaluated = file_images(
            model, info, paths, request.explain.crop, request.explain.batch_size
        )
    else:
        evaluated = test_split_images(model, info, request.explain.batch_size)
    record: dict[str, Any] = {"checkpoint": str(info.path), "evaluated_on": evaluated.name}
    title = f"{model_name(info)} · {evaluated.name}"
    out = request.explain.out
    make_folder(out)
    known = None
    if settings.sanity:
        sanity = check_sanity(model, info, evaluated, settings, request.explain, request.progress)
        for warning in sanity.warnings:
            yield Warned(warning)
        yield SanityChecked(sanity, evaluated.name)
        record["sanity"] = sanity.to_dict()
        yield Wrote(sanity_figure(sanity, out / "sanity.png", title))
        if "cascading" in settings.randomizations:
            yield Wrote(sanity_examples_figure(sanity, out / "sanity_examples.png", title))
        known = sanity.originals
    if settings.faithfulness:
        scored = check_faithfulness(
            model, evaluated, settings, request.explain, request.progress, known
        )
        yield FaithfulnessScored(scored, evaluated.name)
        record["faithfulness"] = scored.to_dict()
        yield Wrote(faithfulness_figure(scored, out / "faithfulness.png", title))
    return record
