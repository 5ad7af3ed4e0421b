"""Signal studies of several nets grouped by setting over seeds, with the report's rules (mean ±
std over seeds; a difference called one only beyond both 95 % intervals), and the findings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from resdeep.report.analysis import residual_init_order
from resdeep.report.net_settings import SETTING_KEYS, setting_label, varying_settings
from resdeep.report.spread import Spread, compare, format_spread, single_seed
from resdeep.signal.study import NetSignal


@dataclass(frozen=True)
class SignalGroup:
    """Nets that differ only in their seed, at one state (initialisation or trained)."""

    label: str
    state: str
    about: dict[str, Any]  # the setting's keys
    nets: list[NetSignal]  # in seed order

    @property
    def seeds(self) -> list[int]:
        return [net.about["seed"] for net in self.nets]

    @property
    def residual(self) -> bool:
        return self.about["arch"] != "plain"

    def spread(self, fit: str) -> Spread:
        return Spread.of(net.fits.get(fit) for net in self.nets)

    @property
    def neighbour(self) -> Spread:
        return Spread.of(net.line.neighbour for net in self.nets)

    def zero_gradient(self) -> bool:
        """Every seed's input gradient is zero (a zero-initialised classifier: Fixup)."""
        return all(math.isnan(net.line.neighbour) for net in self.nets)

    def lags(self) -> np.ndarray:
        """(seeds, lags) mean cosine at each lag."""
        return np.array([net.line.lags for net in self.nets], dtype=float)

    def per_layer(self, what: str) -> np.ndarray:
        """(seeds, layers) of a per-conv measure: forward, backward, or a mean-field
        prediction (mf_forward, mf_backward; NaN without one)."""
        rows = []
        for net in self.nets:
            layers = net.propagation.layers
            if what.startswith("mf_"):
                prediction = net.mean_field
                values = getattr(prediction, what[3:]) if prediction else [math.nan] * len(layers)
            elif what == "backward":
                values = [layer.backward for layer in layers]
            else:
                values = [layer.forward.second for layer in layers]
            rows.append(values)
        return np.array(rows, dtype=float)

    def per_block(self, what: str) -> np.ndarray:
        """(seeds, blocks): stream (second moment), branch (variance) or
        backward (of the stream)."""
        rows = []
        for net in self.nets:
            blocks = net.propagation.blocks
            if what == "stream":
                values = [block.stream.second for block in blocks]
            elif what == "branch":
                values = [
                    math.nan if block.branch_variance is None else block.branch_variance
                    for block in blocks
                ]
            else:
                values = [block.backward for block in blocks]
            rows.append(values)
        return np.array(rows, dtype=float)

    def as_json(self) -> dict[str, Any]:
        fits = sorted({key for net in self.nets for key in net.fits if key != "layers"})
        return {
            "label": self.label,
            "state": self.state,
            **self.about,
            "seeds": self.seeds,
            "neighbour_correlation": vars(self.neighbour),
            "lags": [vars(Spread.of(column)) for column in self.lags().T],
            "fits": {key: vars(self.spread(key)) for key in fits},
        }


def group_signals(nets: Sequence[NetSignal]) -> list[SignalGroup]:
    """One group per setting and state, ordered by data, init, norm, residual init, arch
    (plain first), depth, state; nets in seed order."""
    varying = varying_settings(net.about for net in nets)
    keyed: dict[tuple, list[NetSignal]] = {}
    for net in nets:
        key = (*(net.about[k] for k in SETTING_KEYS), net.about["state"])
        keyed.setdefault(key, []).append(net)

    def order(key: tuple) -> tuple:
        about = dict(zip(SETTING_KEYS, key[:-1], strict=True))
        rest = tuple(str(about[k]) for k in SETTING_KEYS[6:])
        return (about["data"], about["init"], about["norm"],
                residual_init_order(about["residual_init"]), rest, about["arch"] != "plain",
                about["arch"], about["depth"], key[-1] != "init")  # fmt: skip

    groups = []
    for key in sorted(keyed, key=order):
        members = sorted(keyed[key], key=lambda net: net.about["seed"])
        about = dict(zip(SETTING_KEYS, key[:-1], strict=True))
        label = setting_label(about, varying)
        groups.append(SignalGroup(label, key[-1], about, members))
    return groups


def _twins(groups: Sequence[SignalGroup]) -> list[tuple[SignalGroup, SignalGroup]]:
    """(plain, residual) pairs of the same depth, data, init, norm and state."""
    pairs = []
    for plain in groups:
        if plain.residual or plain.zero_gradient():
            continue  # a net whose input gradient is zero has no correlation to compare
        for other in groups:
            if (
                other.residual
                and not other.zero_gradient()
                and other.state == plain.state
                and all(other.about[k] == plain.about[k] for k in ("data", "depth", "init", "norm"))
            ):
                pairs.append((plain, other))
    return pairs


def signal_findings(groups: Sequence[SignalGroup]) -> list[str]:
    """What the measurements say, in words with their numbers."""
    lines = []
    for state in ("init", "trained"):
        pairs = [(p, r) for p, r in _twins(groups) if p.state == state]
        if not pairs:
            continue
        when = "at initialisation" if state == "init" else "after training"
        parts = []
        for plain, residual in pairs:
            verdict = compare(plain.neighbour, residual.neighbour)
            word = {"lower": "below", "higher": "above"}.get(
                verdict or "", "not clearly apart from"
            )
            if verdict in ("lower", "higher") and single_seed(plain.neighbour, residual.neighbour):
                word += " (one seed: no spread to exceed)"
            parts.append(
                f"{plain.label} {format_spread(plain.neighbour)} {word} "
                f"{residual.label} {format_spread(residual.neighbour)}"
            )
        lines.append(
            f"Neighbour-gradient correlation {when} (mean cosine between input gradients at "
            f"neighbouring points of a line between two inputs; 1 = one direction, 0 = white "
            f"noise): " + "; ".join(parts) + "."
        )
    lines += _mean_field_findings(groups)
    zero = [g for g in groups if g.zero_gradient()]
    if zero:
        named = [
            g.label
            + (" (Fixup starts its classifier at zero)" if g.about["residual_init"] == "fixup"
               and g.state == "init" else "")
            for g in zero
        ]  # fmt: skip
        lines.append(
            "The input gradient is exactly zero at every point, so there is no correlation to "
            "measure: " + ", ".join(named) + "."
        )
    return lines


def _mean_field_findings(groups: Sequence[SignalGroup]) -> list[str]:
    with_theory = [g for g in groups if g.state == "init" and any(net.mean_field for net in g.nets)]
    if not with_theory:
        return []
    worst = max(abs(net.fits["theory_forward_worst"] - 1) for g in with_theory for net in g.nets)
    one_step = max(
        abs(net.fits["theory_one_step_worst"] - 1) for g in with_theory for net in g.nets
    )
    slopes = "; ".join(
        f"{g.label} {format_spread(g.spread('forward_slope'))} measured, "
        f"{format_spread(g.spread('theory_forward_slope'))} predicted"
        for g in with_theory
    )
    return [
        "Plain nets without batch norm (mean-field theory from each net's own weights): the "
        f"predicted second moments of stage 1's interior convs are within {100 * worst:.0f} % "
        f"of the measured ones chained from the input, within {100 * one_step:.0f} % one conv "
        f"at a time; log2 change per conv: {slopes}."
    ]
