"""The ``Audio`` value, peak level and normalisation, and WAV files written with their metadata."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from audio_checks import SR, tone
from pipelines.signal.audio import Audio, load_audio, peak_dbfs, peak_normalize, read_wav_metadata, write_wav


def test_audio_helpers():
    a = Audio(np.stack([tone(seconds=0.5), np.zeros(SR // 2, np.float32)]), SR)
    assert a.channels == 2 and a.num_frames == SR // 2 and a.duration == pytest.approx(0.5)
    assert a.mono().channels == 1
    np.testing.assert_allclose(a.mono().samples[0], a.samples[0] / 2)
    with pytest.raises(ValueError):
        Audio(np.zeros((1000, 2)), SR)  # (n, channels) by mistake


# ---------------------------------------------------------------------------- peak


def test_peak_dbfs_is_the_sample_peak():
    # fs/4 sine at 45 degrees phase: samples sit at 0.707 of the true peak (-3 dB)
    n = np.arange(SR)
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4).astype(np.float32)
    assert peak_dbfs(Audio(x, SR)) == pytest.approx(-3.01, abs=0.05)
    assert peak_dbfs(np.zeros(10)) == -math.inf


def test_peak_normalize():
    x = tone(dbfs=-20.0)
    y = peak_normalize(x, headroom_db=1.0)
    assert 20 * np.log10(np.abs(y).max()) == pytest.approx(-1.0, abs=1e-3)
    a = peak_normalize(Audio(x, SR), 3.0)
    assert isinstance(a, Audio) and 20 * np.log10(np.abs(a.samples).max()) == pytest.approx(-3.0, abs=1e-3)
    z = peak_normalize(np.zeros(100, np.float32))
    assert np.isfinite(z).all() and not z.any()


# ---------------------------------------------------------------------------- writing


def test_write_wav_metadata_round_trip(tmp_path):
    meta = {
        "pipeline": "image_to_music",
        "seed": np.int64(1234),
        "guidance": np.float32(7.5),
        "prompt": "jazz é 🎷 " + "x" * 5000,  # longer than libsndfile's own comment limit
        "steps": [1, 2, 3],
    }
    stereo = Audio(np.stack([tone(440, 1.0), tone(660, 1.0)]), SR)
    path = write_wav(tmp_path / "out" / "song.wav", stereo, meta)
    assert path.exists()
    info = sf.info(path)
    assert info.subtype == "PCM_16" and info.channels == 2 and info.samplerate == SR
    back = read_wav_metadata(path)
    assert back == {**meta, "seed": 1234, "guidance": 7.5}
    reloaded = load_audio(path, SR, mono=False)
    np.testing.assert_allclose(reloaded.samples, stereo.samples, atol=1 / 32767 + 1e-6)


def test_write_wav_float_and_no_metadata(tmp_path):
    a = Audio(tone(seconds=0.5), SR)
    path = write_wav(tmp_path / "f.wav", a, subtype="FLOAT")
    assert sf.info(path).subtype == "FLOAT"
    assert read_wav_metadata(path) == {}
    np.testing.assert_array_equal(sf.read(path, dtype="float32")[0], a.samples[0])


def test_write_wav_clips_instead_of_wrapping(tmp_path):
    # libsndfile 1.2 clips too; older builds wrapped, which is what this guards against
    path = write_wav(tmp_path / "hot.wav", Audio(np.full(1000, 1.5, np.float32), SR))
    data, _ = sf.read(path, dtype="int16")
    assert (data == 32767).all()


def test_read_metadata_of_foreign_files(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"not a wav")
    assert read_wav_metadata(tmp_path / "x.wav") == {}
    assert read_wav_metadata(tmp_path / "missing.wav") == {}
