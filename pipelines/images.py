"""Every uploaded image, in every tab, is opened here: one loader for pictures and spectrograms.

:func:`open_image` checks the file (present, not over ``limits.MAX_UPLOAD_BYTES``, not an SVG),
reads the size from the header and refuses an image over ``limits.MAX_IMAGE_PIXELS`` or the
caller's side limits *before* decoding (PIL's own decompression-bomb limit is set to the same
number), decodes, applies the EXIF orientation, and returns an 8-bit ``L`` or ``RGB`` image with
its metadata (``info``: PNG text chunks, EXIF) kept:

* 16-bit greyscale (``I;16*``) is scaled by 255/65535; 32-bit integer (``I``) by the smallest of
  8, 16 or 32 bits that holds its values; 32-bit float (``F``) in [0, 1] by 255, in [0, 255] as is,
  otherwise min-max to [0, 255]. Values are scaled, never clipped.
* Alpha (``RGBA``, ``LA``, ``PA``, premultiplied ``RGBa``/``La``, palette transparency) is
  composited on white, what a viewer shows; greyscale stays greyscale.
* ``1``, ``P``, ``CMYK``, ``YCbCr``, ``HSV``, ``RGBX`` become RGB (or L for 1-bit); ``LAB`` goes
  through a CIELAB -> sRGB colour transform.

Errors are ``InputError`` in the user's terms: the file's own name, never a server path.
"""

from __future__ import annotations

import os
import struct
import typing as T
import warnings

import numpy as np
from PIL import Image, ImageOps

from core.errors import InputError

from . import limits

# PIL's bomb check (a warning over the limit, an error over twice it) uses our limit too
Image.MAX_IMAGE_PIXELS = limits.MAX_IMAGE_PIXELS

_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, Image.DecompressionBombError)
_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def open_image(source: T.Union[str, os.PathLike], *, what: str = "picture", min_side: int = 1,
               max_width: int = limits.MAX_INPUT_IMAGE_SIDE,
               max_height: int = limits.MAX_INPUT_IMAGE_SIDE) -> Image.Image:
    """An 8-bit ``L`` or ``RGB`` image from an uploaded file (see the module doc for the conversions).

    ``what`` names the image in messages ("picture", "spectrogram image"). InputError for no path,
    a missing, empty, oversized, SVG or unreadable file, an image over ``limits.MAX_IMAGE_PIXELS``,
    or sides outside ``min_side`` .. ``max_width`` x ``max_height`` px.
    """
    if not source or not isinstance(source, (str, os.PathLike)):
        raise InputError(f"Please upload a {what}.")
    name = os.path.basename(os.fspath(source))  # never the server's full path
    if not os.path.isfile(source):
        raise InputError(f"The {what} file {name} does not exist.")
    size = os.path.getsize(source)
    if size > limits.MAX_UPLOAD_BYTES:
        raise InputError(f"The {what} {name} is larger than {limits.MAX_UPLOAD_BYTES // 2**20} MB.")
    if name.lower().endswith((".svg", ".svgz")) or _looks_like_svg(source):
        raise InputError(f"{name} is an SVG drawing; please export it as PNG or JPEG first.")
    unreadable = f"{name} is not an image that can be read; please upload a PNG, JPEG, WebP or TIFF file."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused just below, undecoded
            image = Image.open(source)
    except Image.DecompressionBombError:
        raise InputError(_too_many_pixels(name, None)) from None
    except _DECODE_ERRORS:
        raise InputError(unreadable) from None
    width, height = image.size
    if width * height > limits.MAX_IMAGE_PIXELS:
        image.close()
        raise InputError(_too_many_pixels(name, (width, height)))
    if not (min_side <= width <= max_width and min_side <= height <= max_height):
        image.close()
        raise InputError(f"The {what} is {width}x{height} px; {min_side} to {max_width} px wide and "
                         f"{min_side} to {max_height} px high are accepted.")
    try:
        image.load()
        image = ImageOps.exif_transpose(image) if image.getexif().get(0x0112, 1) != 1 else image
    except _DECODE_ERRORS:
        raise InputError(f"{name} is damaged or cut short and cannot be decoded.") from None
    return to_8bit(image)


def _looks_like_svg(path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip().lower()
    return head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head)


def _too_many_pixels(name: str, size: T.Optional[T.Tuple[int, int]]) -> str:
    shown = f" ({size[0]}x{size[1]} px)" if size else ""
    return f"{name}{shown} is too large: images up to {limits.MAX_IMAGE_PIXELS // 1_000_000} megapixels are accepted."


def to_8bit(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit ``L`` (greyscale sources) or ``RGB`` (everything else), metadata kept.

    Bit depths are scaled, alpha is composited on white (see the module doc). L and RGB come back
    unchanged (the same object).
    """
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode.startswith("I") or mode == "F":
        out = Image.fromarray(_scale_to_8bit(np.asarray(image)), mode="L")
    elif "A" in mode or "a" in mode or (mode == "P" and "transparency" in image.info):
        source = image
        if mode == "La":  # premultiplied grey: PIL converts it to nothing, so undo the premultiplication here
            grey, alpha = np.asarray(image, dtype=np.float64).transpose(2, 0, 1)
            grey = np.where(alpha > 0, grey * 255 / np.maximum(alpha, 1), 0)
            source = Image.fromarray(np.stack([grey, alpha], -1).round().clip(0, 255).astype(np.uint8), "LA")
        rgba = source.convert("RGBA")
        out = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
        if mode in _GREY_MODES:
            out = out.convert("L")
    elif mode == "LAB":
        from PIL import ImageCms

        lab_to_srgb = ImageCms.buildTransformFromOpenProfiles(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
        out = ImageCms.applyTransform(image, lab_to_srgb)
    else:
        out = image.convert("L" if mode == "1" else "RGB")
    out.info.update(image.info)
    return out


def _scale_to_8bit(values: np.ndarray) -> np.ndarray:
    """uint8 levels from an integer or float greyscale array, scaled to the range of its type."""
    data = values.astype(np.float64)
    if not np.isfinite(data).all():
        raise InputError("The image holds values that are not finite numbers (NaN or infinity).")
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    stretch = (255.0 / (high - low) if high > low else 0.0), low  # onto the 8-bit levels
    if values.dtype.kind == "f":
        if low >= 0 and high <= 1:
            scale, offset = 255.0, 0.0
        elif low >= 0 and high <= 255:
            scale, offset = 1.0, 0.0
        else:
            scale, offset = stretch
    elif low < 0:
        scale, offset = stretch
    else:  # 16-bit files by their depth; 32-bit integers by the smallest depth that holds the values
        full = 65535.0 if values.dtype.itemsize == 2 else next(f for f in (255.0, 65535.0, 2.0**32 - 1) if high <= f)
        scale, offset = 255.0 / full, 0.0
    return np.clip(np.round((data - offset) * scale), 0, 255).astype(np.uint8)
