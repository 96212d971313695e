"""Tempo and beats with librosa's beat tracker at 22050 Hz, as the original (``int(tempo)`` BPM)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import SAMPLE_RATE, as_mono


@dataclass(frozen=True)
class Tempo:
    bpm: float  # librosa's global tempo estimate
    beat_times: np.ndarray  # seconds

    @property
    def bpm_int(self) -> int:
        return int(self.bpm)  # the original truncates


def estimate_tempo(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Tempo:
    """Mono samples at ``sample_rate`` (22050 Hz as the original) -> tempo and beat times."""
    import librosa

    y = as_mono(samples)
    tempo, beats = librosa.beat.beat_track(y=y, sr=sample_rate, units="time")
    bpm = float(np.atleast_1d(tempo)[0])  # librosa 0.10+ returns a 1-element array
    return Tempo(bpm, np.asarray(beats, dtype=np.float64))
