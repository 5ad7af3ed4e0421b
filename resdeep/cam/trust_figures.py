"""The pictures of the sanity checks and faithfulness scores: similarity against randomisation
depth (Adebayo et al.'s layout), example maps as the net is randomised, and the mean deletion
and insertion curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from resdeep.cam.render import get_colormap, writing_to
from resdeep.cam.sanity import CONTROL, MEASURE_LABELS, MEASURES, SanityResult
from resdeep.cam.trust import FaithfulnessResult

DPI = 110
CONTROL_STYLE = {"color": "0.45", "linestyle": "--"}


def _save(figure: Figure, path: Path) -> Path:
    with writing_to(path):
        figure.savefig(path, dpi=DPI)
    return path


def _colors(names: tuple[str, ...]) -> dict[str, tuple]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {name: palette(index % 10) for index, name in enumerate(names)}


def _lowest(estimates: dict, measure: str) -> float:
    """The lowest interval end of a measure over every map and step (negative correlations
    must stay in view)."""
    return min(e.low for by_measure in estimates.values() for e in by_measure[measure])


def sanity_figure(result: SanityResult, path: Path, title: str) -> Path:
    """Rows: each randomisation kind (and the data test); columns: each similarity measure.
    Lines: the methods and the image-only control, bands: the 95 % intervals."""
    rows = len(result.randomizations) + (result.data is not None)
    figure = Figure(figsize=(4.2 * len(MEASURES), 3.4 * rows), layout="constrained")
    axes = np.atleast_2d(figure.subplots(rows, len(MEASURES), squeeze=False))
    colors = _colors(result.methods)
    for row, randomization in enumerate(result.randomizations):
        # Cascading steps form a path from the trained net; independent ones each stand alone.
        alone = randomization.kind == "independent"
        labels = [*([] if alone else ["trained"]), *(step.label for step in randomization.steps)]
        at = np.arange(len(labels))
        for column, measure in enumerate(MEASURES):
            axis = axes[row, column]
            for name in (*result.methods, CONTROL):
                estimates = randomization.estimates[name][measure]
                means = [1.0, *(e.mean for e in estimates)]
                lows = [1.0, *(e.low for e in estimates)]
                highs = [1.0, *(e.high for e in estimates)]
                if alone:
                    offset = 0.06 * result.methods.index(name) if name in colors else 0.0
                    axis.errorbar(
                        at + offset,
                        means[1:],
                        yerr=[np.subtract(means[1:], lows[1:]), np.subtract(highs[1:], means[1:])],
                        color=colors.get(name, CONTROL_STYLE["color"]),
                        label=name,
                        marker="o",
                        linestyle="none",
                        capsize=2,
                    )
                    continue
                style = CONTROL_STYLE if name == CONTROL else {"color": colors[name]}
                axis.plot(at, means, marker="o", markersize=3, label=name, **style)
                axis.fill_between(at, lows, highs, alpha=0.2, color=style["color"])
            axis.set_xticks(at, labels, rotation=30, ha="right", fontsize=8)
            axis.set_ylim(min(-0.35, _lowest(randomization.estimates, measure) - 0.05), 1.05)
            axis.axhline(0.0, color="0.8", linewidth=0.8)
            axis.set_title(f"{randomization.kind}: {MEASURE_LABELS[measure]}", fontsize=9)
            axis.grid(alpha=0.3)
        axes[row, 0].set_ylabel("similarity to the trained net's map")
    if result.data is not None:
        row = rows - 1
        nets = list(next(iter(result.data.values())))
        width = 0.8 / max(len(nets), 1)
        for column, measure in enumerate(MEASURES):
            axis = axes[row, column]
            for index, net in enumerate(nets):
                at = np.arange(len(result.methods)) + (index - (len(nets) - 1) / 2) * width
                estimates = [result.data[m][net][measure] for m in result.methods]
                means = np.array([e.mean for e in estimates])
                errors = [means - [e.low for e in estimates], [e.high for e in estimates] - means]
                axis.bar(at, means, width, yerr=errors, capsize=3, label=net)
            axis.set_xticks(np.arange(len(result.methods)), result.methods, fontsize=8)
            axis.set_ylim(-0.35, 1.05)
            axis.set_title(f"data randomisation: {MEASURE_LABELS[measure]}", fontsize=9)
            axis.grid(alpha=0.3, axis="y")
        axes[row, 0].legend(fontsize=8, title="maps of", title_fontsize=8)
    axes[0, -1].legend(fontsize=8, loc="lower left")
    figure.suptitle(
        f"{title} · {result.images} images · means with bootstrap 95 % intervals", fontsize=10
    )
    return _save(figure, path)


def sanity_examples_figure(
    result: SanityResult, path: Path, title: str, colormap: str = "jet"
) -> Path:
    """One example image: rows the methods, columns the trained net's map and each cascading
    step's (Adebayo et al.'s Fig. 2 layout)."""
    cascade = next(r for r in result.randomizations if r.kind == "cascading")
    labels = ["input", "trained", *(step.label for step in cascade.steps)]
    rows = len(result.methods)
    figure = Figure(figsize=(1.55 * len(labels), 1.6 * rows + 0.6), layout="constrained")
    axes = np.atleast_2d(figure.subplots(rows, len(labels), squeeze=False))
    image = result.example_images[0].float().div(255).permute(1, 2, 0).numpy()
    cmap = get_colormap(colormap)
    for row, method in enumerate(result.methods):
        maps = [result.originals[method].shown[0], *(m[0] for m in cascade.examples[method])]
        axes[row, 0].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray")
        for column, heatmap in enumerate(maps, start=1):
            axes[row, column].imshow(heatmap.numpy(), cmap=cmap, vmin=0.0, vmax=1.0)
        axes[row, 0].set_ylabel(method, fontsize=9)
        for column, axis in enumerate(axes[row]):
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(labels[column], fontsize=8)
    figure.suptitle(f"{title} · cascading randomisation, classifier first", fontsize=9)
    return _save(figure, path)


def faithfulness_figure(result: FaithfulnessResult, path: Path, title: str) -> Path:
    """Mean deletion and insertion curves of every method (solid) and baseline (dashed)."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    axes = figure.subplots(1, 2)
    names = tuple(result.scores)
    colors = _colors(names)
    estimates = result.estimates
    curves = result.mean_curves()
    for axis, curve, score in zip(
        axes, ("deletion", "insertion"), ("deletion_area", "insertion_area"), strict=True
    ):
        for name in names:
            style = "-" if name in result.methods else "--"
            area = estimates[name][score]
            axis.plot(
                result.fractions,
                curves[name][curve],
                style,
                color=colors[name],
                label=f"{name}: {area.mean:.3f} [{area.low:.3f}, {area.high:.3f}]",
            )
        better = "lower" if curve == "deletion" else "higher"
        axis.set_title(f"{curve} (area, {better} is better)", fontsize=10)
        axis.set_xlabel(
            "fraction of pixels "
            + ("removed" if curve == "deletion" else "revealed")
            + ", most relevant first"
        )
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7.5)
    axes[0].set_ylabel("probability of the explained class (mean over images)")
    figure.suptitle(
        f"{title} · {result.images} images · {result.steps} steps · methods solid, "
        "baselines dashed",
        fontsize=10,
    )
    return _save(figure, path)
