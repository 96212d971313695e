"""The one shape: settings hold defaults and limits, results save alike, a cancelled run is not an error."""

import dataclasses
import re

import numpy as np
import pytest
from PIL import Image

from core.errors import Cancelled, InputError
from pipelines.signal import audio as audio_io
from pipelines.schema import limits, outputs, settings
from pipelines.signal import spectrogram
from pipelines.schema.results import Result, SpectrogramResult

SETTINGS = [settings.MaskSettings, settings.SoundToMusicSettings, settings.StyleInterpolationSettings,
            settings.MusicToImageSettings, settings.ImageToMusicSettings, settings.PlaylistToMusicSettings]


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda cls: cls.__name__)
def test_every_default_is_valid_and_inside_its_range(cls):
    defaults = cls()
    assert defaults.validate() is defaults
    for name, valid in cls.RANGES.items():
        assert valid.low <= getattr(defaults, name) <= valid.high, name
        assert cls.default(name) == getattr(defaults, name)


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda cls: cls.__name__)
def test_every_ranged_field_is_checked_at_both_ends(cls):
    for name, valid in cls.RANGES.items():
        step = 1 if valid.integer else 1e-3 * max(1.0, valid.high - valid.low)
        for outside in (valid.low - step, valid.high + step):
            with pytest.raises(InputError, match="^" + re.escape(cls.label(name)) + " must be "):  # the page's name
                dataclasses.replace(cls(), **{name: outside}).validate()


def test_settings_are_frozen_so_a_run_cannot_change_them():
    chosen = settings.SoundToMusicSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        chosen.steps = 3


@pytest.mark.parametrize("value,words", [(None, "must be text"), ("   ", "is empty: write"), ("x" * 1001, "at most 1000")])
def test_one_text_check(value, words):
    with pytest.raises(InputError, match=words):
        limits.check_text("style prompt", value, hint="write one")
    assert limits.optional_text("caption", None) == "" and limits.optional_text("caption", "  a  ") == "a"


def test_the_ui_builds_its_controls_from_the_settings():
    from ui.common import slider

    control = slider(settings.MusicToImageSettings, "steps", 1, "DDIM")
    assert (control.minimum, control.maximum, control.value) == (limits.STEPS.low, limits.STEPS.high, 50)
    assert (control.label, control.precision) == ("Steps (DDIM)", 0)  # its name is the settings' own; whole numbers
    assert slider(settings.MusicToImageSettings, "guidance", 0.5).precision is None


def test_zero_gpu_estimates_grow_with_the_work():
    s2m = settings.SoundToMusicSettings()
    assert s2m.gpu_seconds(5.0) < s2m.gpu_seconds(60.0)
    assert settings.MusicToImageSettings(steps=10).gpu_seconds() < settings.MusicToImageSettings(steps=100).gpu_seconds()
    assert settings.ImageToMusicSettings(seconds=5).gpu_seconds() < settings.ImageToMusicSettings(seconds=30).gpu_seconds()


def test_a_result_saves_its_audio_and_pictures_with_their_parameters(tmp_path):
    samples = (0.1 * np.sin(np.linspace(0, 2000, 44100 * 2))).astype(np.float32)[None]
    image = spectrogram.audio_to_image(samples, spectrogram.RIFFUSION)
    result = SpectrogramResult(image=image, params=spectrogram.RIFFUSION, audio=samples, sample_rate=44100,
                               parameters={"pipeline": "test", "model": "riffusion", "seed": 3},
                               metrics={"ssim": 0.5})
    saved = outputs.save_result(result, "sound", tmp_path)
    assert audio_io.read_wav_metadata(saved.audio) == {"pipeline": "test", "model": "riffusion", "seed": 3,
                                                       "metrics": {"ssim": 0.5}}
    png = saved.images["spectrogram-riffusion"]
    assert outputs.read_png_parameters(png)["model"] == "riffusion"
    with Image.open(png) as again:  # the spectrogram's own metadata survives next to the parameters
        assert spectrogram.read_metadata(again)["params"] == spectrogram.RIFFUSION


def test_a_result_without_audio_writes_no_wav(tmp_path):
    class Picture(Result):
        def image_outputs(self):
            return {"picture": Image.new("RGB", (8, 8))}

    saved = outputs.save_result(Picture(parameters={"pipeline": "x"}), "none", tmp_path)
    assert saved.audio is None and list(saved.images) == ["picture"]


def test_a_cancelled_run_is_information_not_an_error(monkeypatch):
    import gradio as gr

    from ui import errors

    shown = []
    monkeypatch.setattr(gr, "Info", lambda message, *args, **kwargs: shown.append(message))

    @errors.user_errors
    def stopped():
        raise Cancelled()

    @errors.user_errors
    def wrong():
        raise InputError("bad input")

    assert stopped() == gr.skip() and shown == ["Cancelled."]
    with pytest.raises(gr.Error, match="bad input"):
        wrong()


def test_studio_results_name_the_model_that_made_them(studio, tmp_path):
    import soundfile as sf

    path = tmp_path / "tone.wav"
    sf.write(path, 0.3 * np.sin(np.linspace(0, 3000, 44100)), 44100)
    result = studio.sound_to_music(str(path), settings.SoundToMusicSettings(steps=2, strength=0.5), model="riffusion")
    assert result.parameters["model"] == "riffusion" and result.parameters["pipeline"] == "masked_img2img"
    assert set(result.image_outputs()) == {"input-spectrogram", "mask", "output-spectrogram"}
    assert result.audio_output()[1] == 44100


@pytest.mark.parametrize("call", [
    lambda s: s.music_to_image(None, 5),
    lambda s: s.image_to_music(None, ["a", "list"]),
    lambda s: s.recommend_songs(None, 3.5),
    lambda s: s.recommend_songs(None, "a calm sea", k=0),
    lambda s: s.style_interpolation(None, "jazz"),
])
def test_studio_refuses_inputs_of_the_wrong_kind_before_any_model_loads(call):
    from pipelines.studio import Studio

    fresh = Studio(profile="tiny", device="cpu")
    with pytest.raises(InputError):
        call(fresh)
    assert fresh.manager.events == []
