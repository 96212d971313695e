"""Spectrogram images as files: metadata in and out, PNG saving, checked uploads, composites.

An image carries its parameters and max value twice: riffusion's EXIF tags (riffusion presets and
any power-scaled image) and our PNG text chunk (JSON, every field). PIL drops both on save unless
told, hence :func:`save_image`.
"""

from __future__ import annotations

import io
import json
import os
import typing as T

from PIL import Image, PngImagePlugin

from core.errors import InputError

from pipelines.signal.spectrogram.params import AUDIO_DIFFUSION, PNG_TEXT_KEY, RIFFUSION, ExifTags, SpectrogramParams


def attach_metadata(img: Image.Image, params: SpectrogramParams, max_value: float, stereo: bool) -> None:
    """Write the EXIF tags (riffusion-readable presets only) and the PNG text chunk into ``img``."""
    if params.name == "riffusion" or params.image_scale == "power":
        tags = params.to_exif()
        tags[ExifTags.STEREO] = bool(stereo)
        tags[ExifTags.MAX_VALUE] = float(max_value)
        img.getexif().update(tags.items())
    img.info[PNG_TEXT_KEY] = json.dumps(
        {"preset": params.name, "params": params.to_dict(), "max_value": max_value, "stereo": bool(stereo)}
    )


def read_metadata(image: Image.Image) -> dict:
    """{"params": SpectrogramParams, "max_value": float | None, "stereo": bool | None, "source": str}.

    Our PNG text chunk wins; else riffusion's EXIF (tag 11080 = max value); else the image's height
    picks the preset in any mode (256 px: audio-diffusion, otherwise riffusion). InputError when our
    text chunk is present but unreadable.
    """
    text = image.info.get(PNG_TEXT_KEY)
    if text:
        try:
            data = json.loads(text)
            params = SpectrogramParams.from_dict(data["params"])
            return {"params": params, "max_value": data.get("max_value"), "stereo": data.get("stereo"), "source": "png"}
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"The image's spectrogram metadata is unreadable: {exc}") from None
    exif = image.getexif()
    if ExifTags.MAX_VALUE in exif or ExifTags.SAMPLE_RATE in exif:
        max_value = exif.get(ExifTags.MAX_VALUE)
        stereo = exif.get(ExifTags.STEREO)
        return {"params": SpectrogramParams.from_exif(exif, RIFFUSION),
                "max_value": None if max_value is None else float(max_value),
                "stereo": None if stereo is None else bool(stereo), "source": "exif"}
    # the height is the mel count, whatever the mode (L, RGB, palette): mono or stereo is read from the
    # pixels later (codec._image_channels)
    params = AUDIO_DIFFUSION if image.height == AUDIO_DIFFUSION.n_mels else RIFFUSION
    return {"params": params, "max_value": None, "stereo": None, "source": "size"}


def save_image(image: Image.Image, path: T.Union[str, os.PathLike, T.BinaryIO],
               text: T.Optional[T.Dict[str, str]] = None) -> None:
    """Save as PNG keeping the EXIF tags and the JSON text chunk (PIL drops both by default);
    ``text`` adds more PNG text chunks (key -> text). A spectrogram keeps only riffusion's tags
    (:class:`ExifTags`), so riffusion's reader opens it; everything else is in the text chunk."""
    png = PngImagePlugin.PngInfo()
    if image.info.get(PNG_TEXT_KEY):
        png.add_text(PNG_TEXT_KEY, image.info[PNG_TEXT_KEY])
    for key, value in (text or {}).items():
        png.add_text(key, value)
    exif = image.getexif()
    known = {int(tag) for tag in ExifTags}
    if known & set(exif):  # a spectrogram: only the tags riffusion's reader knows
        for tag in set(exif) - known:
            del exif[tag]
    kwargs = {"exif": exif} if len(exif) else {}
    image.save(path, format="PNG", pnginfo=png, **kwargs)


def image_bytes(image: Image.Image) -> bytes:
    """The PNG file :func:`save_image` writes, as bytes."""
    buf = io.BytesIO()
    save_image(image, buf)
    return buf.getvalue()


def sizes_accepted() -> str:
    """The sizes a spectrogram image may have, in words, for every refusal of one (the loader's and the
    codec's, so they agree): as high as its preset's mel bins, at most ``limits.MAX_SPECTROGRAM_WIDTH``
    wide (a little over the longest input, 100 columns per second)."""
    from pipelines.schema import limits

    return (f"as high as its preset's mel bins (riffusion {RIFFUSION.n_mels} px, audio-diffusion "
            f"{AUDIO_DIFFUSION.n_mels} px) and 1 to {limits.MAX_SPECTROGRAM_WIDTH} px wide")


def load_image(path: T.Union[str, os.PathLike]) -> Image.Image:
    """Open a spectrogram image from an uploaded file: 8-bit L or RGB, its metadata kept.

    Goes through :func:`pipelines.signal.images.open_image` (any mode and bit depth scaled, alpha on
    white, EXIF orientation, size checked before decoding). InputError for no path, a missing,
    huge or unreadable file, or an image over ``MAX_SPECTROGRAM_WIDTH`` x ``MAX_IMAGE_SIDE`` px (the
    header's bound; the height is then checked against the preset in ``codec.image_to_mel``); either
    refusal states :func:`sizes_accepted`.
    """
    from pipelines.signal import images
    from pipelines.schema import limits

    return images.open_image(path, what="spectrogram image (PNG)", max_width=limits.MAX_SPECTROGRAM_WIDTH,
                             max_height=limits.MAX_IMAGE_SIDE, accepted=sizes_accepted())


def as_mono_spectrogram(generated: Image.Image, source: Image.Image) -> Image.Image:
    """The model paints RGB; a mono spectrogram is its luminance, with the source's metadata."""
    gray = generated.convert("L").convert("RGB")
    gray.info.update(source.info)
    exif = source.getexif()
    if len(exif):
        gray.getexif().update(exif.items())
    return gray


def side_by_side(images: T.List[Image.Image]) -> Image.Image:
    """Window images left to right: the whole input as one picture (the only image, unchanged)."""
    if len(images) == 1:
        return images[0]
    strip = Image.new(images[0].mode, (sum(i.width for i in images), images[0].height))
    x = 0
    for image in images:
        strip.paste(image, (x, 0))
        x += image.width
    return strip
