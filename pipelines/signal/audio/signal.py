"""Sample-level operations the app runs on sound: resampling, peak level, peak normalisation."""

from __future__ import annotations

import math

import numpy as np

from pipelines.signal.audio.clip import Audio


def resample(audio: Audio, sample_rate: int) -> Audio:
    """Resample with soxr (high quality; scipy's polyphase filter without it).

    The same object comes back when the rate already matches.
    """
    sample_rate = int(sample_rate)
    if sample_rate == audio.sample_rate or audio.num_frames == 0:
        return audio if sample_rate == audio.sample_rate else Audio(audio.samples, sample_rate)
    try:
        import soxr

        # soxr wants (frames, channels), C-contiguous.
        out = soxr.resample(np.ascontiguousarray(audio.samples.T), audio.sample_rate, sample_rate).T
    except ImportError:
        g = math.gcd(audio.sample_rate, sample_rate)
        from scipy import signal  # imported here: scipy.signal costs 0.7 s at app start

        out = signal.resample_poly(audio.samples, sample_rate // g, audio.sample_rate // g, axis=-1)
    return Audio(np.ascontiguousarray(out, dtype=np.float32), sample_rate)


def peak_dbfs(samples: np.ndarray | Audio) -> float:
    """Sample peak in dB relative to full scale; -inf for digital silence or no samples."""
    x = samples.samples if isinstance(samples, Audio) else np.asarray(samples)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def peak_normalize(samples: np.ndarray | Audio, headroom_db: float = 1.0) -> np.ndarray | Audio:
    """Scale so the sample peak sits ``headroom_db`` below full scale. Silence is left as is.

    Returns the same kind it was given (float32 ndarray or Audio). ValueError for negative headroom.
    """
    if headroom_db < 0:
        raise ValueError(f"headroom_db must be >= 0, got {headroom_db}")
    if isinstance(samples, Audio):
        return Audio(peak_normalize(samples.samples, headroom_db), samples.sample_rate)
    x = np.asarray(samples, dtype=np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not peak > 0 or not math.isfinite(peak):
        return x.copy()
    return x * np.float32(10.0 ** (-headroom_db / 20.0) / peak)
