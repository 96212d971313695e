"""The naive codecs that benchmarks/spectrogram.py measures ours against. Nothing in the app uses them.

* riffusion preset, naive torch: what riffusion does with torchaudio, rebuilt in torch. Audio ->
  mel builds the mel basis on every call, as a fresh converter does; mel -> audio is the
  pseudo-inverse at the full n_fft (a stand-in for its 200-step InverseMelScale, faster and at
  least as accurate), then plain Griffin-Lim at the full n_fft.
* audio-diffusion preset, librosa: teticio's Mel, librosa.feature.melspectrogram forwards and
  librosa.feature.inverse.mel_to_audio (NNLS + fast Griffin-Lim, momentum 0.99) back.
"""

from __future__ import annotations

import typing as T

import numpy as np
import torch

from pipelines.signal import spectrogram as S
from pipelines.signal.spectrogram import dsp


def griffin_lim(
    magnitude: torch.Tensor,
    params: S.SpectrogramParams,
    iterations: int,
    momentum: float = 0.0,
    length: T.Optional[int] = None,
    seed: int = 0,
) -> torch.Tensor:
    """Phase for ``magnitude`` (channels, n_fft//2+1, frames) at the preset's full n_fft -> (channels, length).

    Starts from seeded random phases. momentum 0 is plain Griffin-Lim; 0.99 is Perraudin et al.'s
    fast variant (as in riffusion and librosa). ``length`` defaults to frames * hop - 1.
    """
    window = dsp.hann_window(params.win_length, magnitude.device)
    kw = dict(n_fft=params.n_fft, hop_length=params.hop_length, win_length=params.win_length, window=window,
              center=True)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    phase = (torch.rand(magnitude.shape, generator=gen) * (2 * np.pi)).to(magnitude.device)
    spec = torch.polar(magnitude, phase)
    if length is None:
        length = magnitude.shape[-1] * params.hop_length - 1
    prev = None
    for _ in range(iterations):
        rebuilt = torch.stft(torch.istft(spec, length=length, **kw), pad_mode=params.pad_mode, return_complex=True,
                             **kw)
        accel = rebuilt if prev is None or momentum == 0 else rebuilt + momentum * (rebuilt - prev)
        prev = rebuilt
        spec = magnitude * accel / (accel.abs() + 1e-16)
    return torch.istft(spec, length=length, **kw)


def naive_audio_to_mel(audio: np.ndarray, params: S.SpectrogramParams) -> torch.Tensor:
    """Our audio -> mel with the basis caches emptied first, as a freshly built converter has them."""
    dsp.mel_basis.cache_clear()
    dsp.sparse_mel_basis.cache_clear()
    return S.audio_to_mel(audio, params)


def naive_mel_to_audio(mel: torch.Tensor, params: S.SpectrogramParams, iterations: int = 32) -> np.ndarray:
    """Pseudo-inverse at the full n_fft, then ``iterations`` of plain Griffin-Lim: (channels, samples)."""
    linear = S.mel_to_linear(mel, params, coarse=False)
    return griffin_lim(linear, params, iterations=iterations, momentum=0.0).numpy()


def librosa_audio_to_image(audio: np.ndarray, params: S.SpectrogramParams) -> np.ndarray:
    """teticio's Mel.audio_slice_to_image: uint8 (n_mels, frames) from mono audio, dB scaled."""
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=params.sample_rate, n_fft=params.n_fft,
                                         hop_length=params.hop_length, n_mels=params.n_mels)
    db = librosa.power_to_db(mel, ref=np.max, top_db=params.top_db)
    return (((db + params.top_db) * 255 / params.top_db).clip(0, 255) + 0.5).astype(np.uint8)


def librosa_mel_to_audio(mel: np.ndarray, params: S.SpectrogramParams, iterations: int = 32) -> np.ndarray:
    """teticio's Mel.image_to_audio inversion: librosa's NNLS + fast Griffin-Lim on a (n_mels, frames) mel."""
    import librosa

    np.random.seed(0)  # its Griffin-Lim starts from np.random phases
    return librosa.feature.inverse.mel_to_audio(mel, sr=params.sample_rate, n_fft=params.n_fft,
                                                hop_length=params.hop_length, n_iter=iterations)
