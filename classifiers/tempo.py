"""Tempo and beats with librosa's beat tracker at 22050 Hz, as the original (``int(tempo)`` BPM).

One openly documented refinement: librosa's global tempo is read off a tempogram whose bins are
whole frame lags (at 22050 Hz / hop 512, 120 BPM falls between 117.5 and 123.0), so a steady
120 BPM track reads 117. The tracked beats themselves sit on the onsets, so the slope of a
straight line through the beat times gives the average period to a fraction of a BPM. That value
is used when it agrees with librosa's estimate within REFINE_TOLERANCE (same metrical level);
librosa's own number is kept in ``librosa_bpm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import SAMPLE_RATE, as_mono

REFINE_TOLERANCE = 0.08  # relative
MIN_BEATS_TO_REFINE = 4
MIN_STEADY_BEATS = 3  # fewer tracked beats (a steady tone, a 0.2 s clip): no steady beat, not "tempo 0"


@dataclass(frozen=True)
class Tempo:
    bpm: float  # refined tempo (see the module docstring); 0 when no beat was found
    beat_times: np.ndarray  # seconds
    librosa_bpm: float  # librosa.beat.beat_track's estimate, what the original used

    @property
    def bpm_int(self) -> int:
        return int(round(self.bpm))

    @property
    def steady(self) -> bool:
        """Whether there is a beat to state: librosa found a tempo and at least MIN_STEADY_BEATS beats."""
        return self.librosa_bpm > 0 and len(self.beat_times) >= MIN_STEADY_BEATS

    @property
    def stated_bpm(self) -> int | None:
        """The tempo as the original states it, ``int(librosa's estimate)``; None without a steady beat."""
        return int(self.librosa_bpm) if self.steady else None


def estimate_tempo(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Tempo:
    """Mono samples at ``sample_rate`` (22050 Hz as the original) -> tempo and beat times."""
    import librosa

    y = as_mono(samples)
    tempo, beats = librosa.beat.beat_track(y=y, sr=sample_rate, units="time")
    estimate = float(np.atleast_1d(tempo)[0])  # librosa 0.10+ returns a 1-element array
    beats = np.asarray(beats, dtype=np.float64)
    bpm = estimate
    if len(beats) >= MIN_BEATS_TO_REFINE and estimate > 0:
        period = np.polyfit(np.arange(len(beats)), beats, 1)[0]
        if period > 0 and abs(60.0 / period - estimate) <= REFINE_TOLERANCE * estimate:
            bpm = 60.0 / period
    return Tempo(bpm, beats, estimate)
