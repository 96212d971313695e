"""Style interpolation through the API, on the tiny Riffusion model and tiny styles."""

from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from pipelines.signal import audio as audio_io

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def style_args(audio, styles=("jazz", "rock"), weights="0.5, 0.5", strength=0.5, steps=4, guidance=5.0, seed=23):
    return [audio, styles if isinstance(styles, str) else list(styles), weights, strength, steps, guidance, seed]


def test_two_styles_mixed(client):
    wav, content, output, metrics = client.predict(*style_args(handle_file(str(ASSETS / "knocks.wav"))), True,
                                                   api_name="/style_interpolation")
    from conftest import metrics_of

    table = metrics_of(metrics)
    assert set(table) == {"Content preservation (CLAP, input vs output)", "Style fit, mean over the styles (CLAP)",
                          "Style fit, max over the styles (CLAP)"}
    assert table["Style fit, max over the styles (CLAP)"] >= table["Style fit, mean over the styles (CLAP)"]
    saved_metrics = audio_io.read_wav_metadata(wav)["metrics"]
    assert saved_metrics["style_fit_mean"] == pytest.approx(table["Style fit, mean over the styles (CLAP)"], abs=1e-4)
    sound = audio_io.load_audio(wav, 44100, allow_silence=True)
    assert abs(sound.duration - 5.0) < 0.01
    assert Image.open(content).size == Image.open(output).size
    saved = audio_io.read_wav_metadata(wav)
    assert saved["seed"] == 23


@pytest.mark.parametrize("changes,words", [
    ({"weights": "0.5"}, "one weight per style"),
    ({"weights": "a, b"}, "numbers separated by commas"),
    ({"styles": ()}, "style"),
    ({"styles": ("jazz", "../../etc")}, "style"),
    ({"weights": "-1, 2"}, "(?i)weight 1 must be"),
])
def test_bad_style_arguments(client, changes, words):
    with pytest.raises(AppError, match=words):
        client.predict(*style_args(handle_file(str(ASSETS / "knocks.wav")), **changes), api_name="/style_interpolation")


def test_style_names_given_as_one_string_are_names_not_letters(client):
    """An API caller's "jazz, rock" (or "jazz") where the endpoint takes a list: style names, and an
    unknown one is named whole in the error."""
    knocks = handle_file(str(ASSETS / "knocks.wav"))
    wav, *_ = client.predict(*style_args(knocks, styles="jazz, rock", steps=2), api_name="/style_interpolation")
    assert audio_io.read_wav_metadata(wav)["styles"] == ["jazz", "rock"]
    with pytest.raises(AppError, match="Unknown style 'polka'"):
        client.predict(*style_args(knocks, styles="polka", weights=""), api_name="/style_interpolation")


def test_style_names_on_the_tiny_profile(studio):
    assert {"jazz", "rock", "ambient"} <= set(studio.style_names())


@pytest.mark.slow
def test_riffusion_is_shared_with_sound_to_music(studio):
    """Both tabs run on the one 'riffusion' entry: loaded once."""
    from pipelines.systems.masked_img2img import SoundToMusicSettings
    from pipelines.schema.settings import StyleInterpolationSettings

    studio.style_interpolation(str(ASSETS / "knocks.wav"), ["jazz"], settings=StyleInterpolationSettings(steps=2, strength=0.5))
    studio.sound_to_music(str(ASSETS / "knocks.wav"), SoundToMusicSettings(steps=2, strength=0.5), model="riffusion")
    assert [e for e in studio.manager.events if e == ("load", "riffusion")] == [("load", "riffusion")]
