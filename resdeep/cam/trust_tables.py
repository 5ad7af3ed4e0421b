"""The tables `resdeep cam --sanity / --faithfulness` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from resdeep.cam.sanity import SanityResult
    from resdeep.cam.similarity import Estimate
    from resdeep.cam.trust import FaithfulnessResult


def interval(estimate: Estimate, digits: int = 2) -> str:
    return f"{estimate.mean:.{digits}f} [{estimate.low:.{digits}f}, {estimate.high:.{digits}f}]"


def sanity_tables(result: SanityResult, evaluated_on: str) -> list[Table]:
    """Per randomisation kind: rows method x measure, columns the steps."""
    from resdeep.cam.sanity import CONTROL, MEASURE_LABELS, MEASURES

    tables = []
    for randomization in result.randomizations:
        table = Table(
            title=f"{randomization.kind} randomisation on the {evaluated_on} ({result.images} "
            "images): similarity to the trained net's maps, mean [95 % interval]",
            title_justify="left",
        )
        table.add_column("map")
        table.add_column("measure")
        for step in randomization.steps:
            table.add_column(step.label, justify="right")
        for name in (*result.methods, CONTROL):
            for number, measure in enumerate(MEASURES):
                values = randomization.estimates[name][measure]
                table.add_row(
                    name if number == 0 else "",
                    MEASURE_LABELS[measure],
                    *(interval(e) for e in values),
                    end_section=number == len(MEASURES) - 1,
                )
        tables.append(table)
    if result.data is not None:
        nets = list(next(iter(result.data.values())))
        table = Table(
            title="data randomisation: similarity to the trained net's maps, mean [95 % interval]",
            title_justify="left",
        )
        table.add_column("method")
        table.add_column("measure")
        for net in nets:
            table.add_column(f"net of {net}", justify="right")
        for method in result.methods:
            for number, measure in enumerate(MEASURES):
                table.add_row(
                    method if number == 0 else "",
                    MEASURE_LABELS[measure],
                    *(interval(result.data[method][net][measure]) for net in nets),
                    end_section=number == len(MEASURES) - 1,
                )
        tables.append(table)
    return tables


def faithfulness_tables(result: FaithfulnessResult, evaluated_on: str) -> list[Table]:
    """The scores of every map set, then each method's verdict against each baseline."""
    from resdeep.cam.faithfulness import SCORE_LABELS

    estimates = result.estimates
    scores = list(next(iter(estimates.values())))
    table = Table(
        title=f"faithfulness on the {evaluated_on} ({result.images} images, {result.steps} "
        "steps): mean [95 % interval]",
        title_justify="left",
    )
    table.add_column("map")
    for score in scores:
        table.add_column(SCORE_LABELS[score], justify="right")
    for name in result.scores:
        table.add_row(
            name,
            *(interval(estimates[name][s], 3) for s in scores),
            end_section=name == result.methods[-1],
        )
    verdicts = result.verdicts
    against = Table(
        title="each method against each baseline (paired over the images; a verdict only where "
        "the difference's 95 % interval excludes 0)",
        title_justify="left",
    )
    against.add_column("method")
    against.add_column("baseline")
    for score in scores:
        against.add_column(SCORE_LABELS[score], justify="right")
    marks = {
        "better": "[green]better[/]",
        "worse": "[red]worse[/]",
        "not separated": "–",
        "too few images": "too few images",
    }
    for method in result.methods:
        for number, baseline in enumerate(result.baselines):
            against.add_row(
                method if number == 0 else "",
                baseline,
                *(marks[verdicts[method][baseline][s]["verdict"]] for s in scores),
                end_section=number == len(result.baselines) - 1,
            )
    return [table, against]
