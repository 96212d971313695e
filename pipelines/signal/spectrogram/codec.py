"""Audio <-> mel spectrogram <-> image, the forward direction and the lossless-up-to-8-bit one.

Audio to mel runs in torch on the ``device`` given; mel <-> image are pure functions of arrays
whose max value travels in the image's metadata (see :mod:`.image_files`). Going from a mel back to
sound is :mod:`.inversion`'s job.
"""

from __future__ import annotations

import typing as T

import numpy as np
import torch
from PIL import Image

from core.errors import InputError

from pipelines.signal.spectrogram import dsp
from pipelines.signal.spectrogram.image_files import attach_metadata, read_metadata, sizes_accepted
from pipelines.signal.spectrogram.params import RIFFUSION, SpectrogramParams, get_params

ParamsLike = T.Union[str, SpectrogramParams]


def stft_magnitude(audio, params: SpectrogramParams, device: dsp.Device = "cpu") -> torch.Tensor:
    """|STFT| at the preset's full parameters, (channels, n_fft // 2 + 1, frames), audio_scale applied."""
    x = dsp.as_audio(audio, dsp.torch_device(device)) * params.audio_scale
    return dsp.stft(x, params).abs()


def audio_to_mel(audio, params: ParamsLike = RIFFUSION, device: dsp.Device = "cpu") -> torch.Tensor:
    """Mel spectrogram (channels, n_mels, frames): magnitude (riffusion) or power (audio-diffusion).

    ``audio`` is (n,) or (channels<=2, n) at the preset's sample rate; InputError otherwise.
    """
    params = get_params(params)
    mag = stft_magnitude(audio, params, device)
    basis, n_active = dsp.sparse_mel_basis(params, mag.device)
    mag = mag[:, :n_active]
    if params.stft_power != 1.0:
        mag = mag.pow(params.stft_power)
    return dsp.spmm(basis, mag.contiguous())


def _mel_to_levels(m: torch.Tensor, params: SpectrogramParams, max_value: float) -> torch.Tensor:
    """Pixel levels 0..255 (float64, unrounded, before invert/flip) of a non-negative mel."""
    if params.image_scale == "power":
        if max_value <= 0:
            return m * 0  # silence: max 0 -> all levels 0, no 0/0
        return (m / max_value).clamp(0, 1).pow(params.power_for_image) * 255
    ref = max_value if max_value > 0 else 1.0
    db = 10 * torch.log10(m.clamp(min=1e-10)) - 10 * np.log10(max(ref, 1e-10))
    return ((db.clamp(min=-params.top_db) + params.top_db) * 255 / params.top_db).clamp(0, 255)


def _levels_to_mel(data: torch.Tensor, params: SpectrogramParams, max_value: float) -> torch.Tensor:
    """The inverse of :func:`_mel_to_levels` on 0..255 levels."""
    if params.image_scale == "power":
        return (data / 255).pow(1 / params.power_for_image) * max_value
    db = data * params.top_db / 255 - params.top_db
    return torch.pow(10.0, db / 10) * max_value


def mel_to_image(mel, params: ParamsLike = RIFFUSION, max_value: T.Optional[float] = None) -> Image.Image:
    """Image of a (channels<=2, n_mels, frames) mel, with its metadata attached.

    ``max_value`` (default: the mel's own peak) maps to full level. Mono is an L image (riffusion:
    L replicated to RGB); stereo is RGB with R = 0, G = left, B = right, as riffusion lays it out.
    """
    params = get_params(params)
    m = torch.as_tensor(mel).detach().double().cpu()
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[0] not in (1, 2):
        raise InputError(f"Mel must be (channels<=2, mels, frames), got shape {tuple(m.shape)}")
    if not torch.isfinite(m).all():
        raise InputError("Mel spectrogram contains NaN or infinite values")
    m = m.clamp(min=0)
    if max_value is None:
        max_value = float(m.max())
    data = _mel_to_levels(m, params, max_value)
    if params.invert:
        data = 255 - data
    # rounding (riffusion truncates): half a level less error, decodes the same way in riffusion
    data = (data + 0.5).floor().clamp(0, 255).to(torch.uint8).numpy()
    if params.flip:
        data = data[:, ::-1, :]
    if data.shape[0] == 1:
        img = Image.fromarray(np.ascontiguousarray(data[0]), mode="L")
        if params.name == "riffusion":
            img = img.convert("RGB")  # riffusion stores mono as L replicated to RGB
    else:
        rgb = np.stack([np.zeros_like(data[0]), data[0], data[1]], axis=-1)
        img = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    attach_metadata(img, params, max_value=float(max_value), stereo=data.shape[0] == 2)
    return img


def _image_channels(image: Image.Image, stereo: T.Optional[bool]) -> np.ndarray:
    """uint8 (channels, rows, cols): L as is; RGB as R (mono) or G, B (stereo).

    Without a ``stereo`` hint, an image whose R is all 0 and whose G and B differ is stereo.
    """
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr[None]
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    if stereo is None:
        stereo = not r.any() and bool((g != b).any())
    return np.stack([g, b]) if stereo else r[None]


def image_to_mel(
    image: Image.Image,
    params: T.Optional[ParamsLike] = None,
    max_value: T.Optional[float] = None,
    stereo: T.Optional[bool] = None,
) -> torch.Tensor:
    """Mel (channels, n_mels, frames) float32 from an image made by us, riffusion or audio-diffusion.

    ``params``/``max_value``/``stereo`` default to what the image carries (our PNG text chunk or
    riffusion's EXIF), then to the riffusion preset, its 30e6 max and the R/G/B layout. InputError
    when the image is not a PIL image or its height is not the preset's mel count.
    """
    if not isinstance(image, Image.Image):
        raise InputError("Expected a PIL image of a spectrogram")
    meta = read_metadata(image)
    params = get_params(meta["params"] if params is None else params)
    if max_value is None:
        max_value = meta.get("max_value")
    if max_value is None:
        max_value = params.default_max_value
    chans = _image_channels(image, meta.get("stereo") if stereo is None else stereo)
    if chans.shape[1] != params.n_mels:
        raise InputError(f"The spectrogram image is {image.width}x{chans.shape[1]} px, but the {params.name} preset "
                         f"needs {params.n_mels} px high, one row per mel bin; accepted: {sizes_accepted()}.")
    data = torch.from_numpy(chans.astype(np.float64))
    if params.flip:
        data = data.flip(1)
    if params.invert:
        data = 255 - data
    return _levels_to_mel(data, params, max_value).float()


def audio_to_image(audio, params: ParamsLike = RIFFUSION, device: dsp.Device = "cpu") -> Image.Image:
    """Spectrogram image of (channels, n) or (n,) audio at the preset's sample rate."""
    params = get_params(params)
    return mel_to_image(audio_to_mel(audio, params, device), params)
