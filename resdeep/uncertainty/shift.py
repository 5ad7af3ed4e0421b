"""Dataset shift: the test split corrupted on the fly, at a sequence of severities.

Two protocols, each with its source's own numbers:

- rotation and translation follow Ovadia et al. (NeurIPS 2019) on MNIST: every image rotated by
  the same angle, 0-180 degrees in 15-degree steps, or shifted to the right by 0 to half its
  width in 1/14-width steps (2 pixels of a 28-pixel MNIST digit); uncovered pixels are black
  (the digits' background), values between pixels bilinear;
- gaussian_noise, gaussian_blur and contrast are three CIFAR-10-C families (Hendrycks &
  Dietterich, ICLR 2019), computed as its code computes them, with its five severities for 32x32
  images as they are: noise of std 0.04-0.10 of the intensity range, blur of 0.4-1 pixel
  (scikit-image's gaussian: scipy's filter, 4σ, edges extended), contrast cut to 0.75-0.15 of
  itself about each channel's mean. On 8x8 digits a pixel is a larger part of the image, so
  blur is stronger there relative to the digit than on CIFAR-10.

Severity 0 is the clean split, returned untouched. Images stay uint8 (what every uncertainty
method takes): each corruption works in [0, 1] floats and rounds back. Only the noise is
random: one N(0, 1) draw per pixel from a stream of its own (NOISE_STREAM + seed: the methods
draw from the seed itself and its first few successors), scaled by each severity's std, so the
severities of one seed differ only in strength.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from resdeep.choices import SHIFT_KINDS
from resdeep.errors import UsageError

# Per kind, the parameter at severity 1, 2, ... (severity 0: none).
ROTATION_DEGREES = tuple(15.0 * level for level in range(1, 13))  # 15 ... 180
TRANSLATION_FRACTIONS = tuple(level / 14 for level in range(1, 8))  # 1/14 ... 1/2 of the width
NOISE_STDS = (0.04, 0.06, 0.08, 0.09, 0.10)  # CIFAR-10-C gaussian_noise
BLUR_SIGMAS = (0.4, 0.6, 0.7, 0.8, 1.0)  # CIFAR-10-C gaussian_blur, pixels
CONTRAST_FACTORS = (0.75, 0.5, 0.4, 0.3, 0.15)  # CIFAR-10-C contrast
# Added to --seed for the noise: far from the streams the methods draw from (the seed for MC
# dropout and Laplace's samples, +1 OOD, +2 temperature, +3 Laplace's prior search).
NOISE_STREAM = 1_000_003


@dataclass(frozen=True)
class ShiftKind:
    """One corruption family: its parameter per severity and how it is written."""

    name: str
    parameters: tuple[float, ...]  # severity 1, 2, ...
    unit: str  # how a parameter is shown: "{:g}°", "σ={:g}", ...

    @property
    def max_severity(self) -> int:
        return len(self.parameters)

    def parameter(self, severity: int) -> float:
        """The corruption's strength at `severity` (0 at severity 0, a factor of 1 for
        contrast)."""
        if severity == 0:
            return 1.0 if self.name == "contrast" else 0.0
        return self.parameters[severity - 1]

    def shown(self, severity: int) -> str:
        return "clean" if severity == 0 else self.unit.format(self.parameter(severity))


KINDS = {
    kind.name: kind
    for kind in (
        ShiftKind("rotation", ROTATION_DEGREES, "{:g}°"),
        ShiftKind("gaussian_noise", NOISE_STDS, "σ={:g}"),
        ShiftKind("gaussian_blur", BLUR_SIGMAS, "σ={:g} px"),
        ShiftKind("contrast", CONTRAST_FACTORS, "×{:g}"),
        ShiftKind("translation", TRANSLATION_FRACTIONS, "{:.0%} of width"),
    )
}
assert tuple(KINDS) == SHIFT_KINDS  # one list of names, the torch-free one in choices


def parse_kinds(text: str) -> list[str]:
    """`rotation,contrast` -> the kinds, in the order given; `all` -> every kind."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(SHIFT_KINDS)
    if "all" in names:
        raise UsageError("--shift all stands alone: it already names every kind")
    unknown = [name for name in names if name not in KINDS]
    if unknown or not names:
        raise UsageError(
            f"unknown --shift kind {(unknown or [text])[0]!r}; choose from "
            f"{', '.join(SHIFT_KINDS)} (several: rotation,contrast; or all)"
        )
    return list(dict.fromkeys(names))


def parse_severities(text: str | None, kinds: Sequence[str]) -> dict[str, list[int]]:
    """Each kind's severities, 0 (the clean split, every curve's start) included: `text` is a
    comma list like 0,2,4 (the same for every kind); None: each kind's whole range."""
    if text is None:
        return {kind: list(range(KINDS[kind].max_severity + 1)) for kind in kinds}
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not all(part.lstrip("-").isascii() and part.lstrip("-").isdigit() for part in parts):
        raise UsageError(f"--severities takes whole numbers like 0,2,4, got {text!r}")
    levels = sorted({0, *(int(part) for part in parts)})
    if levels == [0]:
        raise UsageError(
            f"--severities {text!r} names no shifted severity (0 is the clean split, always "
            "scored); give e.g. 0,2,4"
        )
    for kind in kinds:
        top = KINDS[kind].max_severity
        wrong = [level for level in levels if not 0 <= level <= top]
        if wrong:
            raise UsageError(
                f"--severities {wrong[0]} is out of range for {kind}: its severities are 0-{top}"
                f" ({KINDS[kind].shown(1)} ... {KINDS[kind].shown(top)}); one list serves every "
                "kind given"
            )
    return {kind: levels for kind in kinds}


def corrupt(images: torch.Tensor, kind: str, severity: int, seed: int = 0) -> torch.Tensor:
    """`images` (N, C, H, W) uint8 corrupted by `kind` at `severity`: uint8 of the same shape;
    severity 0 returns `images` itself."""
    if severity == 0:
        return images
    parameter = KINDS[kind].parameter(severity)
    pixels = images.float().div_(255.0)
    shifted = CORRUPTIONS[kind](pixels, parameter, seed)
    return shifted.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)


# fill=None: torchvision's grid sampling pads with zeros, so pixels from outside the image are
# black and edge pixels interpolate towards black once. A fill value (even 0) would blend the
# result with a resampled mask a second time and darken the edge pixels again.


def _rotate(pixels: torch.Tensor, degrees: float, seed: int) -> torch.Tensor:
    import torchvision.transforms.v2.functional as F  # on use: seconds to import
    from torchvision.transforms import InterpolationMode

    # Counter-clockwise about the centre; at multiples of 90 degrees every sample falls on a
    # pixel centre, so four quarter turns give the image back exactly.
    return F.rotate(pixels, degrees, interpolation=InterpolationMode.BILINEAR, fill=None)


def _translate(pixels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    import torchvision.transforms.v2.functional as F
    from torchvision.transforms import InterpolationMode

    right = fraction * pixels.shape[-1]
    return F.affine(
        pixels, angle=0.0, translate=[right, 0.0], scale=1.0, shear=[0.0, 0.0],
        interpolation=InterpolationMode.BILINEAR, fill=None,
    )  # fmt: skip


def _gaussian_noise(pixels: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(NOISE_STREAM + seed)
    noise = torch.randn(pixels.shape, generator=generator)
    return pixels.add_(noise.mul_(std))


def _gaussian_blur(pixels: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    from scipy.ndimage import gaussian_filter

    # CIFAR-10-C's skimage.filters.gaussian is this scipy filter with its defaults: 4σ, the
    # edge pixels extended; each channel alone. (torchvision's blur reflects at the edges and
    # cannot pad an image smaller than its kernel.)
    blurred = gaussian_filter(pixels.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest")
    return torch.from_numpy(blurred)


def _contrast(pixels: torch.Tensor, factor: float, seed: int) -> torch.Tensor:
    # Each channel pulled towards its own mean over the image, as CIFAR-10-C computes it
    # (torchvision's adjust_contrast pulls every channel towards the mean grey instead).
    means = pixels.mean(dim=(2, 3), keepdim=True)
    return pixels.sub_(means).mul_(factor).add_(means)


CORRUPTIONS: dict[str, Callable[[torch.Tensor, float, int], torch.Tensor]] = {
    "rotation": _rotate,
    "gaussian_noise": _gaussian_noise,
    "gaussian_blur": _gaussian_blur,
    "contrast": _contrast,
    "translation": _translate,
}
