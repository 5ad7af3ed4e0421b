"""From a configuration to the objects it describes, in one place.

Training builds its data set and model here, and so do the tools that read a run afterwards
(`cam`, `uncertainty`), from the config stored in its checkpoint: a config key means the same
thing everywhere, and the analysis tools never import the trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from resdeep.errors import ResdeepError
from resdeep.schema import TrainConfig  # importing it registers the schema with Hydra

if TYPE_CHECKING:
    import torch
    from omegaconf import DictConfig

    from resdeep.checkpoint import CheckpointInfo
    from resdeep.data import DataSplits
    from resdeep.models import ConvNet

# The Hydra configs ship inside the package (resdeep/conf links to the repo's conf/).
CONFIG_DIR = Path(__file__).resolve().parent / "conf"


def _at_least(value: float, threshold: float, then: object, otherwise: object) -> object:
    return then if value >= threshold else otherwise


# `${resdeep.at_least:${model.depth},110,400,0}`: the paper warms up only nets of depth >= 110.
# Registered on import, so every composition (the app's, a tool's, a test's) resolves it.
OmegaConf.register_new_resolver("resdeep.at_least", _at_least, replace=True)

# Keys the short run name always shows (as plain56_s0); every other override is appended short.
_NAMED_KEYS = {"model", "model.arch", "model.depth", "seed"}


def short_run_name(
    arch: str, depth: int, seed: int, overrides: Sequence[str], excluded: Sequence[str]
) -> str:
    """A sweep job's directory and TensorBoard run name: `plain56_s0`, then each other task
    override not in `excluded` by its last key part (`init-xavier`, `lr-0.1`; a group by its
    option: `cifar10`). Overrides come as Hydra's list, so a value with commas
    (`data.classes=[0,1]`) stays one override. The full overrides stay in the run's config.yaml
    and .hydra/overrides.yaml."""
    parts = [f"{arch}{depth}", f"s{seed}"]
    for item in overrides:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if key in _NAMED_KEYS or key in excluded or key.startswith("hydra") or not value:
            continue
        # A config group (model=plain, data=cifar10) by its option, a key by its last part.
        parts.append(value if "." not in key else f"{key.rsplit('.', 1)[-1]}-{value}")
    return "_".join(part.replace("/", "-").replace(",", "+") for part in parts)


OmegaConf.register_new_resolver("resdeep.run_name", short_run_name, replace=True)

# The model group's keys that are arguments of resdeep.models.build_model.
MODEL_KEYS = (
    "arch",
    "depth",
    "block",
    "shortcut",
    "shortcut_pad",
    "init",
    "norm",
    "zero_init_residual",
    "residual_init",
    "dropout",
    "dropout_at",
)


def compose_train_config(overrides: Sequence[str] = (), *, hydra: bool = False) -> DictConfig:
    """The `resdeep train` configuration with these overrides, as Hydra composes it (with the
    `hydra` node when asked: run dir, sweeper, launcher)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def seed_run(seed: int) -> None:
    """The seeds a run sets before it builds its data and its net (Python, NumPy, torch), so a
    tool that rebuilds a run's initial net in the same order gets the same weights."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def data_from_config(cfg: DictConfig) -> DataSplits:
    """The data set a run's config describes: same splits, classes, size and seed."""
    from resdeep.data import build_data

    data = cfg.data
    return build_data(
        data.name,
        root=data.root,
        download=bool(data.download),
        val_size=data.val_size,
        image_size=data.image_size,
        classes=list(data.classes) if data.classes is not None else None,
        seed=int(cfg.seed),
        canvas_size=int(data.canvas_size),
        num_samples=int(data.num_samples),
        num_classes=int(data.num_classes),
        channels=int(data.channels),
        # Runs from before the option existed have no key: their labels were the true ones.
        permute_labels=bool(data.get("permute_labels", False)),
    )


def model_kwargs_from_config(cfg: DictConfig, data: DataSplits) -> dict[str, Any]:
    """Keyword arguments of build_model: the model group, plus channels and classes of `data`."""
    kwargs = {key: cfg.model[key] for key in MODEL_KEYS if key in cfg.model}
    kwargs["dropout"] = float(kwargs["dropout"])
    kwargs["depth"] = int(kwargs["depth"])
    kwargs["in_channels"] = data.in_channels
    kwargs["num_classes"] = len(data.classes)
    return kwargs


def run_config(info: CheckpointInfo) -> DictConfig:
    """The resolved config a checkpoint was trained with, on the schema: a key the run's version
    did not have yet takes its default."""
    if not info.config.get("data"):
        raise ResdeepError(f"{info.path} holds no data config; cannot rebuild its data set")
    return OmegaConf.merge(OmegaConf.structured(TrainConfig), info.config)


def checkpoint_data(info: CheckpointInfo) -> DataSplits:
    """A checkpoint's data set rebuilt from its stored config, checked against the input shape
    the model was trained on (a data set that changed since would feed it the wrong images)."""
    data = data_from_config(run_config(info))
    shape = (data.in_channels, data.image_size, data.image_size)
    if tuple(shape) != tuple(info.input_shape):
        raise ResdeepError(
            f"the rebuilt {info.data_name} images are {shape}, "
            f"but {info.path} expects {tuple(info.input_shape)}"
        )
    return data


def initial_model(info: CheckpointInfo, device: str | torch.device = "cpu") -> ConvNet:
    """The net a checkpoint's run started from (eval mode, on `device`): its `init.pt`, or for a
    run from before runs kept one, rebuilt as training builds it (the run's seed, then the
    model; building the data set draws nothing from the seeded generators)."""
    from resdeep.checkpoint import INITIAL_CHECKPOINT, load_checkpoint

    saved = info.run_dir / "checkpoints" / INITIAL_CHECKPOINT
    if saved.is_file():
        return load_checkpoint(saved, device)[0]
    from resdeep.runs import read_metrics

    if info.imported or read_metrics(info.run_dir).get("status") == "imported":
        raise ResdeepError(
            f"{info.run_dir} is an imported net: the weights it was trained from are not known"
        )
    start = (info.config.get("trainer") or {}).get("init_from")
    if start:
        raise ResdeepError(
            f"{info.run_dir} started from {start} and keeps no {INITIAL_CHECKPOINT}; "
            "its initial weights cannot be rebuilt from its seed"
        )
    return fresh_model(info.model_kwargs, int(info.config.get("seed", 0)), device).eval()


def fresh_model(kwargs: dict[str, Any], seed: int, device: str | torch.device = "cpu") -> ConvNet:
    """The net `resdeep train` builds from these model arguments and seed, before its first
    step: the same seeding, then the model (the data set draws nothing from those generators)."""
    from resdeep.models import build_model

    seed_run(seed)
    return build_model(**kwargs).to(device)
