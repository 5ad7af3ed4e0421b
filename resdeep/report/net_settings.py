"""What tells two nets apart: the model arguments that make a setting (seeds apart), how a
tool describes a net by them, and the setting's label, shared by the tools that group nets over
seeds (signal, landscape)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from resdeep.report.analysis import run_label

# What makes two nets different settings (the seed apart); the first six are the report's.
SETTING_KEYS = ("data", "arch", "depth", "init", "norm", "residual_init", "block", "shortcut",
                "shortcut_pad", "zero_init_residual", "dropout")  # fmt: skip


def describe(kwargs: dict[str, Any], seed: int, data: str, state: str) -> dict[str, Any]:
    """Which net: every model argument that makes two nets differ (all but seed and state are
    the setting its group is keyed on), the seed, the data set and the state."""
    return {
        "arch": str(kwargs["arch"]),
        "depth": int(kwargs["depth"]),
        "init": str(kwargs.get("init", "kaiming")),
        "norm": str(kwargs.get("norm", "batch")),
        "residual_init": str(kwargs.get("residual_init", "none")),
        "block": str(kwargs.get("block", "basic")),
        "shortcut": str(kwargs.get("shortcut")),  # set by every config and checkpoint
        "shortcut_pad": str(kwargs.get("shortcut_pad", "after")),
        "zero_init_residual": bool(kwargs.get("zero_init_residual", False)),
        "dropout": float(kwargs.get("dropout", 0.0)),
        "seed": seed,
        "data": data,
        "state": state,
    }


# Beyond the report's label keys (init, norm, residual init): what else a study may vary.
MORE_LABEL_PARTS = (
    ("block", lambda v: v),
    ("shortcut", lambda v: f"shortcut {v}"),
    ("shortcut_pad", lambda v: f"pad {v}"),
    ("zero_init_residual", lambda v: "zero-init residual" if v else "no zero-init"),
    ("dropout", lambda v: f"dropout {v:g}"),
    ("data", lambda v: v),
)


def setting_label(about: dict[str, Any], varying: set[str]) -> str:
    """The report's label ("plain-56", "resnet-110 (no BN, fixup)": init, norm and residual init
    only where the nets shown differ), with any other model argument that differs added."""
    label = run_label(about["arch"], about["depth"], about["init"], about["norm"], varying,
                      about["residual_init"])  # fmt: skip
    more = [show(about[key]) for key, show in MORE_LABEL_PARTS if key in varying]
    if not more:
        return label
    if label.endswith(")"):
        return f"{label[:-1]}, {', '.join(more)})"
    return f"{label} ({', '.join(more)})"


def varying_settings(abouts: Iterable[dict[str, Any]]) -> set[str]:
    """The setting keys whose values differ between the nets shown, arch and depth apart (every
    label names those)."""
    abouts = list(abouts)
    return {key for key in SETTING_KEYS if len({about[key] for about in abouts}) > 1} - {
        "arch",
        "depth",
    }


def net_name(about: dict[str, Any], *, with_state: bool = False) -> str:
    """ "resnet-56 (kaiming, BN) seed 0", as a tool's progress line names one net; with_state
    adds ", trained" to a trained net where a study holds nets at initialisation too."""
    extras = [about["init"], "BN" if about["norm"] == "batch" else "no BN"]
    if about["residual_init"] != "none":
        extras.append(about["residual_init"])
    name = f"{about['arch']}-{about['depth']} ({', '.join(extras)}) seed {about['seed']}"
    return name + (", trained" if with_state and about["state"] != "init" else "")
