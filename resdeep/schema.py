"""The typed schema of `resdeep train`'s configuration: every key, its type, default and
allowed values, once.

These dataclasses are Hydra structured configs: `conf/train.yaml` starts from `train_schema`, so
Hydra merges every YAML group onto them and refuses an unknown key (`model.dept=56`) or a value
of the wrong type (`model.depth=abc`) while composing. The YAML files set only what differs from
these defaults. Each field's metadata holds what it means (`help`, which `resdeep train --help`
prints) and, for a choice, its allowed values (`choices`, from resdeep.choices), which
resdeep.train.validation checks with the ranges.
"""

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any  # OmegaConf reads these, not `X | None`

from hydra.core.config_store import ConfigStore

from resdeep import choices as c


def key(default: Any, meaning: str, choices: tuple = (), *, factory: Any = None) -> Any:
    """A schema field: its default, what it means (`resdeep train --help` prints it) and, for a
    choice, the values allowed (resdeep.train.validation checks them)."""
    metadata = {"help": meaning, **({"choices": choices} if choices else {})}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ModelConfig:
    arch: str = key("resnet", "set with model=OPTION", c.ARCHITECTURES)
    depth: int = key(20, "6n+2 for basic blocks, 9n+2 for bottleneck units")
    block: str = key("basic", "bottleneck: preact only", c.BLOCKS)
    shortcut: str = key("A", "A: parameter-free; B: 1x1 projection (+ BN)", c.SHORTCUTS)
    shortcut_pad: str = key("after", "where option A's zero channels go", c.SHORTCUT_PADS)
    init: str = key("kaiming", "weight initialisation", c.INITS)
    norm: str = key("batch", "none: no batch norm (gradients vanish sooner)", c.NORMS)
    zero_init_residual: bool = key(False, "last BN (pre-act: last conv) of each branch starts at 0")
    residual_init: str = key(
        "none", "a residual net without BN (needs model.norm=none)", c.RESIDUAL_INITS
    )
    dropout: float = key(0.0, "probability; > 0 enables MC-dropout uncertainty")
    dropout_at: str = key("head", "before the classifier, or in every block", c.DROPOUT_PLACES)


@dataclass
class DataConfig:
    name: str = key("digits", "set with data=OPTION")
    root: str = key("data", "where the files live (or are downloaded to)")
    download: bool = key(False, "fetch with torchvision when missing (needs internet)")
    val_size: Any = key(0.1, "images held out for validation: a count (int) or a fraction (float)")
    # The default recipe is the depth study's (conf/experiment/depth_study.yaml): the shortest
    # budget measured to train every depth from 20 to 110 to convergence on digits.
    batch_size: int = key(64, "the global batch, split over devices")
    image_size: int | None = key(None, "resize to this square size (null: native)")
    classes: list[int] | None = key(None, "train on a subset, e.g. [0,1,2,3,4] (labels re-indexed)")
    augment: bool = key(True, "pad + random crop, and horizontal flip where it makes sense")
    canvas_size: int = key(32, "digits_placed, synthetic: image side in pixels")
    num_samples: int = key(512, "synthetic: images in all")
    num_classes: int = key(10, "synthetic: classes")
    channels: int = key(3, "synthetic: image channels")
    permute_labels: bool = key(
        False, "shuffle the training labels (seeded): the data-randomisation sanity check of CAM"
    )


@dataclass
class OptimConfig:
    name: str = key("sgd", "set with optim=OPTION", c.OPTIMIZERS)
    lr: float = key(0.02, "base learning rate (never rescaled with the batch or devices)")
    weight_decay: float = key(1e-4, "L2 penalty on every weight")
    momentum: float = key(0.9, "sgd: momentum")
    nesterov: bool = key(False, "sgd: Nesterov momentum")
    betas: list[float] = key(None, "adam, adamw: moment decay rates", factory=lambda: [0.9, 0.999])


@dataclass
class ScheduleConfig:
    name: str = key("cosine", "set with schedule=OPTION", c.SCHEDULES)
    milestones: list[float] = key(
        None, "multistep: lr x gamma at these fractions of all steps", factory=lambda: [0.5, 0.75]
    )
    gamma: float = key(0.1, "multistep: lr factor at each milestone")
    min_lr: float = key(0.0, "cosine: the floor")
    warmup_steps: int = key(
        40, "steps at warmup_lr first: deep residual nets start with large logits"
    )
    warmup_lr: float | None = key(None, "lr during warm-up (null: base lr / 10)")
    warmup: str = key("constant", "constant (He et al.) or a linear ramp", c.WARMUPS)


@dataclass
class TrainerConfig:
    epochs: int | None = key(20, "passes over the training split (null: use max_steps)")
    max_steps: int | None = key(None, "optimizer steps; the smaller of the two budgets wins")
    device: str = key("auto", "auto, cpu, cuda or cuda:N")
    precision: str = key("32", "16 needs CUDA (with a GradScaler)", c.PRECISIONS)
    log_every: int = key(
        10, "steps between log points: gradient norms, diagnostics, training scalars"
    )
    dense_first_epoch: bool = key(False, "a log point at every step of the first epoch")
    figures: bool = key(True, "TensorBoard's pictures at epoch ends (by-layer profile, heatmaps)")
    eval_batch_size: int = key(512, "images per forward pass in validation and test")
    channels_last: Any = key(
        "auto", "channels-last memory format (auto: on CUDA and AVX-512 CPUs)", c.CHANNELS_LAST
    )
    compile: bool = key(False, "torch.compile the model")
    compile_mode: str = key(
        "default", "torch.compile's mode; reduce-overhead: CUDA graphs", c.COMPILE_MODES
    )
    deterministic: bool = key(False, "deterministic kernels: a resumed run matches exactly")
    resume: str | None = key(
        None, "a checkpoint or run dir to continue; auto: this run dir's, if it has one"
    )
    init_from: str | None = key(
        None, "start from these weights (a run dir's best.pt); fresh optimizer"
    )
    progress: str = key("auto", "auto: a bar on a terminal, lines elsewhere", c.PROGRESS)
    threads: int | None = key(
        None, "CPU threads of torch (null: torch's choice, 1 per joblib sweep job)"
    )
    devices: int = key(1, "> 1: DistributedDataParallel over N spawned workers (one run dir)")
    global_batch: bool = key(True, "data.batch_size is split over devices (false: per device)")
    sync_bn: bool = key(False, "SyncBatchNorm across devices (CUDA only)")
    on_nan: str = key("stop", "a non-finite loss stops the run, or skips the step", c.ON_NAN)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = key(0, "data split, initialisation, batch order and augmentation")


def choices_by_key(node: type = TrainConfig, prefix: str = "") -> dict:
    """{"model.arch": ("plain", "resnet", "preact"), ...} for every field with choices."""
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
