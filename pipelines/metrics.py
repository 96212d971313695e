"""Similarity metrics, computed as the mask-based img2img paper did.

SSIM compares spectrogram images (grayscale, data_range 255); chroma CENS similarity compares the
harmonic content of two sounds (librosa chroma_cens, cosine of the flattened arrays).
CLAP score and FAD need large models and a reference set; they arrive with the CLAP role.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


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
