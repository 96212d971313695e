"""Similarity metrics of an input/output pair, the Fréchet distance of two embedding sets, and the
codec's quality metric.

SSIM compares spectrogram images (grayscale, data_range 255); chroma CENS similarity compares the
harmonic content of two sounds (librosa chroma_cens, cosine of the flattened arrays); spectral
convergence measures how well a spectrogram round trip kept a sound's STFT magnitudes.

Two modes compute SSIM and CENS for a pair of sounds (``pair_metrics``):

* ``paper``: as the mask paper's SSIM_CENS_Ablation notebook (``../shared/reference/seed-systems.md``
  section 2, ``../shared/data/real/README.md``): each sound as librosa loads it (float in [-1, 1],
  mono, 44.1 kHz), its first 225 500 samples (512 STFT frames); riffusion's magnitude mel (torchaudio
  ``Spectrogram`` + ``MelScale``: n_fft 17640, hop 441, window 4410, 512 HTK mels, 0-10 kHz); the
  image ``255 - mel ** 0.25 * 255 / max_volume`` with ``max_volume = ceil(max(mel) ** 0.25)`` per
  file, truncated to 8 bits (``astype(uint8)``) and flipped; SSIM of the two images; CENS of the two
  loaded signals. The notebook compared its diffusion output *image*; from a WAV the output image is
  re-made the same way. The notebook's CENS also went through each image's Griffin-Lim audio, which
  starts from random phases and cannot be reproduced: here the loaded sounds are used.
* ``studio``: the app's own way (what the sound-to-music tab shows): the codec's images of the whole
  sounds (int16-scaled audio, scaled by each sound's exact peak, rounded to 8 bits), cut to the
  shorter width; CENS of the whole sounds.

CLAP scores live in ``clap.py``; FAD is ``frechet_distance`` of two sets of CLAP embeddings.
"""

from __future__ import annotations

import dataclasses
import math
import typing as T

import numpy as np
import torch
from PIL import Image

from core.errors import InputError
from pipelines.signal.spectrogram import RIFFUSION, SpectrogramParams, get_params
from pipelines.signal.spectrogram.dsp import as_audio, stft


def ssim(reference: Image.Image, other: Image.Image) -> float:
    """Structural similarity of two images in grayscale, 0-255 data range (skimage)."""
    from skimage.metrics import structural_similarity

    a = np.asarray(reference.convert("L"), dtype=np.float64)
    b = np.asarray(other.convert("L").resize(reference.size), dtype=np.float64)
    return float(structural_similarity(a, b, data_range=255))


def chroma_cens_similarity(reference: np.ndarray, other: np.ndarray, sample_rate: int) -> float:
    """Cosine similarity of the flattened chroma CENS of two mono signals (cut to the shorter)."""
    import librosa

    n = min(reference.shape[-1], other.shape[-1])
    a = librosa.feature.chroma_cens(y=np.asarray(reference, dtype=np.float32).reshape(-1)[:n], sr=sample_rate)
    b = librosa.feature.chroma_cens(y=np.asarray(other, dtype=np.float32).reshape(-1)[:n], sr=sample_rate)
    a, b = a.reshape(-1), b.reshape(-1)
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.0


def spectral_convergence(reference, estimate, params: T.Union[str, SpectrogramParams] = RIFFUSION) -> float:
    """|| |S_ref| - g |S_est| ||_F / || |S_ref| ||_F at the preset's full STFT, with the best gain g.

    Both signals are (channels, n) or (n,) at the preset's sample rate, aligned at sample 0; the
    longer one is cut to the shorter. g = <|S_ref|, |S_est|> / || |S_est| ||^2 (least squares), so
    the overall level does not count. 0 is perfect; 1 is as bad as silence. InputError when the
    channel counts differ.
    """
    params = get_params(params)
    cpu = torch.device("cpu")
    ref, est = as_audio(reference, cpu).double(), as_audio(estimate, cpu).double()
    if ref.shape[0] != est.shape[0]:
        raise InputError(f"Channel counts differ: {ref.shape[0]} vs {est.shape[0]}")
    n = min(ref.shape[1], est.shape[1])
    a = stft(ref[:, :n], params).abs()
    b = stft(est[:, :n], params).abs()
    ref_norm = torch.linalg.vector_norm(a)
    if ref_norm == 0:
        return 0.0 if torch.linalg.vector_norm(b) == 0 else 1.0
    denom = (b * b).sum()
    g = (a * b).sum() / denom if denom > 0 else 0.0
    return float(torch.linalg.vector_norm(a - g * b) / ref_norm)


# -- how a result's metrics read in the UI --------------------------------------------------------------------
LABELS = {
    "ssim": "SSIM of the spectrograms (input vs output)",
    "chroma_cens_similarity": "Chroma CENS similarity (input vs output)",
    "chroma_cens": "Chroma CENS similarity (input vs output)",
    "clap_score": "CLAP score (output vs prompt)",
    "content_preservation": "Content preservation (CLAP, input vs output)",
    "style_fit_mean": "Style fit, mean over the styles (CLAP)",
    "style_fit_max": "Style fit, max over the styles (CLAP)",
    "playlist_similarity": "CLAP similarity to the playlist",
}


def metrics_table(values: dict[str, T.Any]) -> list[list[str]]:
    """Rows ``[label, value]`` of a result's numeric metrics, in ``LABELS`` order then the rest; values
    with 4 decimals (similarities lie in [-1, 1]). Non-numeric entries are left out."""
    numeric = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    order = [k for k in LABELS if k in numeric] + sorted(k for k in numeric if k not in LABELS)
    return [[LABELS.get(k, k), f"{numeric[k]:.4f}"] for k in order]


# -- SSIM and CENS of a pair, in the paper's way or the studio's ------------------------------------------
PAIR_MODES = ("paper", "studio")
PAPER_SAMPLES = 225_500  # what the notebook reads of each sound: 512 frames at hop 441 (5.11 s)
PAPER_SAMPLE_RATE = 44_100
# riffusion's mel on librosa's float audio (the notebook did not scale to int16 as riffusion's pydub path does)
_PAPER_PARAMS = dataclasses.replace(RIFFUSION, audio_scale=1.0)


def paper_spectrogram_image(samples: np.ndarray) -> Image.Image:
    """The notebook's spectrogram image (mode L, 512 rows x frames) of mono float audio at 44.1 kHz.

    ``samples``: (n,) or (1, n) in [-1, 1]; only the first ``PAPER_SAMPLES`` are used. Levels are
    ``255 - mel ** 0.25 * 255 / max_volume`` truncated to integers, ``max_volume = ceil(max(mel) **
    0.25)`` (a peak under 1e-10 counts as 1), low frequencies at the bottom. InputError if empty.
    """
    from pipelines.signal.spectrogram import audio_to_mel

    x = np.asarray(samples, dtype=np.float32).reshape(-1)[:PAPER_SAMPLES]
    if x.size == 0:
        raise InputError("The audio is empty.")
    mel = audio_to_mel(x, _PAPER_PARAMS).double()[0].numpy()
    peak = float(mel.max())
    max_volume = math.ceil((peak if peak >= 1e-10 else 1.0) ** 0.25)
    data = 255 - np.power(np.clip(mel, 0, None), 0.25) * 255 / max_volume
    return Image.fromarray(np.clip(data, 0, 255).astype(np.uint8)[::-1].copy(), mode="L")


def _studio_image(samples: np.ndarray) -> Image.Image:
    from pipelines.signal.spectrogram import audio_to_image

    return audio_to_image(np.asarray(samples, dtype=np.float32).reshape(1, -1), RIFFUSION).convert("L")


def _crop_to_common_width(a: Image.Image, b: Image.Image) -> tuple[Image.Image, Image.Image]:
    width = min(a.width, b.width)
    return a.crop((0, 0, width, a.height)), b.crop((0, 0, width, b.height))


def pair_metrics(reference: np.ndarray, output: np.ndarray, mode: str = "paper",
                 sample_rate: int = PAPER_SAMPLE_RATE) -> dict[str, float]:
    """SSIM and chroma CENS similarity of an input and an output sound, in ``mode`` (``PAIR_MODES``).

    Both are mono float arrays ((n,) or (1, n), in [-1, 1]) at 44.1 kHz (``sample_rate`` must be
    44100: both modes are defined at riffusion's rate). Returns ``{"ssim": ..., "chroma_cens": ...}``.
    InputError for an unknown mode, another rate, or empty audio.
    """
    if mode not in PAIR_MODES:
        raise InputError(f"Unknown metrics mode {mode!r}: use one of {', '.join(PAIR_MODES)}.")
    if int(sample_rate) != PAPER_SAMPLE_RATE:
        raise InputError(f"Pair metrics need 44.1 kHz audio, got {sample_rate} Hz: resample first.")
    a = np.asarray(reference, dtype=np.float32).reshape(-1)
    b = np.asarray(output, dtype=np.float32).reshape(-1)
    if a.size == 0 or b.size == 0:
        raise InputError("The audio is empty.")
    if mode == "paper":
        a, b = a[:PAPER_SAMPLES], b[:PAPER_SAMPLES]
        image_a, image_b = paper_spectrogram_image(a), paper_spectrogram_image(b)
    else:
        image_a, image_b = _studio_image(a), _studio_image(b)
    image_a, image_b = _crop_to_common_width(image_a, image_b)
    return {"ssim": ssim(image_a, image_b), "chroma_cens": chroma_cens_similarity(a, b, PAPER_SAMPLE_RATE)}


# -- Fréchet distance of two embedding sets (FAD) ---------------------------------------------------------
FAD_RELIABLE_SAMPLES = 500  # fadtk's smallest sample count for FAD-inf (score_inf min_n); fewer: biased


def fad_minimum_embeddings(dim: int) -> int:
    """Embeddings one set needs before its FAD means anything: ``dim + 1`` for ``dim``-dimensional
    embeddings (CLAP's 512: 513, about 85 minutes of audio at one embedding per 10 s window).

    The unbiased covariance of n embeddings has rank at most n - 1, so with n <= dim it is singular:
    the fitted Gaussian is flat in the dimensions the set does not span, and Tr(C1 + C2 - 2 sqrt(C1 C2))
    then measures how many samples there were more than how the sounds differ. pytorch-fid, the
    implementation fadtk adapts, says the same for FID: its README calls 2048 images (the dimension of
    its features) "the otherwise required" number and offers smaller feature layers for smaller sets.
    Between this and ``FAD_RELIABLE_SAMPLES`` the value is defined but biased upward (fadtk, Gui et al.
    2024: FAD falls with n, hence FAD-inf).
    """
    return int(dim) + 1


def embedding_statistics(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of (n, d) embeddings, as fadtk's ``calc_embd_statistics``
    (``np.mean(axis=0)``, ``np.cov(rowvar=False)``). InputError for fewer than 2 rows or a non-2D array."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise InputError(f"FAD needs at least two embeddings of one size, got an array of shape {x.shape}.")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """d^2 = ||mu1 - mu2||^2 + Tr(C1 + C2 - 2 sqrt(C1 C2)), computed as fadtk's ``calc_frechet_distance``
    (microsoft/fadtk ``fadtk/fad.py``, commit cb25200, adapted from pytorch-fid): the matrix square root
    by eigendecomposition ``V sqrt(D) V^-1`` (fadtk's workaround for scipy's ``sqrtm``), eps * I added
    to both covariances if that is not finite, and the real part kept when the imaginary one is
    numerical noise (ValueError when it is not: diagonal imaginary parts beyond 1e-3).
    """
    from numpy.lib.scimath import sqrt as complex_sqrt
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    cov1, cov2 = np.atleast_2d(cov1), np.atleast_2d(cov2)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape:
        raise InputError(f"Embedding sizes differ: {mu1.shape} vs {mu2.shape}.")
    diff = mu1 - mu2
    eigenvalues, vectors = linalg.eig(cov1.dot(cov2))
    covmean = (vectors * complex_sqrt(eigenvalues)) @ linalg.inv(vectors)
    if not np.isfinite(covmean).all():
        offset = np.eye(cov1.shape[0]) * eps
        covmean = linalg.sqrtm((cov1 + offset).dot(cov2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))} in the matrix square root.")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean))
