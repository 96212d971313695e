"""STFT and mel filter-bank building blocks shared by the codec, the inversion and the metrics.

Bases are cached per (params, device): building riffusion's 512 x 8821 mel basis takes ~50 ms.
Everything is torch, so the device manager can put the work on a GPU.
"""

from __future__ import annotations

import functools
import typing as T

import numpy as np
import torch

from core.errors import InputError

from pipelines.signal.spectrogram.params import SpectrogramParams

Device = T.Union[str, torch.device, None]


def torch_device(device: Device) -> torch.device:
    """``device`` as a torch.device; None means the CPU."""
    return torch.device(device or "cpu")


def as_audio(audio: T.Union[np.ndarray, torch.Tensor], device: torch.device) -> torch.Tensor:
    """(channels, n) float32 tensor on ``device``; mono (n,) becomes (1, n).

    Integer PCM is scaled to [-1, 1]. Raises InputError for NaN/inf, fewer than 2 samples or
    more than 2 channels.
    """
    x = audio if isinstance(audio, torch.Tensor) else torch.from_numpy(np.asarray(audio))
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] not in (1, 2):
        raise InputError(f"Audio must be (samples,) or (channels<=2, samples), got shape {tuple(x.shape)}")
    if x.shape[1] < 2:
        raise InputError("Audio is empty: it needs at least a few samples")
    if not x.is_floating_point():
        # integer PCM: bring to [-1, 1] so the scale is the same as for float input
        info = torch.iinfo(x.dtype)
        x = x.double() / max(abs(info.min), info.max)
    x = x.to(device=device, dtype=torch.float32)
    if not torch.isfinite(x).all():
        raise InputError("Audio contains NaN or infinite samples")
    return x


@functools.lru_cache(maxsize=16)
def hann_window(win_length: int, device: torch.device) -> torch.Tensor:
    return torch.hann_window(win_length, device=device)


def stft(x: torch.Tensor, params: SpectrogramParams, n_fft: T.Optional[int] = None) -> torch.Tensor:
    """Complex STFT (channels, n_fft // 2 + 1, frames) of (channels, n) audio, center=True.

    ``n_fft`` defaults to the preset's (zero-padded) n_fft; hop and window are always the preset's.
    """
    n_fft = params.n_fft if n_fft is None else n_fft
    pad_mode = params.pad_mode
    if pad_mode == "reflect" and x.shape[-1] <= n_fft // 2:
        pad_mode = "constant"  # reflect padding needs more samples than half a window
    return torch.stft(
        x,
        n_fft=n_fft,
        hop_length=params.hop_length,
        win_length=params.win_length,
        window=hann_window(params.win_length, x.device),
        center=True,
        pad_mode=pad_mode,
        return_complex=True,
    )


@functools.lru_cache(maxsize=16)
def mel_basis(params: SpectrogramParams, device: torch.device) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) float32, the same triangles as torchaudio's MelScale / librosa."""
    import librosa  # only needed once per params

    fb = librosa.filters.mel(
        sr=params.sample_rate,
        n_fft=params.n_fft,
        n_mels=params.n_mels,
        fmin=params.f_min,
        fmax=params.f_max,
        htk=params.mel_htk,
        norm=params.mel_norm,
        dtype=np.float64,
    )
    return torch.from_numpy(fb).to(device=device, dtype=torch.float32)


def active_bins(basis: torch.Tensor) -> int:
    """Number of leading frequency bins that some mel triangle reaches (at least 1)."""
    used = (basis.sum(0) > 0).nonzero()
    return int(used.max()) + 1 if len(used) else 1


@functools.lru_cache(maxsize=16)
def sparse_mel_basis(params: SpectrogramParams, device: torch.device) -> T.Tuple[torch.Tensor, int]:
    """The full-resolution basis, sparse and cut to the bins below f_max: (sparse basis, n_bins used).

    Under 1% of the basis is non-zero, so sparse products are ~15x faster than dense ones.
    """
    basis = mel_basis(params, torch.device("cpu"))
    n_active = active_bins(basis)
    return basis[:, :n_active].contiguous().to_sparse().coalesce().to(device), n_active


def spmm(sparse: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sparse (M, K) @ x (C, K, T) -> (C, M, T); channels folded into columns for one product."""
    c, k, t = x.shape
    flat = x[0] if c == 1 else x.transpose(0, 1).reshape(k, c * t)
    out = torch.sparse.mm(sparse, flat)
    return out[None] if c == 1 else out.reshape(-1, c, t).transpose(0, 1)
