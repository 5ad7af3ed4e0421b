"""What describes one run, in one place: shown in metrics.json, carried by each checkpoint,
listed in TensorBoard's HParams tab."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RunDescription:
    """Everything that describes one run, once: metrics.json shows `summary()`, each
    checkpoint carries `checkpoint_fields()`, TensorBoard's HParams tab shows `hparams()`."""

    arch: str
    depth: int
    data: str
    init: str
    norm: str
    residual_init: str
    params: int
    device: str
    precision: str
    world_size: int
    per_device_batch: int
    optim: str
    lr: float
    batch_size: int
    seed: int
    epochs: int
    config: dict[str, Any]
    model_kwargs: dict[str, Any]
    classes: list[str]
    mean: list[float]
    std: list[float]
    input_shape: list[int]

    SUMMARY_KEYS = (
        "arch", "depth", "data", "init", "norm", "residual_init", "params", "device", "precision",
        "world_size", "per_device_batch",
    )  # fmt: skip

    def summary(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.SUMMARY_KEYS}

    def hparams(self) -> dict[str, Any]:
        """What a sweep varies, and only that: TensorBoard shows the first five columns (by
        name: arch, data, depth, init, lr) and hides the rest behind a click; the setting (batch,
        device, precision, ...) is in metrics.json and config.yaml."""
        return {
            "arch": self.arch,
            "depth": self.depth,
            "init": self.init,
            "norm": self.norm,
            "residual_init": self.residual_init,
            "shortcut": str(self.model_kwargs.get("shortcut", "")),
            "lr": self.lr,
            "seed": self.seed,
            "data": self.data,
        }

    def checkpoint_fields(self) -> dict[str, Any]:
        """What a tool needs besides the weights (resdeep.checkpoint.CheckpointInfo)."""
        return {
            "config": self.config,
            "model_kwargs": self.model_kwargs,
            "classes": self.classes,
            "normalization": {"mean": self.mean, "std": self.std},
            "input_shape": self.input_shape,
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
