"""Extend a track (``/extend_music``): the input kept up to the seam, the length exact, the seed repeatable."""

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from pipelines.signal import audio as audio_io
from pipelines.systems import extend

RATES = {"riffusion": 44100, "musicgen": 32000}
LSB = 1.5 / 32768  # one 16-bit step (and a half for rounding): the WAV round trip


def track(path, seconds=6.0, rate=44100, channels=1, seed=0):
    """A 220 Hz tone with a little noise (not silent, not a pure tone), written as a 16-bit WAV."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal((channels, t.size))
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * noise).astype(np.float32)
    audio_io.write_wav(path, audio_io.Audio(samples, rate))
    return str(path), audio_io.load_audio(str(path), rate, mono=False).samples


def args(path, prompt="jazzy saxophone", seconds=8.0, engine="riffusion", side="after", seed=3, steps=2,
         guidance=None, negative=""):
    return [handle_file(path), prompt, seconds, engine, side, seed, steps, guidance, negative]


def load(wav, rate):
    return audio_io.load_audio(wav, rate, mono=False, allow_silence=True).samples


@pytest.mark.parametrize("engine", [pytest.param("riffusion", marks=pytest.mark.slow), "musicgen"])
def test_six_seconds_extended_by_eight_keeps_the_input_and_repeats_with_its_seed(client, tmp_path, engine):
    rate = RATES[engine]
    path, original = track(tmp_path / "in.wav", rate=rate)
    wav, _ = client.predict(*args(path, engine=engine), api_name="/extend_music")
    out = load(wav, rate)
    saved = audio_io.read_wav_metadata(wav)
    fade = round(saved["crossfade_seconds"] * rate)
    assert out.shape == (1, 14 * rate)
    assert 0 < fade <= round(0.2 * rate)
    assert np.abs(out[:, : 6 * rate - fade] - original[:, : 6 * rate - fade]).max() <= LSB
    assert np.abs(out[:, 6 * rate :]).max() > 0.01  # new sound after the seam
    assert saved["engine"] == engine and saved["added_seconds"] == 8.0 and saved["seed"] == 3
    again, _ = client.predict(*args(path, engine=engine), api_name="/extend_music")
    assert np.array_equal(load(again, rate), out)
    other, _ = client.predict(*args(path, engine=engine, seed=4), api_name="/extend_music")
    assert np.abs(load(other, rate)[:, 7 * rate :] - out[:, 7 * rate :]).max() > 32 * LSB  # another seed, other music


@pytest.mark.parametrize("engine", ["riffusion", "musicgen"])
def test_before_the_start_the_input_ends_the_track(client, tmp_path, engine):
    rate = RATES[engine]
    path, original = track(tmp_path / "in.wav", seconds=3.0, rate=rate, seed=1)
    wav, png = client.predict(*args(path, engine=engine, side="before", seconds=5.0), api_name="/extend_music")
    out = load(wav, rate)
    fade = round(audio_io.read_wav_metadata(wav)["crossfade_seconds"] * rate)
    assert out.shape == (1, 8 * rate)
    assert np.abs(out[:, 5 * rate + fade :] - original[:, fade:]).max() <= LSB
    assert np.abs(out[:, : 5 * rate - fade] - 0).max() > 0.01
    assert (png is None) == (engine == "musicgen")  # Riffusion shows its new windows


def test_a_stereo_track_keeps_its_rate_and_channels(studio, tmp_path):
    path, original = track(tmp_path / "stereo.wav", seconds=2.0, rate=48000, channels=2)
    result = studio.extend_music(path, extend.ExtendSettings(engine="musicgen", seconds=1.5))
    assert result.sample_rate == 48000 and result.audio.shape == (2, int(3.5 * 48000))
    fade = round(result.parameters["crossfade_seconds"] * 48000)
    assert np.abs(result.audio[:, : 2 * 48000 - fade] - original[:, : 2 * 48000 - fade]).max() == 0
    assert result.parameters["model"] == "musicgen"


def test_join_keeps_the_original_matches_the_level_and_crossfades():
    rng = np.random.default_rng(0)
    original = np.repeat(rng.standard_normal((1, 1000)).astype(np.float32) / 8, 2, axis=0)  # dual mono
    continuation = 4 * np.concatenate([original[:1, -100:], rng.standard_normal((1, 300)) / 8], axis=1)
    joined = extend.join(original, continuation, overlap=100, fade=20)
    assert joined.shape == (2, 1300)
    assert np.array_equal(joined[:, :980], original[:, :980])
    # the continuation was 4x louder over the overlap: brought to the original's level
    assert np.allclose(joined[0, 1000:], continuation[0, 100:] / 4, atol=1e-5)
    with pytest.raises(ValueError):
        extend.join(original, continuation, overlap=10, fade=20)


@pytest.mark.parametrize("changes,words", [
    ({"seconds": 61}, r"^Seconds to add \(parameter seconds\) must be a number from 1 to 60"),
    ({"engine": "amuse"}, r"\(parameter engine\) must be one of .riffusion., .musicgen.; got .amuse."),
    ({"prompt": " "}, r"^Prompt \(parameter prompt\) is empty"),
    ({"guidance": 50}, "(?i)guidance"),
])
def test_bad_extend_arguments(client, tmp_path, changes, words):
    path, _ = track(tmp_path / "in.wav", seconds=2.0)
    with pytest.raises(AppError, match=words):
        client.predict(*args(path, **changes), api_name="/extend_music")


def test_a_track_shorter_than_the_kept_tail_is_refused(client, tmp_path):
    path, _ = track(tmp_path / "short.wav", seconds=1.0)
    with pytest.raises(AppError, match="at least 1.28 s long"):
        client.predict(*args(path), api_name="/extend_music")
