"""The typed schema of `resdeep train`'s configuration: every key, its type, default and
allowed values, once.

These dataclasses are Hydra structured configs: `conf/train.yaml` starts from `train_schema`, so
Hydra merges every YAML group onto them and refuses an unknown key (`model.dept=56`) or a value
of the wrong type (`model.depth=abc`) while composing. The YAML files set only what differs from
these defaults. Allowed values of string keys sit in each field's `choices` metadata;
resdeep.train.validation checks them and the ranges.
"""

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any  # OmegaConf reads these, not `X | None`

from hydra.core.config_store import ConfigStore


def choice(default: Any, *allowed: Any) -> Any:
    """A field whose value must be one of `allowed` (the default first)."""
    return field(default=default, metadata={"choices": (default, *allowed)})


@dataclass
class ModelConfig:
    arch: str = choice("resnet", "plain", "preact")  # set with model=OPTION
    depth: int = 20  # 6n+2 for basic blocks, 9n+2 for bottleneck units
    block: str = choice("basic", "bottleneck")  # bottleneck: preact only
    shortcut: str = choice("A", "B")  # A: parameter-free; B: 1x1 projection (+ BN)
    shortcut_pad: str = choice("after", "both")  # where option A's zero channels go
    init: str = choice("kaiming", "xavier", "orthogonal", "default")  # weight initialisation
    norm: str = choice("batch", "none")  # none: no batch norm (gradients vanish sooner)
    zero_init_residual: bool = False  # last BN (pre-act: last conv) of each branch starts at 0
    dropout: float = 0.0  # probability; > 0 enables MC-dropout uncertainty
    dropout_at: str = choice("head", "blocks")  # before the classifier, or in every block


@dataclass
class DataConfig:
    name: str = "digits"  # set with data=OPTION
    root: str = "data"  # where the files live (or are downloaded to)
    download: bool = False  # fetch with torchvision when missing (needs internet)
    val_size: Any = 0.1  # images held out for validation: a count (int) or a fraction (float)
    batch_size: int = 64  # the global batch, split over devices
    image_size: int | None = None  # resize to this square size (null: native)
    classes: list[int] | None = None  # train on a subset, e.g. [0,1,2,3,4] (labels re-indexed)
    augment: bool = True  # pad + random crop, and horizontal flip where it makes sense
    canvas_size: int = 32  # digits_placed, synthetic: image side in pixels
    num_samples: int = 512  # synthetic: images in all
    num_classes: int = 10  # synthetic
    channels: int = 3  # synthetic


@dataclass
class OptimConfig:
    name: str = choice("sgd", "adam", "adamw")  # set with optim=OPTION
    lr: float = 0.02  # base learning rate (never rescaled with the batch or devices)
    weight_decay: float = 1e-4  # L2 penalty on every weight
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam, adamw


@dataclass
class ScheduleConfig:
    # The default recipe is the depth study's (conf/experiment/depth_study.yaml): measured to
    # train every depth from 20 to 110 to convergence on digits in its 20 epochs of batch 64.
    name: str = choice("cosine", "multistep", "constant")  # set with schedule=OPTION
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # multistep: fractions
    gamma: float = 0.1  # multistep: lr factor at each milestone
    min_lr: float = 0.0  # cosine: the floor
    warmup_steps: int = 40  # steps at warmup_lr first: deep residual nets start with large logits
    warmup_lr: float | None = None  # lr during warm-up (null: base lr / 10)
    warmup: str = choice("constant", "linear")  # constant (He et al.) or a linear ramp


@dataclass
class TrainerConfig:
    epochs: int | None = 20  # passes over the training split (null: use max_steps)
    max_steps: int | None = None  # optimizer steps; the smaller of the two budgets wins
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = choice("32", "bf16", "16")  # 16 needs CUDA (with a GradScaler)
    log_every: int = 10  # steps between log points: gradient norms, diagnostics, training scalars
    dense_first_epoch: bool = False  # a log point at every step of the first epoch
    eval_batch_size: int = 512  # images per forward pass in validation and test
    channels_last: Any = choice("auto", True, False)  # auto: on where measured faster
    compile: bool = False  # torch.compile the model
    compile_mode: str = choice(
        "default", "reduce-overhead", "max-autotune"
    )  # reduce-overhead: CUDA graphs
    deterministic: bool = False  # deterministic kernels: a resumed run matches exactly
    resume: str | None = None  # a checkpoint or run dir to continue; auto: this run dir's
    init_from: str | None = None  # start from these weights (a run dir's best.pt); fresh optimizer
    progress: str = choice("auto", "bar", "lines")
    threads: int | None = None  # CPU threads of torch (null: torch's choice, 1 per sweep job)
    devices: int = 1  # > 1: DistributedDataParallel over N spawned workers (one run dir)
    global_batch: bool = True  # data.batch_size is split over devices (false: per device)
    sync_bn: bool = False  # SyncBatchNorm across devices (CUDA only)
    on_nan: str = choice("stop", "skip")  # a non-finite loss stops the run, or skips the step


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0  # data split, initialisation, batch order and augmentation


def choices_by_key(node: type = TrainConfig, prefix: str = "") -> dict:
    """{"model.arch": ("resnet", "plain", "preact"), ...} for every field with choices."""
    found: dict = {}
    for item in fields(node):
        key = f"{prefix}{item.name}"
        default = item.default_factory() if callable(item.default_factory) else None
        if is_dataclass(default):
            found.update(choices_by_key(type(default), key + "."))
        elif "choices" in item.metadata:
            found[key] = item.metadata["choices"]
    return found


ConfigStore.instance().store(name="train_schema", node=TrainConfig)
