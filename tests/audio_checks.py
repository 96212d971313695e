"""Signals for the tests of the pipelines/audio package (tests/test_audio_*.py): a tone, its dominant
frequency, and the check that ``load_audio`` refuses a source in our words."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputError
from pipelines.signal.audio import load_audio

SR = 44100


def tone(freq=440.0, seconds=1.0, sr=SR, dbfs=-6.0):
    """A sine of ``freq`` Hz, ``seconds`` long at ``sr``, its peak at ``dbfs``: float32 (n,)."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x, sr):
    """The strongest frequency of ``x`` in Hz (the peak bin of a Hann-windowed FFT)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * sr / len(x)


def expect_error(source, *words, **kwargs):
    """load_audio must raise InputError whose message holds every word (case-insensitive)."""
    kwargs.setdefault("sample_rate", 22050)
    with pytest.raises(InputError) as info:
        load_audio(source, **kwargs)
    message = str(info.value)
    for word in words:
        assert word.lower() in message.lower(), message
    assert "Traceback" not in message and "Error opening" not in message and "/tmp" not in message
    return message
