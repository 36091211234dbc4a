"""Image decoding and the preprocessing presets: ``caffe`` (the paper's) and ``torchvision``.

Everything works on uint8 ``[C, H, W]`` tensors from ``torchvision.io`` (libjpeg-turbo), so a sample
costs one decode, one resize and one crop. Binary PPM files (``P6``: a short header and raw RGB bytes, the
``--resized-format ppm`` copy, like the raw pixels of Caffe's ``convert_imageset`` database) need no
decoding: they are viewed in place. (torchvision 0.29 deprecates its image codecs for TorchCodec's,
``torchcodec.decoders.decode_image``, same call and speed: :func:`decode_rgb` is the one place to switch.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils.data import get_worker_info
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from datamodules.corrupt import drop_unreadable

# torchvision's reference normalisation (0-1 scale).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Errors a bad image file raises: torchvision's decoders raise RuntimeError, reading raises OSError.
DECODE_ERRORS = (RuntimeError, OSError)


# A binary PPM header: magic, width, height, maxval, each token after whitespace or ``#`` comment lines,
# and one whitespace byte before the raster.
_PPM_HEADER = re.compile(rb"P6(?:\s|#[^\n]*\n)+(\d+)(?:\s|#[^\n]*\n)+(\d+)(?:\s|#[^\n]*\n)+(\d+)\s")


def read_rgb(path: str) -> Tensor:
    """Read and decode an image file (JPEG, PNG, binary PPM, grayscale or CMYK) to uint8 RGB ``[3, H, W]``.

    Raises:
        RuntimeError: The file does not decode (corrupt, truncated, unknown format).
        OSError: The file cannot be read.
    """
    return decode_rgb(read_file(path))


# The read mode of each channel count an image folder may hold (grey, grey + alpha, RGB, RGBA).
READ_MODES = {1: ImageReadMode.GRAY, 2: ImageReadMode.GRAY_ALPHA, 3: ImageReadMode.RGB, 4: ImageReadMode.RGB_ALPHA}
# The channels torchvision decodes a file of each PIL mode to (a palette is expanded; CMYK JPEGs read as RGB).
_MODE_CHANNELS = {
    "1": 1,
    "L": 1,
    "I": 1,
    "I;16": 1,
    "I;16B": 1,
    "I;16L": 1,
    "F": 1,
    "LA": 2,
    "La": 2,
    "P": 3,
    "RGB": 3,
    "YCbCr": 3,
    "CMYK": 3,
    "LAB": 3,
    "HSV": 3,
    "PA": 4,
    "RGBA": 4,
    "RGBa": 4,
}


def read_image(path: str, channels: int = 3) -> Tensor:
    """Read and decode an image file to uint8 ``[channels, H, W]`` (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA).

    A file of other channels is converted (RGB to grey, grey to RGB, ...); 16-bit images are scaled to 8 bits.

    Raises:
        RuntimeError: The file does not decode.
        OSError: The file cannot be read.
    """
    image = read_rgb(path) if channels == 3 else decode_image(read_file(path), mode=READ_MODES[channels])
    return image if image.dtype == torch.uint8 else F.to_dtype(image, torch.uint8, scale=True)


def image_channels(path: str) -> int | None:
    """The channels an image file decodes to, from its header alone; None if the file is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return _MODE_CHANNELS.get(image.mode, len(image.getbands()))
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def decode_rgb(data: Tensor) -> Tensor:
    """Decode an image file's bytes (uint8 ``[N]``) to uint8 RGB ``[3, H, W]``; a binary PPM is only viewed.

    Raises:
        RuntimeError: The bytes do not decode (corrupt, truncated, unknown format).
    """
    if data[:2].numpy().tobytes() == b"P6":
        return decode_ppm(data)
    return decode_image(data, mode=ImageReadMode.RGB)


def encode_ppm(image: Tensor) -> bytes:
    """A uint8 RGB ``[3, H, W]`` image as a binary PPM file (``P6``, maxval 255): raw pixels behind a header."""
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"encode_ppm takes a uint8 [3, H, W] image, got {image.dtype} {list(image.shape)}")
    height, width = image.shape[1:]
    return f"P6\n{width} {height}\n255\n".encode() + image.permute(1, 2, 0).contiguous().numpy().tobytes()


def decode_ppm(data: Tensor) -> Tensor:
    """View a binary PPM file's bytes (uint8 ``[N]``) as RGB ``[3, H, W]`` (a strided view, no copy).

    Raises:
        RuntimeError: Not a binary PPM with maxval 255, or the raster is truncated.
    """
    header = _PPM_HEADER.match(data[:512].numpy().tobytes())
    if header is None:
        raise RuntimeError("not a binary PPM (P6) image: unreadable header")
    width, height, maxval = (int(field) for field in header.groups())
    if maxval != 255:
        raise RuntimeError(f"binary PPM with maxval {maxval}: only 8-bit (255) images are read")
    pixels = data[header.end() :]
    if pixels.numel() != width * height * 3:
        raise RuntimeError(f"truncated PPM: {pixels.numel()} raster bytes, {width}x{height}x3 expected")
    return pixels.view(height, width, 3).permute(2, 0, 1)


def read_bytes_with_path(path: str) -> tuple[Tensor, str]:
    """A file's bytes (uint8 ``[N]``) and its path, for decoding later on the device.

    Raises:
        OSError: The file cannot be read.
    """
    return read_file(path), path


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
    """A uint8 crop, already mirrored if drawn so, and where it was taken; :class:`CaffeCollate` centres it."""

    pixels: Tensor
    top: int
    left: int
    mirror: bool


class CaffeTransform:
    """The paper's geometry: warp to ``size``², then a crop, mirrored at random in training.

    Training takes a random crop at offsets ``0 .. size - crop - 1`` (Caffe's ``Rand() % (size - crop)``)
    and mirrors half the images; evaluation takes the centre crop, unmirrored. The mean subtraction is
    left to :class:`CaffeCollate`, which writes each float pixel of the batch once.

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


class CaffeCollate:
    """Collate ``(CaffeCrop, label)`` samples into float32 0-255 images minus the mean image's windows.

    The mean is subtracted at the crop's source position before mirroring, as Caffe's data layer did
    (a mirrored crop gets the mirrored mean window). ``None`` samples (unreadable images) are dropped.

    Args:
        mean: The per-pixel mean of the warped training images, float ``[3, size, size]``.
        scale: Factor on the centred pixels (Caffe's ``transform_param.scale``; 1 in the paper).
    """

    def __init__(self, mean: Tensor, scale: float = 1.0) -> None:
        self.mean = mean.float().contiguous()
        self.mean_mirrored = self.mean.flip(-1).contiguous()
        self.scale = scale

    def __call__(self, samples: Sequence[tuple[CaffeCrop, int] | None]) -> tuple[Tensor, Tensor]:
        kept = drop_unreadable(samples)
        channels, crop, _ = kept[0][0].pixels.shape
        width = self.mean.shape[-1]
        images = _batch_tensor((len(kept), channels, crop, crop))
        for out, (sample, _) in zip(images, kept):
            left = width - sample.left - crop if sample.mirror else sample.left
            mean = self.mean_mirrored if sample.mirror else self.mean
            out.copy_(sample.pixels)  # uint8 to float in one pass, then subtract in place: ~10% faster than
            out.sub_(mean[:, sample.top : sample.top + crop, left : left + crop])  # torch.sub's promotion
        if self.scale != 1.0:
            images *= self.scale
        return images, torch.tensor([label for _, label in kept], dtype=torch.int64)


def _batch_tensor(shape: tuple[int, ...]) -> Tensor:
    """An empty float32 batch, in shared memory inside a DataLoader worker.

    Written straight into shared memory, the batch crosses to the main process without a copy; this is
    how ``default_collate`` allocates its output too. torch has no public call that allocates a tensor in shared
    memory (``Tensor.share_memory_`` allocates, then copies the whole batch): this is the one place that uses the
    private ``_typed_storage()._new_shared``, as ``default_collate`` does; ``tests/test_side_effects.py`` fails
    if it goes.
    """
    if get_worker_info() is None:
        return torch.empty(shape)
    storage = torch.empty(0)._typed_storage()._new_shared(math.prod(shape))
    return torch.empty(0).new(storage).view(shape)


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


def caffe_crop_on_device(
    images: Tensor, mean: Tensor, crop: int, train: bool, scale: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """The caffe preset's crop, mirror and mean subtraction on a uint8 batch, where the batch lies (e.g. a GPU).

    The same arithmetic as :class:`CaffeTransform` + :class:`CaffeCollate` (the mean window is taken at the
    crop's source position, then mirrored with the crop), done for the whole batch at once by gathering.

    Args:
        images: uint8 warped images ``[B, C, size, size]``.
        mean: The mean image, float ``[C, size, size]``, on the images' device.
        crop: Side of the crop.
        train: Random offsets in ``0 .. size - crop - 1`` and a random mirror (True), or the centre crop.
        scale: Factor on the centred pixels.
        generator: Generator for the offsets and mirrors (None: the global one of the images' device).

    Returns:
        float32 ``[B, C, crop, crop]``.
    """
    batch, _, size, _ = images.shape
    device = images.device
    if train:
        top, left = torch.randint(0, max(size - crop, 1), (2, batch), device=device, generator=generator)
        mirror = torch.randint(0, 2, (batch,), device=device, generator=generator).bool()
    else:
        top = left = torch.full((batch,), (size - crop) // 2, device=device)
        mirror = torch.zeros(batch, dtype=torch.bool, device=device)
    return crop_windows(images, mean, top, left, mirror, crop, scale)


def crop_windows(
    images: Tensor, mean: Tensor, top: Tensor, left: Tensor, mirror: Tensor, crop: int, scale: float = 1.0
) -> Tensor:
    """Per-image windows ``[top, left]`` of ``crop``², minus the mean's same window, mirrored where asked."""
    steps = torch.arange(crop, device=images.device)
    rows = top[:, None] + steps  # [B, crop]
    cols = torch.where(mirror[:, None], left[:, None] + crop - 1 - steps, left[:, None] + steps)
    index = torch.arange(len(images), device=images.device)[:, None, None]
    pixels = images[index, :, rows[:, :, None], cols[:, None, :]]  # [B, crop, crop, C]
    centred = pixels.float() - mean[:, rows[:, :, None], cols[:, None, :]].permute(1, 2, 3, 0)
    if scale != 1.0:
        centred *= scale
    return centred.permute(0, 3, 1, 2).contiguous()


def collate_uint8(samples: Sequence[tuple[Tensor, int] | None]) -> tuple[Tensor, Tensor]:
    """Stack warped uint8 images (unreadable ones dropped) for :func:`caffe_crop_on_device`."""
    kept = drop_unreadable(samples)
    return torch.stack([image for image, _ in kept]), torch.tensor([label for _, label in kept], dtype=torch.int64)


class JpegBatch(NamedTuple):
    """Undecoded images for :func:`decode_on_device`: file bytes (kept on the CPU), labels, paths."""

    data: list[Tensor]
    labels: Tensor
    paths: list[str]


def collate_jpeg_bytes(samples: Sequence[tuple[tuple[Tensor, str], int] | None]) -> JpegBatch:
    """Collate ``((file bytes, path), label)`` samples (unreadable files dropped) into a :class:`JpegBatch`."""
    kept = drop_unreadable(samples)
    return JpegBatch(
        [data for (data, _), _ in kept],
        torch.tensor([label for _, label in kept], dtype=torch.int64),
        [path for (_, path), _ in kept],
    )


def decode_on_device(
    batch: JpegBatch, size: int, device: torch.device, on_error: Callable[[str, BaseException], None]
) -> tuple[Tensor, Tensor]:
    """Decode a batch of JPEGs on ``device`` (nvJPEG on a GPU) and warp them to ``size``²; uint8 out.

    The batch is decoded in one call; if that fails, image by image, each failure retried with the CPU
    decoder (CMYK or non-JPEG files), and what still fails is reported to ``on_error`` and dropped.

    Raises:
        RuntimeError: Every image of the batch failed.
    """
    try:
        images = decode_jpeg(batch.data, mode=ImageReadMode.RGB, device=device)
        keep = list(range(len(images)))
    except DECODE_ERRORS:
        images, keep = [], []
        for index, (data, path) in enumerate(zip(batch.data, batch.paths)):
            try:
                images.append(decode_rgb(data).to(device))
                keep.append(index)
            except DECODE_ERRORS as err:
                on_error(path, err)
        drop_unreadable(images or [None] * len(batch.data))  # raises when nothing decoded
    warped = torch.stack([warp(image, size) for image in images])
    return warped, batch.labels.to(device)[torch.tensor(keep, device=device)]
