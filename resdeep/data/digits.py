"""scikit-learn's 8x8 digits: as they are, or placed on a larger canvas with a known box."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from resdeep.data.splits import TEST_SEED, DataError, Source, Split, carve_test

DIGIT_CLASSES = [str(digit) for digit in range(10)]
# Background noise of the placed digits reaches ~10 % of the range: visible texture, yet far
# below a stroke (255), so the box of pixels brighter than this is the digit and nothing else.
NOISE_MAX = 24


def _digit_pool() -> Split:
    """All 1797 real digits as (N, 1, 8, 8) uint8; sklearn stores them as 0..16."""
    from sklearn.datasets import load_digits  # imported on use: sklearn is slow to import

    bunch = load_digits()
    images = (torch.from_numpy(bunch.images) * (255 / 16)).round().to(torch.uint8).unsqueeze(1)
    return Split(images, torch.from_numpy(bunch.target).long())


def digits_source() -> Source:
    train, test = carve_test(_digit_pool())
    # 1 px of an 8 px image is the same relative shift as CIFAR's 4 px of 32; a mirrored digit
    # is a different glyph, so no flips.
    return Source(train, test, DIGIT_CLASSES, flip=False, pad_crop=1)


def digits_placed_source(canvas_size: int, seed: int) -> Source:
    """Each digit scaled to 3/8..5/8 of the canvas (12..20 px on 32) at a random position.

    The test set is placed with the fixed test seed, so it is the same for every run seed.
    No crop augmentation: moving the image would move the box too.
    """
    if canvas_size < 8:
        raise DataError(f"canvas_size must be at least 8 (the digits are 8x8), got {canvas_size}")
    train, test = carve_test(_digit_pool())
    return Source(
        place_digits(train, canvas_size, seed),
        place_digits(test, canvas_size, TEST_SEED),
        DIGIT_CLASSES,
        flip=False,
        pad_crop=0,
    )


def place_digits(digits: Split, canvas_size: int, seed: int) -> Split:
    """Paste each 8x8 digit, scaled up, onto a noisy canvas; boxes bound its visible pixels."""
    generator = torch.Generator().manual_seed(seed)
    count = len(digits)
    smallest = max(8, round(canvas_size * 3 / 8))
    largest = max(smallest, round(canvas_size * 5 / 8))
    sizes = torch.randint(smallest, largest + 1, (count,), generator=generator)
    # Top-left corners, uniform over the positions where the scaled digit fits: (N, 2) as x, y.
    corners = (
        torch.rand(count, 2, generator=generator) * (canvas_size - sizes + 1)[:, None]
    ).long()
    canvas = torch.randint(
        0,
        NOISE_MAX + 1,
        (count, 1, canvas_size, canvas_size),
        generator=generator,
        dtype=torch.uint8,
    )
    boxes = torch.empty(count, 4, dtype=torch.float32)
    for size in sizes.unique().tolist():
        members = (sizes == size).nonzero().squeeze(1)
        scaled = F.interpolate(digits.images[members].float(), size=(size, size), mode="bilinear")
        scaled = scaled.round_().clamp_(0, 255).to(torch.uint8)  # (m, 1, size, size)
        ink = scaled[:, 0] > NOISE_MAX  # (m, size, size)
        rows, cols = ink.any(dim=2), ink.any(dim=1)  # (m, size) each
        # argmax finds the first True; on the flipped mask it finds the last one.
        top, left = rows.byte().argmax(dim=1), cols.byte().argmax(dim=1)
        bottom = size - rows.flip(1).byte().argmax(dim=1)
        right = size - cols.flip(1).byte().argmax(dim=1)
        x0, y0 = corners[members, 0], corners[members, 1]
        boxes[members] = torch.stack([x0 + left, y0 + top, x0 + right, y0 + bottom], dim=1).float()
        for digit, index, x, y in zip(
            scaled, members.tolist(), x0.tolist(), y0.tolist(), strict=True
        ):
            region = canvas[index, :, y : y + size, x : x + size]
            torch.maximum(region, digit, out=region)  # strokes over the noise, in place
    return Split(canvas, digits.labels.clone(), boxes)
