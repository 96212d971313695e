"""Bad inputs handled outside the pipelines' own test files: spectrogram uploads, weights text, durations."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from pipelines import audio as audio_io
from pipelines import limits, spectrogram
from core.errors import InputError

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_spectrogram_upload_checks(tmp_path):
    with pytest.raises(InputError, match="upload a spectrogram"):
        spectrogram.load_image(None)
    with pytest.raises(InputError, match="does not exist"):
        spectrogram.load_image(tmp_path / "missing.png")
    wide = tmp_path / "wide.png"
    Image.new("L", (limits.MAX_SPECTROGRAM_WIDTH + 1, 8)).save(wide)
    with pytest.raises(InputError, match="px wide"):
        spectrogram.load_image(wide)
    ok = tmp_path / "ok.png"
    Image.new("RGB", (64, 512)).save(ok)
    assert spectrogram.load_image(ok).size == (64, 512)


def test_style_weights_text():
    import app

    assert app.parse_weights("", 2) is None
    assert app.parse_weights("0.7; 0.3", 2) == [0.7, 0.3]
    with pytest.raises(InputError, match="one weight per style"):
        app.parse_weights("1", 2)
    with pytest.raises(InputError, match="numbers separated by commas"):
        app.parse_weights("a, b", 2)


def test_zero_gpu_duration_grows_with_the_audio_and_survives_a_bad_file(tmp_path):
    import app

    short = app.gpu_seconds_for_sound_to_music(str(ASSETS / "knocks.wav"), "mask_model", "p", "", 1, 0.05, 200, 150,
                                               50, 0.8)
    long_path = tmp_path / "long.wav"
    sf.write(long_path, 0.1 * np.ones(44100 * 30), 44100)
    longer = app.gpu_seconds_for_sound_to_music(str(long_path), "mask_model", "p", "", 1, 0.05, 200, 150, 50, 0.8)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    worst = app.gpu_seconds_for_sound_to_music(str(broken), "mask_model", "p", "", 1, 0.05, 200, 150, 50, 0.8)
    assert short < longer <= worst
    assert audio_io.probe_duration(long_path) == pytest.approx(30.0)
    with pytest.raises(InputError, match="cannot be read"):
        audio_io.probe_duration(broken)
