"""Text to music and prompt interpolation through the API, as gradio_client users call them (tiny Riffusion)."""

import numpy as np
import pytest
from gradio_client.exceptions import AppError
from PIL import Image

from pipelines.signal import audio as audio_io

SR = 44100
WINDOW = 512 * 441 - 1  # samples of one 512 px riffusion window


def t2m_args(prompt="funk bassline", negative="", seconds=12.0, steps=2, guidance=7.0, seed=5, model="riffusion"):
    return [prompt, negative, seconds, steps, guidance, seed, model]


def interpolation_args(prompt_a="church bells", prompt_b="heavy metal guitar", seed_a=3, seed_b=9, windows=2, steps=2,
                       guidance=7.0):
    return [prompt_a, prompt_b, seed_a, seed_b, windows, steps, guidance]


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.int16)


def test_twelve_seconds_from_three_windows_and_the_same_seed_gives_the_same_audio(client):
    wav, png = client.predict(*t2m_args(), api_name="/text_to_music")
    sound = audio_io.load_audio(wav, SR, allow_silence=True)
    assert sound.samples.shape[-1] == 12 * SR
    saved = audio_io.read_wav_metadata(wav)
    assert saved["windows"] == 3 and saved["seed"] == 5 and saved["model"] == "riffusion"
    assert Image.open(png).size == (3 * 512, 512)
    again, _ = client.predict(*t2m_args(), api_name="/text_to_music")
    assert np.array_equal(audio_io.load_audio(again, SR, allow_silence=True).samples, sound.samples)


def test_interpolation_starts_at_prompt_a_and_ends_at_prompt_b(client):
    """Its windows at alpha 0 and 1 equal single-prompt text to music at the same seeds."""
    wav, png = client.predict(*interpolation_args(), api_name="/interpolate_prompts")
    _, single_a = client.predict(*t2m_args(prompt="church bells", seconds=5.0, seed=3), api_name="/text_to_music")
    _, single_b = client.predict(*t2m_args(prompt="heavy metal guitar", seconds=5.0, seed=9), api_name="/text_to_music")
    strip = pixels(png)
    assert strip.shape == (512, 2 * 512)
    assert np.abs(strip[:, :512] - pixels(single_a)).max() <= 1
    assert np.abs(strip[:, 512:] - pixels(single_b)).max() <= 1
    assert np.abs(pixels(single_a) - pixels(single_b)).mean() > 1  # the two ends do differ
    sound = audio_io.load_audio(wav, SR, allow_silence=True)
    assert sound.samples.shape[-1] == 2 * WINDOW - round(0.2 * SR)
    assert audio_io.read_wav_metadata(wav)["alphas"] == [0.0, 1.0]


@pytest.mark.parametrize("changes,words", [
    ({"prompt": ""}, r"^Prompt \(parameter prompt\) is empty"),
    ({"seconds": 0.2}, r"^Length \(parameter seconds\) must be a number from 1 to 60"),
    ({"model": "sd15"}, r"\(parameter model\) must be one of .riffusion., .mask_model.; got .sd15."),
    ({"steps": 0}, "(?i)steps|minimum"),
])
def test_bad_text_to_music_arguments(client, changes, words):
    with pytest.raises(AppError, match=words):
        client.predict(*t2m_args(**changes), api_name="/text_to_music")


@pytest.mark.parametrize("changes,words", [
    ({"prompt_b": "  "}, r"^Second prompt \(parameter prompt_b\) is empty"),
    ({"windows": 1}, "(?i)windows|minimum"),
    ({"seed_a": -1}, r"^First seed \(parameter seed_a\) must be a whole number"),
    ({"seed_b": 2**32},  # the bound as written, not 4.29497e+09
     r"^Second seed \(parameter seed_b\) must be a whole number from 0 to 4294967295;"),
])
def test_bad_interpolation_arguments(client, changes, words):
    with pytest.raises(AppError, match=words):
        client.predict(*interpolation_args(**changes), api_name="/interpolate_prompts")
