"""MusicGen-melody's chroma, computed without torchaudio, against the extractor's formula done with librosa."""

import numpy as np
import pytest

from core.errors import InputError
from pipelines.signal import audio as audio_io
from pipelines.systems.melody import MelodyParams, melody_chroma


def extractor_formula(samples: np.ndarray, params: MelodyParams) -> np.ndarray:
    """transformers' MusicgenMelodyFeatureExtractor._torch_extract_fbank_features, in librosa and numpy:
    power STFT (Hann, centred, reflect padding) over sum(window^2), librosa's chroma filters, max-normalised,
    one-hot of the argmax."""
    import librosa

    window = np.hanning(params.n_fft + 1)[:-1]  # periodic Hann, as torch.hann_window
    stft = librosa.stft(samples, n_fft=params.n_fft, hop_length=params.hop_length, window=window, center=True,
                        pad_mode="reflect")
    power = np.abs(stft) ** 2 / np.sum(window**2)
    chroma = librosa.filters.chroma(sr=params.sampling_rate, n_fft=params.n_fft, tuning=0, n_chroma=12) @ power
    chroma = chroma / np.maximum(np.abs(chroma).max(axis=0, keepdims=True), 1e-6)
    return np.eye(12, dtype=np.float32)[chroma.argmax(axis=0)]


def scale(notes_hz, seconds_each, rate=32000):
    t = np.arange(int(seconds_each * rate)) / rate
    return np.concatenate([np.sin(2 * np.pi * f * t) for f in notes_hz]).astype(np.float32)


def test_a_tune_gives_the_extractors_chroma_and_its_pitch_classes():
    params = MelodyParams()
    notes = [261.63, 329.63, 392.00, 440.00]  # C4 E4 G4 A4, one second each
    samples = scale(notes, 1.0)
    chroma = melody_chroma(audio_io.Audio(samples, 32000), params)
    assert chroma.shape == (len(samples) // params.hop_length + 1, 12)
    np.testing.assert_array_equal(chroma, extractor_formula(samples, params))
    # the middle frame of each second names its note's pitch class (C=0, E=4, G=7, A=9)
    middles = [int((i + 0.5) * 32000 / params.hop_length) for i in range(4)]
    assert [int(chroma[m].argmax()) for m in middles] == [0, 4, 7, 9]


def test_any_rate_and_channels_are_brought_to_the_models_and_long_tunes_are_cut():
    params = MelodyParams()
    stereo_44k = np.stack([scale([440.0], 40.0, 44100)] * 2)
    chroma = melody_chroma(audio_io.Audio(stereo_44k, 44100), params)
    assert chroma.shape == (params.max_samples // params.hop_length + 1, 12)  # 30 s: 235 frames, the model's chroma_length
    assert chroma.shape[0] == 235
    assert (chroma.argmax(axis=1)[5:-5] == 9).all()  # A


@pytest.mark.parametrize(("samples", "message"), [
    (np.zeros(32000 * 2, np.float32), "silent"),
    (scale([440.0], 0.5), "at least 1 s"),
])
def test_silent_or_too_short_melodies_are_refused(samples, message):
    with pytest.raises(InputError, match=message):
        melody_chroma(audio_io.Audio(samples, 32000))
