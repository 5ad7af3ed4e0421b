"""Image files in, model inputs out: any PNG/JPEG (or other PIL format), any size, gray or
colour, preprocessed exactly as a checkpoint's training data was.

Training data is uint8 (C, H, W), resized with torch's antialiased bilinear interpolation and
normalised with the training split's mean and std; `load_image` repeats those steps with the
numbers the checkpoint stores, so a file of a training image gives the training tensor.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from resdeep.choices import CROPS
from resdeep.data import normalize
from resdeep.data.imagefolder import IMAGE_SUFFIXES
from resdeep.errors import ResdeepError, first_line

# Decoding allocates width * height * channels bytes before any check can run; 100 megapixels
# is a 300 MB RGB image, beyond any photo worth explaining and short of exhausting memory.
MAX_PIXELS = 100_000_000
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


class Preprocessing(Protocol):
    """What `load_image` needs from a checkpoint: resdeep.checkpoint.CheckpointInfo has it."""

    input_shape: tuple[int, int, int]  # (C, H, W)
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class View:
    """The part of the original image the net sees, in its pixels: a box that may reach past
    the image's edges (padding) or cover only its centre (cropping)."""

    left: int
    top: int
    width: int
    height: int

    @classmethod
    def of(cls, image: Image.Image, crop: str) -> View:
        width, height = image.size
        if crop == "none":
            return cls(0, 0, width, height)
        if crop not in CROPS:
            raise ResdeepError(f"unknown crop {crop!r}; choose one of {', '.join(CROPS)}")
        side = min(width, height) if crop == "center" else max(width, height)
        return cls((width - side) // 2, (height - side) // 2, side, side)

    def box(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.left + self.width, self.top + self.height)


def load_image(
    path: str | Path, info: Preprocessing, crop: str = "center"
) -> tuple[torch.Tensor, Image.Image]:
    """(normalised float tensor (1, C, H, W) of the part `crop` keeps, the original image
    upright) for a checkpoint.

    Raises ResdeepError with a one-line message for a missing, empty, truncated, oversized or
    non-image file.
    """
    image = read_image(path)
    seen, _ = crop_to_view(image, crop)
    return preprocess(seen, info), image


def crop_to_view(image: Image.Image, crop: str) -> tuple[Image.Image, View]:
    """The square part of `image` the net is shown, and where it lies on the image."""
    view = View.of(image, crop)
    if crop == "none":
        return image, view
    # PIL fills a box past the edges with black: the padding of crop="pad".
    return _eight_bit(image).crop(view.box()), view


def read_image(path: str | Path) -> Image.Image:
    """Decode an image file fully (so truncation shows here), turned upright by its EXIF tag."""
    path = Path(path)
    if not path.exists():
        raise ResdeepError(f"{path}: no such file")
    if path.is_dir():
        raise ResdeepError(f"{path}: is a directory, not an image")
    try:
        if path.stat().st_size == 0:
            raise ResdeepError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            # PIL warns between its own limit and twice it; ours is checked just below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                width, height = opened.size  # read from the header; nothing decoded yet
                if width * height > MAX_PIXELS:
                    raise ResdeepError(_too_large(path, width, height))
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except Image.DecompressionBombError as error:
        raise ResdeepError(
            f"{path}: larger than the {MAX_PIXELS // 10**6} megapixel limit"
        ) from error
    except Image.UnidentifiedImageError as error:
        raise ResdeepError(f"{path}: not an image file PIL can read") from error
    except ResdeepError:
        raise
    except Exception as error:
        # PIL reports truncated data as OSError, and corrupt data in a file's header or EXIF
        # block as SyntaxError, ValueError, struct.error and more; any of them is one bad file.
        reason = first_line(error, type(error).__name__)
        raise ResdeepError(f"{path}: cannot read the image ({reason})") from error
    return image


def preprocess(image: Image.Image, info: Preprocessing) -> torch.Tensor:
    """(1, C, H, W) float: channels converted, resized, normalised as in training."""
    return normalize(input_pixels(image, info), info.mean, info.std)


def input_pixels(image: Image.Image, info: Preprocessing) -> torch.Tensor:
    """(1, C, H, W) uint8: channels converted and resized as in training, not yet normalised."""
    channels, height, width = info.input_shape
    if channels not in (1, 3):
        raise ResdeepError(f"the checkpoint expects {channels}-channel input; images give 1 or 3")
    pixels = np.asarray(_eight_bit(image).convert("L" if channels == 1 else "RGB"))
    tensor = torch.from_numpy(pixels.copy()).view(pixels.shape[0], pixels.shape[1], channels)
    tensor = tensor.permute(2, 0, 1)[None]  # (1, C, h, w) uint8
    if tuple(tensor.shape[-2:]) != (height, width):
        # The data pipeline's own resize (resdeep.data.splits.resize), so inputs match training.
        resized = F.interpolate(
            tensor.float(), size=(height, width), mode="bilinear", antialias=True
        )
        tensor = resized.round_().clamp_(0, 255).to(torch.uint8)
    return tensor


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit and float images scaled to 0..255; PIL's own conversion would clip them."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if image.mode != "I" or values.max(initial=0) > 255 else 1.0
        return Image.fromarray(np.clip(values / scale, 0, 255).round().astype(np.uint8))
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(values * scale, 0, 255).round().astype(np.uint8))
    return image


def _too_large(path: Path, width: int, height: int) -> str:
    return (
        f"{path}: {width}x{height} is {width * height / 1e6:.0f} megapixels, more than the "
        f"{MAX_PIXELS // 10**6} megapixel limit; downscale it first"
    )


# When an input is too far from the training images for its prediction to mean much
# (`input_warning`). Colour: the mean distance of a pixel's channels from their grey, of 255; a
# grey picture stored as RGB stays below it. Shrinking: a net of at most 16x16 inputs (8x8
# digits) keeps only a blob of a big picture, while CIFAR's 32x32 images are themselves shrunk
# photos. Enlarging: past twofold the net sees interpolated blur, not detail at the scale it
# learned (an 8x8 digit given to a 32x32 CIFAR net).
COLOUR_SPREAD = 8
SMALL_INPUT_SIDE = 16
MAX_SHRINK = 8
MAX_ENLARGE = 2


class TrainingInputs(Preprocessing, Protocol):
    """What `input_warning` compares an image with: resdeep.checkpoint.CheckpointInfo has it."""

    @property
    def data_name(self) -> str: ...


def input_warning(image: Image.Image, seen: Image.Image, info: TrainingInputs) -> str | None:
    """One sentence when an input is far from the checkpoint's training images: a colour
    picture for a greyscale net, a big one shrunk more than eightfold into a tiny input, or a
    small one enlarged more than twofold (`seen`: the part of `image` the net is shown). A grey
    picture for a colour net is no reason: such nets still see shape and texture in it."""
    channels, height, width = info.input_shape
    reasons = []
    if channels == 1 and image.mode not in ("1", "L", "LA", "I", "F", *_SIXTEEN_BIT_MODES):
        rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
        if np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean() > COLOUR_SPREAD:
            reasons.append("a colour image")
    seen_width, seen_height = seen.size
    size = f"{seen_width}x{seen_height} pixels"
    if max(height, width) <= SMALL_INPUT_SIDE and min(seen.size) > MAX_SHRINK * max(height, width):
        reasons.append(f"{size} shrunk to {width}x{height}")
    if min(seen_width / width, seen_height / height) * MAX_ENLARGE < 1:
        reasons.append(f"{size} enlarged to {width}x{height}")
    if not reasons:
        return None
    kind = "greyscale" if channels == 1 else "colour"
    return (
        f"{' and '.join(reasons)}, but the checkpoint was trained on {width}x{height} {kind} "
        f"{info.data_name} images: its prediction says little about this input"
    )


def image_files(directory: Path) -> list[Path]:
    """The image files directly inside `directory`, by name."""
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
