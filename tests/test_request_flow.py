"""One request: its settings validated once, its windows planned once, the plan passed down."""

import dataclasses

import pytest

from core.errors import InputError
from pipelines.schema import limits, settings
from pipelines.signal import windows
from pipelines.schema.settings import MaskSettings, SoundToMusicSettings

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture
def counted(monkeypatch):
    """Counts of every settings check and window plan made while the test runs."""
    counts = {"checks": [], "plans": 0}
    check = limits.Settings.validate

    def counting_validate(self):
        if not self.__dict__.get("_validated"):
            counts["checks"].append(type(self).__name__)
        return check(self)

    plan = windows.plan_windows

    def counting_plan(*args, **kwargs):
        counts["plans"] += 1
        return plan(*args, **kwargs)

    monkeypatch.setattr(limits.Settings, "validate", counting_validate)
    monkeypatch.setattr(windows, "plan_windows", counting_plan)
    return counts


def test_sound_to_music_validates_once_and_plans_once(studio, counted):
    chosen = SoundToMusicSettings(steps=2, strength=0.5)
    studio.sound_to_music(str(ASSETS / "knocks.wav"), chosen, model="riffusion")
    # one check of each settings object (the mask is checked inside its parent's), one plan
    assert sorted(counted["checks"]) == ["MaskSettings", "SoundToMusicSettings"]
    assert counted["plans"] == 1


def test_the_mask_preview_validates_once_not_once_a_window(studio, counted):
    studio.preview_mask(str(ASSETS / "knocks.wav"), MaskSettings())
    assert counted["checks"] == ["MaskSettings"] and counted["plans"] == 1


def test_a_bad_setting_is_refused_before_the_audio_is_read(studio):
    with pytest.raises(InputError, match="^Invert blend must be"):
        studio.preview_mask("/no/such/file.wav", MaskSettings(invert=99.0))
    valid = SoundToMusicSettings().validate()
    bad = dataclasses.replace(valid, steps=0)  # a replaced copy is checked again
    with pytest.raises(InputError):
        bad.validate()


@pytest.mark.parametrize("seconds", [0.5, 5.12, 5.2, 10.0, 12.0, 30.0, 60.0])
def test_the_gpu_estimates_count_windows_as_the_pipelines_cut_them(seconds):
    """The ZeroGPU estimate's window count is the one plan_windows makes of that much audio."""
    n = int(round(seconds * 44100))
    cut = windows.plan_windows(n, (settings.RIFFUSION_WINDOW_SAMPLES, 44100)).count
    assert settings.riffusion_windows(seconds) == cut
    s2m = SoundToMusicSettings(steps=50, strength=1.0)
    assert s2m.gpu_seconds(seconds) == int(20 + cut * 50 * 0.1)


def test_riffusion_window_is_the_spectrogram_presets():
    from pipelines.signal import spectrogram

    assert settings.RIFFUSION_WINDOW == (spectrogram.RIFFUSION.window_samples, spectrogram.RIFFUSION.sample_rate)


def test_the_studio_measures_its_result_and_decodes_the_input_once(studio, monkeypatch):
    """CLAP metrics come with the result (the UI only shows them), from the sound the request decoded."""
    decoded = []
    load = studio.load_input_audio
    monkeypatch.setattr(studio, "load_input_audio", lambda *args, **kwargs: decoded.append(args[1:]) or load(*args, **kwargs))
    result = studio.sound_to_music(str(ASSETS / "knocks.wav"), SoundToMusicSettings(steps=2, strength=0.5),
                                   model="riffusion", clap=True)
    assert decoded == [(44100,)]
    assert {"ssim", "chroma_cens_similarity", "clap_score", "content_preservation"} <= set(result.metrics)
    plain = studio.sound_to_music(str(ASSETS / "knocks.wav"), SoundToMusicSettings(steps=2, strength=0.5),
                                  model="riffusion")
    assert set(plain.metrics) == {"ssim", "chroma_cens_similarity"}  # the CPU's default: no CLAP
    assert plain.metrics["ssim"] == result.metrics["ssim"]
