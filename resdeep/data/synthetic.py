"""Random but learnable images, for tests and benchmarks that must not touch the disk."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from resdeep.data.splits import DataError, Source, Split

# Each class is a smooth template from a 4x4 grid of random values; a sample is the template in
# 0..TEMPLATE_MAX plus uniform noise in the rest of the uint8 range. Templates differ over whole
# grid cells (8 px at 32) and the noise is per pixel, so a small CNN separates them in a few epochs.
TEMPLATE_GRID = 4
TEMPLATE_MAX = 178  # 70 % of the range: the class signal dominates the noise


def synthetic_source(
    *, num_samples: int, num_classes: int, channels: int, image_size: int, seed: int
) -> Source:
    """`num_samples` training-pool images (train + val) and a fifth as many test images."""
    if num_samples < 1 or num_classes < 1 or channels < 1 or image_size < 1:
        raise DataError(
            "synthetic needs num_samples, num_classes, channels and image_size of at least 1, got "
            f"{num_samples}, {num_classes}, {channels}, {image_size}"
        )
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, channels, TEMPLATE_GRID, TEMPLATE_GRID, generator=generator)
    smooth = F.interpolate(coarse, size=(image_size, image_size), mode="bilinear")
    templates = (smooth * TEMPLATE_MAX).round_().to(torch.uint8)  # (K, C, S, S)

    def draw(count: int) -> Split:
        # Balanced classes in random order.
        labels = torch.randperm(count, generator=generator) % num_classes
        shape = (count, channels, image_size, image_size)
        noise = torch.randint(0, 256 - TEMPLATE_MAX, shape, generator=generator, dtype=torch.uint8)
        return Split(templates[labels] + noise, labels)

    train = draw(num_samples)
    test = draw(max(1, num_samples // 5))
    classes = [f"class_{index}" for index in range(num_classes)]
    # A template's identity is its exact layout, so augmentations that move pixels stay off.
    return Source(train, test, classes, flip=False, pad_crop=0)
