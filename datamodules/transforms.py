"""The preprocessing presets of a sample, on the CPU: ``caffe`` (the paper's geometry) and ``torchvision``.

Everything works on uint8 ``[C, H, W]`` tensors (decoded by :mod:`datamodules.image_codecs`), so a sample costs one
decode, one resize and one crop. The caffe preset's mean subtraction is done per batch (:mod:`datamodules.batches`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

# torchvision's reference normalisation (0-1 scale).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def warp(image: Tensor, size: int) -> Tensor:
    """Resize to ``size`` x ``size`` ignoring the aspect ratio, as the Caffe ImageNet recipe did.

    Bilinear without antialiasing, like the OpenCV ``INTER_LINEAR`` resize in Caffe's ``convert_imageset``.
    An image already of that size (the pre-resized copy) is returned as is.
    """
    if image.shape[-2:] == (size, size):
        return image
    return F.resize(image, [size, size], interpolation=v2.InterpolationMode.BILINEAR, antialias=False)


def subtract_mean_and_mirror(pixels: Tensor, mean: Tensor, mirror: Tensor | bool, scale: float = 1.0) -> Tensor:
    """0-255 pixels minus the mean image, times ``scale``, then mirrored where asked (Caffe's data layer).

    Args:
        pixels: uint8 images ``[..., C, H, W]``.
        mean: The mean image over the same window, float ``[C, H, W]``.
        mirror: Whether to flip left-right; a bool, or a bool tensor broadcastable to ``pixels``.
        scale: Caffe's ``transform_param.scale`` (1 in the paper).

    Returns:
        float32 images of the same shape.
    """
    centred = pixels.float() - mean
    if scale != 1.0:
        centred *= scale
    if isinstance(mirror, bool):
        return centred.flip(-1) if mirror else centred
    return torch.where(mirror, centred.flip(-1), centred)


# The caffe geometry's presets: (side of the warped image, side of the crop). ``large``: the paper's 256 and 227;
# ``small``: the same ratio for images of about 32 pixels (CIFAR-sized), 32 and 28.
GEOMETRY_PRESETS = {"large": (256, 227), "small": (32, 28)}


def subtracted_mean(mean_image: Tensor, kind: str) -> Tensor:
    """The mean a batch has subtracted: the per-pixel mean image (``pixel``, the paper's) or its per-channel average
    at every pixel (``channel``), float ``[C, S, S]`` either way.

    Raises:
        ValueError: Another kind.
    """
    if kind == "pixel":
        return mean_image
    if kind == "channel":
        return mean_image.mean((1, 2), keepdim=True).expand_as(mean_image).contiguous()
    raise ValueError(f"unknown mean {kind!r}; valid: pixel (the per-pixel mean image), channel (per-channel means)")


class Warp:
    """Transform: :func:`warp` to ``size`` x ``size`` (uint8 out); the input of the mean image.

    It draws nothing: the ``generator`` a training set passes (see :class:`CaffeTransform`) is not used.
    """

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return warp(image, self.size)


class CaffeCrop(NamedTuple):
    """A uint8 crop, already mirrored if drawn so, and where it was taken; the batch's
    :class:`~datamodules.batches.CaffeCollate` centres it."""

    pixels: Tensor
    top: int
    left: int
    mirror: bool


class CaffeTransform:
    """The paper's geometry: warp to ``size``², then a crop, mirrored at random in training.

    Training takes a random crop at offsets ``0 .. size - crop - 1`` (Caffe's ``Rand() % (size - crop)``)
    and mirrors half the images; evaluation takes the centre crop, unmirrored. The mean subtraction is
    left to :class:`~datamodules.batches.CaffeCollate`, which writes each float pixel of the batch once.

    The offsets and the mirror are drawn from ``generator`` (a training set passes one seeded per sample, so
    the draws do not depend on the worker process), or from torch's global generator when it is None.

    Args:
        size: Side of the warped image (256).
        crop: Side of the crop fed to the network (227).
        train: Random crop and mirror (True) or centre crop (False).
    """

    def __init__(self, size: int = 256, crop: int = 227, train: bool = True) -> None:
        if crop > size:
            raise ValueError(f"crop {crop} is larger than the warped image {size}")
        self.size, self.crop, self.train = size, crop, train

    def __call__(self, image: Tensor, generator: torch.Generator | None = None) -> CaffeCrop:
        image = warp(image, self.size)
        if self.train:
            top, left = torch.randint(0, max(self.size - self.crop, 1), (2,), generator=generator).tolist()
            mirror = bool(torch.randint(0, 2, (), generator=generator).item())
        else:
            top = left = (self.size - self.crop) // 2
            mirror = False
        pixels = image[:, top : top + self.crop, left : left + self.crop]
        return CaffeCrop(pixels.flip(-1) if mirror else pixels, top, left, mirror)


class TorchvisionPreset:
    """:func:`torchvision_transform` whose random draws come from a given generator.

    torchvision's transforms draw from torch's global generator; given a ``generator`` (a training sample's),
    the call runs on a fork of the global generator seeded from it, and the global state is put back after.

    Args:
        train: Training (random resized crop and flip) or evaluation preset.
        crop: Side of the network input.
        resize: Shorter side of the evaluation resize.
    """

    def __init__(self, train: bool, crop: int = 224, resize: int = 256) -> None:
        self.transform = torchvision_transform(train, crop, resize)

    def __call__(self, image: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if generator is None:
            return self.transform(image)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (), generator=generator)))
            return self.transform(image)


def torchvision_transform(train: bool, crop: int = 224, resize: int = 256) -> v2.Compose:
    """torchvision's reference ImageNet preset on uint8 tensors.

    Training: RandomResizedCrop(crop) and a horizontal flip; evaluation: Resize(resize) (shorter side)
    and CenterCrop(crop). Both end with ToDtype(float32, 0-1) and Normalize(ImageNet mean and std).
    """
    geometry = (
        [v2.RandomResizedCrop(crop, antialias=True), v2.RandomHorizontalFlip()]
        if train
        else [v2.Resize(resize, antialias=True), v2.CenterCrop(crop)]
    )
    return v2.Compose([*geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
