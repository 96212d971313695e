"""A tune's melody as MusicGen-melody hears it: a one-hot chromagram, one pitch class per frame.

facebook/musicgen-melody is conditioned on the dominant pitch class of its melody input, 12 values per
STFT frame (n_fft 16384, hop 4096 at 32 kHz: 7.8 frames per second, at most 30 s). transformers'
``MusicgenMelodyFeatureExtractor`` computes this with torchaudio, which the app does not install (it
would pin an older torch); ``melody_chroma`` computes the same features with torch's STFT and the
extractor's own chroma filter bank, and a test checks it against the extractor's formula
(``_torch_extract_fbank_features`` in transformers' feature_extraction_musicgen_melody.py):

    spectrogram = |STFT(Hann n_fft, hop, centred, reflect-padded)|^2 / sum(window^2)   (torchaudio's normalized=True)
    chroma = chroma_filter_bank(32 kHz, n_fft, tuning 0, 12) @ spectrogram
    chroma /= max over the 12 classes (inf-norm, eps 1e-6);  one-hot of its argmax per frame

The extractor's parameters come from the repo's ``preprocessor_config.json`` (``MelodyParams``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import InputError

from pipelines.signal import audio as audio_io


@dataclass(frozen=True)
class MelodyParams:
    """The chroma extractor's settings, as facebook/musicgen-melody's preprocessor_config.json gives them."""

    sampling_rate: int = 32000
    n_fft: int = 16384
    hop_length: int = 4096
    chunk_length: int = 30  # seconds of melody the model reads; longer tunes are cut
    feature_size: int = 12  # pitch classes

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MelodyParams:
        return cls(**{name: int(config[name]) for name in cls.__dataclass_fields__ if name in config})

    @property
    def max_samples(self) -> int:
        return self.chunk_length * self.sampling_rate


MIN_MELODY_SECONDS = 1.0  # under a second there is hardly a melody to follow (and fewer than 8 frames)


def melody_chroma(melody: audio_io.Audio, params: MelodyParams = MelodyParams()) -> np.ndarray:
    """One-hot chroma of ``melody`` (any rate and channels: downmixed, resampled to ``params.sampling_rate``,
    cut to ``params.chunk_length`` seconds): float32 ``(frames, 12)``, frames = samples // hop + 1.

    Raises InputError when the melody is shorter than ``MIN_MELODY_SECONDS`` or silent.
    """
    import torch
    from transformers.audio_utils import chroma_filter_bank

    if melody.duration < MIN_MELODY_SECONDS:
        raise InputError(f"The melody is {melody.duration:.2f} s long; give at least {MIN_MELODY_SECONDS:g} s of a tune.")
    mono = audio_io.resample(melody.mono(), params.sampling_rate).samples[0, : params.max_samples]
    if not np.any(np.abs(mono) > 1e-4):
        raise InputError("The melody is silent; give a recording of a tune.")
    waveform = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
    if waveform.shape[-1] < params.n_fft:  # as the extractor: zero-pad short input to one window, centred
        missing = params.n_fft - waveform.shape[-1]
        waveform = torch.nn.functional.pad(waveform, (missing // 2, missing - missing // 2))
    window = torch.hann_window(params.n_fft)
    stft = torch.stft(waveform, params.n_fft, hop_length=params.hop_length, win_length=params.n_fft, window=window,
                      center=True, pad_mode="reflect", return_complex=True)
    power = stft.abs() ** 2 / window.pow(2).sum()  # (freq, frames)
    filters = torch.from_numpy(chroma_filter_bank(sampling_rate=params.sampling_rate, num_frequency_bins=params.n_fft,
                                                  tuning=0, num_chroma=params.feature_size)).float()
    chroma = torch.nn.functional.normalize(filters @ power, p=float("inf"), dim=0, eps=1e-6).T  # (frames, 12)
    one_hot = torch.zeros_like(chroma)
    one_hot.scatter_(1, chroma.argmax(dim=1, keepdim=True), 1.0)
    return one_hot.numpy()
