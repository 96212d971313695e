"""Bad inputs handled outside the pipelines' own test files: spectrogram uploads, weights text, durations."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from pipelines.signal import audio as audio_io
from pipelines.schema import limits
from pipelines.signal import spectrogram
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
    from ui.style_interpolation import parse_weights

    assert parse_weights("", 2) is None
    assert parse_weights("0.7; 0.3", 2) == [0.7, 0.3]
    with pytest.raises(InputError, match="one weight per style"):
        parse_weights("1", 2)
    with pytest.raises(InputError, match="numbers separated by commas"):
        parse_weights("a, b", 2)


def test_zero_gpu_duration_grows_with_the_audio_and_survives_a_bad_file(studio, tmp_path):
    from pipelines.schema.settings import SoundToMusicSettings

    settings = SoundToMusicSettings(steps=50, strength=0.8)
    short = settings.gpu_seconds(studio.audio_seconds(str(ASSETS / "knocks.wav")))
    long_path = tmp_path / "long.wav"
    sf.write(long_path, 0.1 * np.ones(44100 * 30), 44100)
    longer = settings.gpu_seconds(studio.audio_seconds(str(long_path)))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    worst = settings.gpu_seconds(studio.audio_seconds(str(broken)))
    assert short < longer <= worst
    assert audio_io.probe_duration(long_path) == pytest.approx(30.0)
    with pytest.raises(InputError, match="cannot be read"):
        audio_io.probe_duration(broken)
