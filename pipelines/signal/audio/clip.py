"""The ``Audio`` value every pipeline passes around: float32 samples ``(channels, n)`` and their rate.

Kept apart from loading and signal operations so that both can use it without importing each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.schema import limits


def as_int(value: Any) -> int | None:
    """An integer from int-like input (int, numpy int, whole float); None otherwise (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def convert_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """(have, n) -> (channels, n). Mono is the channel mean; a mono source is duplicated. Other
    changes go through mono, because without a channel layout there is no correct up- or down-mix.

    Raises ValueError for a count outside 1..MAX_CHANNELS.
    """
    have = samples.shape[0]
    if not 1 <= channels <= limits.MAX_CHANNELS:
        raise ValueError(f"channels must be 1..{limits.MAX_CHANNELS}, got {channels}")
    if have == channels:
        return samples
    mono = samples if have == 1 else samples.mean(axis=0, keepdims=True)
    return mono if channels == 1 else np.repeat(mono, channels, axis=0)


@dataclass(frozen=True, eq=False)  # eq=False: comparing ndarrays with == is ambiguous
class Audio:
    """Float32 samples shaped ``(channels, n)`` and their sample rate in Hz.

    (n,) samples become (1, n). ValueError for other shapes, more than MAX_CHANNELS channels or a
    rate that is not a positive integer: these are mistakes in calling code, not user input.
    """

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[np.newaxis, :]
        if samples.ndim != 2 or not 1 <= samples.shape[0] <= limits.MAX_CHANNELS:
            raise ValueError(
                f"Audio.samples must be shaped (channels, n) with 1..{limits.MAX_CHANNELS} "
                f"channels, got {samples.shape}"
            )
        rate = as_int(self.sample_rate)
        if rate is None or rate <= 0:
            raise ValueError(f"Audio.sample_rate must be a positive integer, got {self.sample_rate!r}")
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "sample_rate", rate)

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.sample_rate

    def mono(self) -> Audio:
        """Mean of the channels (itself when already mono)."""
        if self.channels == 1:
            return self
        return Audio(self.samples.mean(axis=0, keepdims=True), self.sample_rate)

    def with_channels(self, channels: int) -> Audio:
        """Same sound with ``channels`` channels, see :func:`convert_channels`."""
        return Audio(convert_channels(self.samples, channels), self.sample_rate)
