"""Mel spectrogram -> audio: a pseudo-inverse start, then a fast, mel-consistent Griffin-Lim.

The start is a cached, clamped pseudo-inverse of the mel basis. The phase search is fast
Griffin-Lim (momentum 0.99) at n_fft = win_length whose magnitude step matches the *mel* (sparse
basis products) instead of a fixed linear guess. With a window zero-padded to n_fft, the padded
spectrum's bin ``k * n_fft / win_length`` equals the unpadded one's bin ``k`` in magnitude, so the
search can run on the 4x smaller unpadded STFT and the result is still consistent at the full
parameters. ``benchmarks/spectrogram.py`` measures speed and quality against plain Griffin-Lim.
"""

from __future__ import annotations

import functools
import typing as T

import numpy as np
import torch
from PIL import Image

from core import runs
from core.errors import InputError

from pipelines.signal.spectrogram import dsp
from pipelines.signal.spectrogram.codec import image_to_mel
from pipelines.signal.spectrogram.image_files import read_metadata
from pipelines.signal.spectrogram.params import RIFFUSION, SpectrogramParams, get_params

# The originals' 32: ~0.65 s per 5.12 s riffusion image on 2 CPU cores, with spectral convergence
# well below 32 plain Griffin-Lim iterations at n_fft 17640 (benchmarks/spectrogram.py). 24 is
# ~25% faster and still better than that peer.
FAST_ITERATIONS = 32


def _coarse_factor(params: SpectrogramParams) -> int:
    """How much smaller the unpadded FFT (n_fft = win_length) is than the padded one."""
    if params.n_fft % params.win_length == 0:
        return params.n_fft // params.win_length
    return 1


@functools.lru_cache(maxsize=16)
def _coarse_mel_basis(params: SpectrogramParams, device: torch.device) -> torch.Tensor:
    """Mel basis acting on the unpadded spectrum (n_mels, win_length // 2 + 1).

    The padded spectrum is the unpadded one interpolated; interpolating magnitudes linearly
    between coarse bins and folding that into the basis gives mel ~= basis_c @ |X_coarse|.
    """
    fine = dsp.mel_basis(params, torch.device("cpu")).double()
    f = _coarse_factor(params)
    if f == 1:
        return fine.float().to(device)
    n_coarse = params.win_length // 2 + 1
    pos = torch.arange(fine.shape[1], dtype=torch.float64) / f  # fine bin -> coarse position
    lo = pos.floor().long().clamp(max=n_coarse - 1)
    hi = (lo + 1).clamp(max=n_coarse - 1)
    t = pos - lo
    interp = torch.zeros(fine.shape[1], n_coarse, dtype=torch.float64)
    rows = torch.arange(fine.shape[1])
    interp.index_put_((rows, lo), 1 - t, accumulate=True)
    interp.index_put_((rows, hi), t, accumulate=True)
    return (fine @ interp).float().to(device)


@functools.lru_cache(maxsize=16)
def _mel_pinv(params: SpectrogramParams, device: torch.device, coarse: bool) -> torch.Tensor:
    """Pseudo-inverse of the (coarse) mel basis, (n_bins, n_mels), computed once in float64."""
    cpu = torch.device("cpu")
    basis = _coarse_mel_basis(params, cpu) if coarse else dsp.mel_basis(params, cpu)
    # rcond keeps the pinv from amplifying the tiny singular values of overlapping narrow bands
    return torch.linalg.pinv(basis.double(), rtol=1e-4).float().to(device)


@functools.lru_cache(maxsize=16)
def _active_basis(params: SpectrogramParams, device: torch.device) -> T.Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coarse mel basis cut to the bins it covers (up to f_max) as sparse matrices (B, B^T), and
    1 / column sums, (n_active, 1)."""
    basis = _coarse_mel_basis(params, torch.device("cpu"))
    active = basis[:, : dsp.active_bins(basis)].contiguous()
    colsum = active.sum(0)[:, None]
    # bins no triangle reaches get gain 0, not 0/0
    inv_colsum = torch.where(colsum > 0, 1.0 / colsum.clamp(min=1e-12), torch.zeros_like(colsum))
    sparse = active.to_sparse().coalesce().to(device)
    sparse_t = active.t().contiguous().to_sparse().coalesce().to(device)
    return sparse, sparse_t, inv_colsum.to(device)


def mel_to_linear(mel: torch.Tensor, params: SpectrogramParams, coarse: bool = True) -> torch.Tensor:
    """Linear magnitude |X| (channels, n_bins, frames) from a mel, by the clamped pseudo-inverse.

    ``coarse``: at n_fft = win_length (see the module doc), else at the full n_fft.
    """
    coarse = coarse and _coarse_factor(params) > 1
    lin = torch.matmul(_mel_pinv(params, mel.device, coarse), mel).clamp_(min=0)
    if params.stft_power != 1.0:
        lin = lin.pow(1.0 / params.stft_power)
    return lin


def _mel_griffin_lim(
    mel: torch.Tensor, params: SpectrogramParams, iterations: int, momentum: float, length: int, seed: int
) -> torch.Tensor:
    """Fast Griffin-Lim at n_fft = win_length whose magnitude step keeps the *mel* right.

    Plain GL forces |X| to the pseudo-inverse's smooth guess, which throws away the harmonic
    detail that the phase search recovers. Here each step keeps the rebuilt spectrum's own shape
    and only rescales it so that its mel matches the target: a multiplicative (Richardson-Lucy /
    NMF-style) update, gain = (B^T (mel / B|X|^p) / B^T 1) ** (1/p), applied straight to the
    complex spectrum, so no separate phase normalisation is needed.
    """
    device = mel.device
    n_fft = params.n_fft // _coarse_factor(params)
    n_bins = n_fft // 2 + 1
    basis, basis_t, inv_colsum = _active_basis(params, device)
    n_active = basis.shape[1]
    p = params.stft_power
    window = dsp.hann_window(params.win_length, device)
    kw = dict(n_fft=n_fft, hop_length=params.hop_length, win_length=params.win_length, window=window, center=True)

    start = mel_to_linear(mel, params, coarse=True)[:, :n_active]
    # random phases: zero or stationary (bin-centre) starts measured no better on music
    gen = torch.Generator(device="cpu").manual_seed(seed)
    phase = (torch.rand(start.shape, generator=gen) * (2 * np.pi)).to(device)
    channels, _, frames = mel.shape
    # frame-major storage: istft's inverse FFTs then read contiguous rows (2x faster on CPU)
    spec = torch.zeros(channels, frames, n_bins, dtype=torch.complex64, device=device).transpose(1, 2)
    spec[:, :n_active] = torch.polar(start, phase)
    target = mel.clamp(min=0)
    tiny = 1e-9 * float(target.max()) + 1e-30
    prev = None
    for _ in range(iterations):
        runs.raise_if_stopped()  # Cancel and the time limit end the search between iterations
        audio = torch.istft(spec, length=length, **kw)
        rebuilt = torch.stft(audio, pad_mode=params.pad_mode, return_complex=True, **kw)[:, :n_active]
        accel = rebuilt if prev is None else torch.lerp(prev, rebuilt, 1.0 + momentum)
        prev = rebuilt
        mag = accel.abs()
        if p != 1.0:
            mag = mag.pow(p)
        gain = dsp.spmm(basis_t, target / (dsp.spmm(basis, mag) + tiny)) * inv_colsum
        if p != 1.0:
            gain = gain.pow(1.0 / p)
        spec[:, :n_active] = accel * gain
    return torch.istft(spec, length=length, **kw)


def mel_to_audio(
    mel,
    params: T.Union[str, SpectrogramParams] = RIFFUSION,
    device: dsp.Device = "cpu",
    iterations: T.Optional[int] = None,
    length: T.Optional[int] = None,
    seed: int = 0,
    normalize: bool = True,
    momentum: float = 0.99,
) -> np.ndarray:
    """Audio (channels, samples) float32 from a mel (channels, n_mels, frames).

    Pseudo-inverse start, then ``iterations`` (default ``FAST_ITERATIONS``) of mel-consistent fast
    Griffin-Lim at n_fft = win_length; channels run as one batch. ``length`` defaults to
    frames * hop - 1 (5.12 s for 512 riffusion columns); any width inverts, even one frame.
    ``normalize`` scales the peak to 0.9 like
    riffusion; otherwise samples are in the input's units (mel / audio_scale). InputError for a
    mel of the wrong height, NaN/inf values or negative ``iterations``.
    """
    params = get_params(params)
    m = torch.as_tensor(mel, dtype=torch.float32).to(dsp.torch_device(device))
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[1] != params.n_mels:
        raise InputError(f"Mel must be (channels, {params.n_mels}, frames), got shape {tuple(m.shape)}")
    if not torch.isfinite(m).all():
        raise InputError("Mel spectrogram contains NaN or infinite values")
    iters = FAST_ITERATIONS if iterations is None else int(iterations)
    if iters < 0:
        raise InputError("iterations must be >= 0")
    if length is None:
        length = m.shape[-1] * params.hop_length - 1
    # the STFT's centre padding needs more samples than half a window: a narrower image (riffusion:
    # under 6 px) is inverted with silent frames added on the right, which are cut off again
    min_frames = (params.n_fft // _coarse_factor(params)) // 2 // params.hop_length + 2
    if m.shape[-1] < min_frames:
        m = torch.nn.functional.pad(m, (0, min_frames - m.shape[-1]))
    run_length = max(int(length), m.shape[-1] * params.hop_length - 1)
    with torch.no_grad():
        audio = _mel_griffin_lim(m, params, iters, momentum, run_length, seed)[..., : int(length)] / params.audio_scale
    if normalize:
        peak = float(audio.abs().max())
        if peak > 0:
            audio = audio * (0.9 / peak)
    return audio.cpu().numpy().astype(np.float32)


def image_to_audio(
    image: Image.Image,
    params: T.Union[str, SpectrogramParams, None] = None,
    device: dsp.Device = "cpu",
    iterations: T.Optional[int] = None,
    seed: int = 0,
) -> np.ndarray:
    """Audio (channels, samples) from a spectrogram image; params default to the image's metadata."""
    if params is None:
        params = read_metadata(image)["params"]
    params = get_params(params)
    return mel_to_audio(image_to_mel(image, params), params, device=device, iterations=iterations, seed=seed)
