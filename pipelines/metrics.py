"""Similarity metrics, computed as the mask-based img2img paper did, and the codec's quality metric.

SSIM compares spectrogram images (grayscale, data_range 255); chroma CENS similarity compares the
harmonic content of two sounds (librosa chroma_cens, cosine of the flattened arrays); spectral
convergence measures how well a spectrogram round trip kept a sound's STFT magnitudes.
CLAP score and FAD need large models and a reference set; they arrive with the CLAP role.
"""

from __future__ import annotations

import typing as T

import numpy as np
import torch
from PIL import Image

from core.errors import InputError
from pipelines.spectrogram import RIFFUSION, SpectrogramParams, get_params
from pipelines.spectrogram.dsp import as_audio, stft


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
