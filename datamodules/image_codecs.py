"""Image codecs: reading and decoding image files to uint8 ``[C, H, W]`` tensors, and the binary PPM format.

Decoding is torchvision's (``torchvision.io``, libjpeg-turbo). Binary PPM files (``P6``: a short header and raw RGB
bytes, the ``--resized-format ppm`` copy, like the raw pixels of Caffe's ``convert_imageset`` database) need no
decoding: they are viewed in place. (torchvision 0.29 deprecates its image codecs for TorchCodec's,
``torchcodec.decoders.decode_image``, same call and speed: :func:`decode_rgb` is the one place to switch.)
"""

from __future__ import annotations

import re

import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as F

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
