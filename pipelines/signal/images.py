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

The decoding runs in a ``pipelines.signal.sandbox`` worker (a process with a time and a memory limit,
killed on overrun: "... could not be decoded within N s"); conversions work in bands of rows, so
the memory an image takes is bounded by its pixels (docs/LIMITS.md gives the bound).

Errors are ``InputError`` in the user's terms: the file's own name, never a server path.
"""

from __future__ import annotations

import os
import struct
import typing as T
import warnings

import numpy as np
from PIL import Image, ImageOps

from core.errors import InputError, concerning, file_error, shown_path

from pipelines.schema import limits

from pipelines.signal import sandbox

# PIL's bomb check (a warning over the limit, an error over twice it) uses our limit too
Image.MAX_IMAGE_PIXELS = limits.MAX_IMAGE_PIXELS

FORMATS = "PNG, JPEG, WebP or TIFF"  # what to use when a file does not decode (messages; ui.file_kinds)
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, Image.DecompressionBombError)
_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def sizes_accepted(min_side: int = 1, max_width: int = limits.MAX_INPUT_IMAGE_SIDE,
                   max_height: int = limits.MAX_INPUT_IMAGE_SIDE) -> str:
    """The sizes a loader takes, in words, for its refusals: the sides, and the pixel count where the
    sides alone would allow more than ``limits.MAX_IMAGE_PIXELS`` ("16 to 8192 px on each side, at
    most 50 megapixels"). Every size refusal states it, so no message contradicts another."""
    sides = (f"{min_side} to {max_width} px on each side" if max_width == max_height else
             f"{min_side} to {max_width} px wide and {min_side} to {max_height} px high")
    if max_width * max_height > limits.MAX_IMAGE_PIXELS:
        sides += f", at most {limits.MAX_IMAGE_PIXELS // 1_000_000} megapixels"
    return sides


@concerning("source")
def open_image(source: T.Union[str, os.PathLike], *, what: str = "picture", min_side: int = 1,
               max_width: int = limits.MAX_INPUT_IMAGE_SIDE,
               max_height: int = limits.MAX_INPUT_IMAGE_SIDE, accepted: T.Optional[str] = None) -> Image.Image:
    """An 8-bit ``L`` or ``RGB`` image from an uploaded file (see the module doc for the conversions).

    ``what`` names the image in messages ("picture", "spectrogram image"). InputError for no path,
    a missing, empty, oversized, SVG or unreadable file, an image over ``limits.MAX_IMAGE_PIXELS``,
    or sides outside ``min_side`` .. ``max_width`` x ``max_height`` px; a size refusal says what is
    ``accepted`` (default: :func:`sizes_accepted` of those limits; a caller whose own check is
    stricter, as the spectrogram's preset heights, states that rule instead).
    """
    if not source or not isinstance(source, (str, os.PathLike)):
        raise InputError(f"Please upload a {what}.")
    name = shown_path(os.fspath(source))  # in the app never the server's full path; on a command line the path given
    if not os.path.exists(source):
        raise file_error(what, source, "does not exist")
    if not os.path.isfile(source):
        raise file_error(what, source, "is not a file")
    if not os.access(source, os.R_OK):
        raise file_error(what, source, "cannot be read (permission denied)")
    size = os.path.getsize(source)
    if size > limits.MAX_UPLOAD_BYTES:
        raise InputError(f"The {what} {name} is larger than {limits.MAX_UPLOAD_BYTES // 2**20} MB.")
    if name.lower().endswith((".svg", ".svgz")) or _looks_like_svg(source):
        raise InputError(f"{name} is an SVG drawing; please export it as PNG or JPEG first.")
    # decoders can hang or run out of memory on a crafted file: in a worker that can be stopped
    accepted = accepted or sizes_accepted(min_side, max_width, max_height)
    return sandbox.run(_decode, os.fspath(source), name, what, min_side, max_width, max_height, accepted,
                       name=f"The {what} {name}")


_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}  # EXIF orientation tag -> the turn that shows the image upright


def _decode(source: str, name: str, what: str, min_side: int, max_width: int, max_height: int,
            accepted: str = "") -> Image.Image:
    """Header checks, decode, 8 bits, EXIF orientation (in a ``pipelines.signal.sandbox`` worker; see open_image)."""
    accepted = accepted or sizes_accepted(min_side, max_width, max_height)
    unreadable = f"{name} is not an image that can be read; use a {FORMATS} file."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused just below, undecoded
            image = Image.open(source)
    except Image.DecompressionBombError:
        raise InputError(_too_many_pixels(name, None, accepted)) from None
    except _DECODE_ERRORS:
        raise InputError(unreadable) from None
    width, height = image.size
    if width * height > limits.MAX_IMAGE_PIXELS:
        image.close()
        raise InputError(_too_many_pixels(name, (width, height), accepted))
    if not (min_side <= width <= max_width and min_side <= height <= max_height):
        image.close()
        raise InputError(f"The {what} is {width}x{height} px; accepted: {accepted}.")
    try:
        image.load()
        exif = image.getexif()
        turn = _ORIENTATION.get(exif.get(0x0112, 1))
    except _DECODE_ERRORS:
        raise InputError(f"{name} is damaged or cut short and cannot be decoded.") from None
    out = to_8bit(image)
    if out is not image:
        image.close()  # the decoded pixels go before the turn's copy is made
    if turn is not None:
        turned = out.transpose(turn)
        turned.info.update(out.info)
        del exif[0x0112]  # shown upright now: a viewer must not turn it again
        turned.info["exif"] = exif.tobytes()
        out = turned
    out.info = {key: value for key, value in out.info.items() if isinstance(value, (str, bytes, int, float))}
    return out  # ``info`` keeps what travels back from the worker: PNG text, EXIF bytes, dpi numbers


def _looks_like_svg(path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip().lower()
    return head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head)


def _too_many_pixels(name: str, size: T.Optional[T.Tuple[int, int]], accepted: str) -> str:
    shown = f" ({size[0]}x{size[1]} px)" if size else ""
    return f"{name}{shown} is too large; accepted: {accepted}."


STRIP_BYTES = 8 * 2**20  # conversions work on bands of rows of about this many decoded bytes
BAND_BYTES = 96 * 2**20  # what the bands (and the allocator's leftovers from them) may add, at most


def memory_bound(width: int, height: int, mode: str) -> int:
    """Bytes that opening a ``width`` x ``height`` image whose decoded PIL mode is ``mode`` may take at
    its peak, beyond the decoding process's baseline: the decoded pixels (PIL keeps 1 byte per pixel for
    ``1``/``L``/``P``, 2 for ``I;16*``, 4 for every other mode), the 8-bit result (``L``: 1, ``RGB``: 4;
    none when the image already is one) and ``BAND_BYTES`` for the bands of rows in between.
    docs/LIMITS.md quotes it; tests/test_hostile_files.py measures it."""
    decoded = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    result = 0 if mode in ("L", "RGB") else 1 if mode in _GREY_MODES else 4
    return width * height * (decoded + result) + BAND_BYTES


def to_8bit(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit ``L`` (greyscale sources) or ``RGB`` (everything else), metadata kept.

    Bit depths are scaled, alpha is composited on white (see the module doc). L and RGB come back
    unchanged (the same object). Memory: the result (``width x height`` x 1 byte for L, x 4 for
    RGB, PIL's layout) plus bands of rows of about ``STRIP_BYTES`` (LAB: one full-size copy more);
    see docs/LIMITS.md for the bound.
    """
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode.startswith("I") or mode == "F":
        out = _scale_to_8bit(image)
    elif "A" in mode or "a" in mode or (mode == "P" and "transparency" in image.info):
        out = _on_white(image, "L" if mode in _GREY_MODES else "RGB")
    elif mode == "LAB":
        from PIL import ImageCms

        lab_to_srgb = ImageCms.buildTransformFromOpenProfiles(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
        out = ImageCms.applyTransform(image, lab_to_srgb)
    else:
        out = image.convert("L" if mode == "1" else "RGB")
    out.info.update(image.info)
    return out


def _bands(image: Image.Image) -> T.Iterator[T.Tuple[int, Image.Image]]:
    """(top row, band) for bands of rows of about STRIP_BYTES decoded bytes (4 per pixel at most)."""
    width, height = image.size
    rows = max(1, STRIP_BYTES // max(1, 4 * width))
    for top in range(0, height, rows):
        yield top, image.crop((0, top, width, min(height, top + rows)))


def _on_white(image: Image.Image, out_mode: str) -> Image.Image:
    """Alpha composited on white, band by band, into one ``out_mode`` image."""
    out = Image.new(out_mode, image.size)
    for top, band in _bands(image):
        if band.mode == "La":  # premultiplied grey: PIL converts it to nothing, so undo the premultiplication here
            grey, alpha = np.asarray(band, dtype=np.float64).transpose(2, 0, 1)
            grey = np.where(alpha > 0, grey * 255 / np.maximum(alpha, 1), 0)
            band = Image.fromarray(np.stack([grey, alpha], -1).round().clip(0, 255).astype(np.uint8), "LA")
        rgba = band.convert("RGBA")
        shown = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        out.paste(shown.convert(out_mode), (0, top))
    return out


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    """An ``L`` image from an integer or float greyscale one, scaled to the range of its type, band by band.

    16-bit files by their depth; 32-bit integers by the smallest of 8, 16 or 32 bits that holds their
    values; floats in [0, 1] by 255, in [0, 255] as they are, anything else (and negative integers)
    min-max onto [0, 255]. InputError for NaN or infinity.
    """
    low, high, kind, itemsize = np.inf, -np.inf, "f", 4
    for _, band in _bands(image):  # first pass: the range (and that it is all finite)
        values = np.asarray(band)
        kind, itemsize = values.dtype.kind, values.dtype.itemsize
        if values.size == 0:
            continue
        if kind == "f" and not np.isfinite(values).all():
            raise InputError("The image holds values that are not finite numbers (NaN or infinity).")
        low, high = min(low, float(values.min())), max(high, float(values.max()))
    if low > high:
        low = high = 0.0
    stretch = (255.0 / (high - low) if high > low else 0.0), low  # onto the 8-bit levels
    if kind == "f":
        if low >= 0 and high <= 1:
            scale, offset = 255.0, 0.0
        elif low >= 0 and high <= 255:
            scale, offset = 1.0, 0.0
        else:
            scale, offset = stretch
    elif low < 0:
        scale, offset = stretch
    else:
        full = 65535.0 if itemsize == 2 else next(f for f in (255.0, 65535.0, 2.0**32 - 1) if high <= f)
        scale, offset = 255.0 / full, 0.0
    out = Image.new("L", image.size)
    for top, band in _bands(image):  # second pass: scale (float64: exact for 32-bit integers)
        levels = np.asarray(band, dtype=np.float64)
        levels -= offset
        levels *= scale
        np.clip(np.round(levels, out=levels), 0, 255, out=levels)
        out.paste(Image.fromarray(levels.astype(np.uint8), "L"), (0, top))
    return out
