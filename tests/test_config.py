"""The config groups: every option of every group, and every experiment preset, composes and
builds its data, model and optimizer at toy size; and no group file restates a schema default
(a change in resdeep/schema.py must never be shadowed by a YAML copy of the old value)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import yaml
from omegaconf import OmegaConf

from resdeep.config import (
    CONFIG_DIR,
    compose_train_config,
    data_from_config,
    model_kwargs_from_config,
)
from resdeep.models import build_model
from resdeep.schema import TrainConfig
from resdeep.train.build import build_optimization
from resdeep.train.resume import flat
from tests.test_data import fake_images, idx_bytes, write_cifar10, write_pickle, write_png

GROUPS = ("model", "data", "optim", "schedule")
# The key that names a group's option: `data=mnist` is `data.name: mnist` by definition.
IDENTITY = {"model": "arch", "data": "name", "optim": "name", "schedule": "name"}
PRESETS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONFIG_DIR / g).glob("*.yaml"))]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """Tiny files in every format resdeep reads: CIFAR-10/100 pickles, SVHN .mat, MNIST and
    Fashion-MNIST IDX files, and an image folder."""
    root = tmp_path_factory.mktemp("data")
    write_cifar10(root, per_batch=4)
    for name, count in (("train", 8), ("test", 4)):
        content = {
            "data": fake_images(count, (3, 32, 32), seed=1).reshape(count, 3072),
            "fine_labels": list(range(count)),
            "coarse_labels": [0] * count,
        }
        write_pickle(root / "cifar-100-python" / name, content)
    write_pickle(
        root / "cifar-100-python" / "meta",
        {"fine_label_names": [f"f{k}" for k in range(100)], "coarse_label_names": []},
    )
    for name, count in (("train", 12), ("test", 6)):
        scipy.io.savemat(
            root / f"{name}_32x32.mat",
            {
                "X": fake_images(count, (3, 32, 32), seed=2).transpose(2, 3, 1, 0),
                "y": (np.arange(count) % 10 + 1).reshape(-1, 1).astype(np.uint8),
            },
        )
    for folder in ("MNIST", "FashionMNIST"):
        raw = root / folder / "raw"
        raw.mkdir(parents=True)
        for prefix, count in (("train", 20), ("t10k", 10)):
            (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
                idx_bytes(fake_images(count, (28, 28), seed=4))
            )
            (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
                idx_bytes(np.arange(count, dtype=np.uint8) % 10)
            )
    for name, color in (("cat", (255, 0, 0)), ("dog", (0, 255, 0))):
        for index in range(4):
            write_png(root / "folder" / name / f"{index}.png", (12, 12), color)
    return root


_DATA: dict[str, object] = {}


def _built(overrides: list[str], data_root: Path) -> None:
    """Compose at toy size (the smallest depth of its block, few synthetic images), then build
    the data, the model and the optimizer with its schedule, and run the model on two images."""
    bottleneck = "model=preact" in overrides
    cfg = compose_train_config(
        [
            *overrides,
            f"data.root={data_root}",
            "data.num_samples=64",
            "data.val_size=2",
            f"model.depth={11 if bottleneck else 8}",
        ]
    )
    if cfg.data.name == "imagefolder":
        cfg.data.root = str(data_root / "folder")
    key = OmegaConf.to_yaml(cfg.data) + f"seed={cfg.seed}"
    if key not in _DATA:  # the same data set for every option of the other groups
        _DATA[key] = data_from_config(cfg)
    data = _DATA[key]
    model = build_model(**model_kwargs_from_config(cfg, data))
    optimizer, scheduler = build_optimization(cfg, model, torch.device("cpu"), total_steps=10)
    optimizer.step()
    scheduler.step()
    images = data.train.images[:2].float()
    assert model(images).shape == (2, len(data.classes))


@pytest.mark.parametrize("group,option", OPTIONS)
def test_every_option_of_every_group_composes_and_builds(data_root, group, option):
    _built([f"{group}={option}"], data_root)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_composes_and_builds(data_root, preset):
    _built([f"experiment={preset}"], data_root)


def test_no_group_file_restates_a_schema_default():
    schema = flat(OmegaConf.to_container(OmegaConf.structured(TrainConfig)))
    restated = [
        f"{group}/{path.name}: {key} is {value!r}, the schema's own default"
        for group in GROUPS
        for path in sorted((CONFIG_DIR / group).glob("*.yaml"))
        for key, value in flat(yaml.safe_load(path.read_text()) or {}).items()
        if key != IDENTITY[group] and schema.get(f"{group}.{key}", object()) == value
    ]
    assert restated == []
    assert not (CONFIG_DIR / "trainer").exists()  # every trainer default lives in the schema
