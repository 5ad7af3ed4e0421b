"""Batches from uint8 tensors held on the device, augmented per batch with tensor ops.

Small image data sets fit in device memory many times over (CIFAR-10 is 150 MB as uint8), so
the whole split moves once and every batch is an index, a crop gather, a flip and a normalise:
no worker processes, no per-sample PIL, no host-to-device copy per batch (airbench's recipe).

Every random choice of an epoch (its order, crop offsets and flips) is drawn at the epoch's
start from a generator seeded by (seed, epoch). So all ranks agree on the order, a run is
reproducible, and a checkpoint needs only the seed and the position to resume mid-epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from resdeep.data.splits import Split

Stats = Sequence[float] | torch.Tensor


def _per_channel(values: Stats, like: torch.Tensor) -> torch.Tensor:
    # (C, 1, 1) broadcasts over (C, H, W) and (B, C, H, W); a tensor already there is not copied.
    return torch.as_tensor(values, dtype=torch.float32, device=like.device).view(-1, 1, 1)


def normalize(images: torch.Tensor, mean: Stats, std: Stats) -> torch.Tensor:
    """uint8 images (0..255) -> float32 (x / 255 - mean) / std, per channel."""
    scale = _per_channel(std, images) * 255.0
    shift = _per_channel(mean, images) * 255.0
    return images.to(torch.float32).sub_(shift).div_(scale)


def random_crop(images: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad the batch by `padding`, then cut each image at its own (row, col) offset.

    images: (B, C, H, W); offsets: (B, 2) in 0..2*padding. One gather for the whole batch.
    """
    batch, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    device = images.device
    rows = (offsets[:, 0:1] + torch.arange(height, device=device)).view(batch, 1, height, 1)
    cols = (offsets[:, 1:2] + torch.arange(width, device=device)).view(batch, 1, 1, width)
    samples = torch.arange(batch, device=device).view(batch, 1, 1, 1)
    planes = torch.arange(channels, device=device).view(1, channels, 1, 1)
    return padded[samples, planes, rows, cols]  # (B, C, H, W)


def _epoch_seed(seed: int, epoch: int) -> int:
    # torch's CPU generator keeps 32 bits of a seed; SeedSequence mixes (seed, epoch) into
    # unrelated 32-bit seeds, where seed + epoch would make neighbouring runs share epochs.
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class DeviceLoader:
    """Iterates (images float normalised, labels) batches from uint8 tensors on the device.

    With world_size > 1, each epoch's order is padded (repeating its start) or, with drop_last,
    truncated to a multiple of world_size, and rank r takes every world_size-th sample from r,
    as torch's DistributedSampler does, so every rank runs the same number of batches.
    """

    def __init__(
        self,
        split: Split,
        *,
        batch_size: int,
        mean: Stats,
        std: Stats,
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        augment: bool = False,
        pad_crop: int = 0,
        flip: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if pad_crop < 0:
            raise ValueError(f"pad_crop must be >= 0, got {pad_crop}")
        self.device = torch.device(device)
        self.images = split.images.to(self.device)  # uint8, moved once
        self.labels = split.labels.to(self.device)
        self.mean = _per_channel(mean, self.images)
        self.std = _per_channel(std, self.images)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.pad_crop = pad_crop if augment else 0
        self.flip = flip and augment
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.rank = rank
        self.world_size = world_size
        # One draw fixes the loader's seed: ranks whose generators are seeded alike agree on it.
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        self.seed = int(torch.randint(2**31, (), generator=generator))
        count = len(split)
        rounding = math.floor if drop_last else math.ceil
        self.total = rounding(count / world_size) * world_size  # samples per epoch, all ranks
        self.samples_per_rank = self.total // world_size
        self._epoch, self._batch = 0, 0  # where the next pass starts
        self._resuming = False  # a restored position in the middle of an epoch is pending

    def __len__(self) -> int:
        rounding = math.floor if self.drop_last else math.ceil
        return rounding(self.samples_per_rank / self.batch_size)

    def state_dict(self) -> dict[str, int]:
        """The position after the last batch handed out: plain ints, safe for weights_only."""
        return {"seed": self.seed, "epoch": self._epoch, "batch": self._batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self._epoch, self._batch = (
            int(state["seed"]),
            int(state["epoch"]),
            int(state["batch"]),
        )
        self._resuming = True

    def _epoch_plan(
        self, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """This rank's sample order, crop offsets and flip mask for `epoch`, on the device."""
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        count = self.labels.shape[0]
        order = torch.randperm(count, generator=generator) if self.shuffle else torch.arange(count)
        order = order.repeat(math.ceil(self.total / max(count, 1)))[: self.total]
        # Drawn for every position of the epoch, then sliced, so a rank's augmentation does not
        # depend on world_size beyond which positions it owns.
        offsets = flips = None
        if self.pad_crop:
            offsets = torch.randint(0, 2 * self.pad_crop + 1, (self.total, 2), generator=generator)
            offsets = offsets[self.rank :: self.world_size].to(self.device)
        if self.flip:
            flips = (torch.rand(self.total, generator=generator) < 0.5)[
                self.rank :: self.world_size
            ]
            flips = flips.to(self.device)
        return order[self.rank :: self.world_size].to(self.device), offsets, flips

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, start = self._epoch, self._batch
        if start > 0 and not self._resuming:
            # The last pass stopped mid-epoch without a checkpoint restore: like a fresh
            # DataLoader iterator, a new pass starts the next epoch.
            epoch, start = epoch + 1, 0
        self._resuming = False
        order, offsets, flips = self._epoch_plan(epoch)
        batches = len(self)
        for index in range(start, batches):
            rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
            # Advance before yielding: a checkpoint taken while this batch trains resumes after it.
            self._epoch, self._batch = (epoch, index + 1) if index + 1 < batches else (epoch + 1, 0)
            yield self._make_batch(
                order[rows],
                None if offsets is None else offsets[rows],
                None if flips is None else flips[rows],
            )

    def _make_batch(
        self, index: torch.Tensor, offsets: torch.Tensor | None, flips: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images = self.images[index]  # (B, C, H, W) uint8: crop and flip move 4x fewer bytes
        if offsets is not None:
            images = random_crop(images, offsets, self.pad_crop)
        if flips is not None:
            images = torch.where(flips.view(-1, 1, 1, 1), images.flip(3), images)
        images = normalize(images, self.mean, self.std)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, self.labels[index]
