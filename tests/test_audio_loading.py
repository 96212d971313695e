"""load_audio on signals synthesised here and written to tmp_path: every format resampled with its pitch
kept, the fallback decoder, channels, gradio's tuples, and memory bounded by what is decoded."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audio_checks import SR, dominant_freq, expect_error, tone
from pipelines.schema import limits
from pipelines.signal.audio import load_audio
from pipelines.signal.audio import loading as audio_loading


# ---------------------------------------------------------------------------- formats


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_load_each_format_resamples_and_keeps_pitch(tmp_path, ext):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, tone(440.0, 2.0), SR)
    out = load_audio(path, 16000)
    assert out.sample_rate == 16000
    assert out.samples.dtype == np.float32 and out.samples.shape[0] == 1
    assert out.duration == pytest.approx(2.0, abs=0.06)  # lossy codecs pad a little
    assert dominant_freq(out.samples, 16000) == pytest.approx(440.0, abs=2.0)
    assert 20 * np.log10(np.abs(out.samples).max()) == pytest.approx(-6.0, abs=1.0)


def test_load_str_path_and_same_rate_is_untouched(tmp_path):
    x = tone(1000.0, 0.5)
    sf.write(tmp_path / "a.wav", x, SR, subtype="FLOAT")
    out = load_audio(str(tmp_path / "a.wav"), SR)
    np.testing.assert_array_equal(out.samples[0], x)


def _soundfile_cannot_open(monkeypatch):
    def refuse(*args, **kwargs):
        raise sf.LibsndfileError(1, "Format not recognised")

    monkeypatch.setattr(audio_loading.sf, "SoundFile", refuse)
    monkeypatch.setattr(limits, "DECODE_WORKERS", 0)  # the patched decoder runs in this process


def test_fallback_decoder_is_used_when_soundfile_cannot_open(tmp_path, monkeypatch):
    # audioread's stdlib backend reads WAV; on a Space its ffmpeg backend reads m4a/aac/webm.
    left, right = tone(440, 1.0), tone(880, 1.0, dbfs=-12)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), SR, subtype="PCM_16")
    _soundfile_cannot_open(monkeypatch)
    out = load_audio(tmp_path / "st.wav", 22050, mono=False)
    assert out.channels == 2 and out.sample_rate == 22050
    assert out.duration == pytest.approx(1.0, abs=1e-3)
    assert dominant_freq(out.samples[0], 22050) == pytest.approx(440, abs=2)
    assert dominant_freq(out.samples[1], 22050) == pytest.approx(880, abs=2)


def test_fallback_decoder_checks_length(tmp_path, monkeypatch):
    sf.write(tmp_path / "long.wav", tone(seconds=4.0, sr=8000), 8000, subtype="PCM_16")
    _soundfile_cannot_open(monkeypatch)
    expect_error(tmp_path / "long.wav", "too long", "2 s", max_seconds=2.0)


def test_fallback_decoder_stops_when_the_header_has_no_duration(tmp_path, monkeypatch):
    import audioread

    class Stream:  # reports no duration; 20 s long, so reading it all would exceed the limit
        samplerate, channels, duration = 8000, 1, 0
        blocks_read = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def __iter__(self):
            block = (tone(seconds=0.5, sr=8000) * 32767).astype("<i2").tobytes()
            for _ in range(40):
                Stream.blocks_read += 1
                yield block

    (tmp_path / "stream.webm").write_bytes(b"\x1aE\xdf\xa3" + b"\0" * 100)
    _soundfile_cannot_open(monkeypatch)
    monkeypatch.setattr(audioread, "audio_open", lambda path: Stream())
    expect_error(tmp_path / "stream.webm", "too long", "2 s", max_seconds=2.0)
    assert Stream.blocks_read < 10  # stopped soon after passing the limit


def test_unknown_container_gives_clear_error(tmp_path):
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(range(256)) * 8)
    expect_error(path, "song.m4a", "could not be read", "WAV, FLAC, OGG or MP3")


# ---------------------------------------------------------------------------- channels


def test_stereo_file_to_mono_is_mean_and_can_stay_stereo(tmp_path):
    left, right = tone(440, 1.0, dbfs=-6), tone(660, 1.0, dbfs=-12)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), SR, subtype="FLOAT")
    mono = load_audio(tmp_path / "st.wav", SR)
    np.testing.assert_allclose(mono.samples[0], (left + right) / 2, atol=1e-6)
    stereo = load_audio(tmp_path / "st.wav", SR, mono=False)
    assert stereo.channels == 2
    np.testing.assert_allclose(stereo.samples[0], left, atol=1e-6)
    np.testing.assert_allclose(stereo.samples[1], right, atol=1e-6)
    assert load_audio(tmp_path / "st.wav", SR, channels=2).channels == 2


def test_mono_to_stereo_duplicates(tmp_path):
    x = tone(440, 1.0)
    sf.write(tmp_path / "m.wav", x, SR, subtype="FLOAT")
    out = load_audio(tmp_path / "m.wav", 22050, channels=2)
    assert out.channels == 2 and out.sample_rate == 22050
    np.testing.assert_array_equal(out.samples[0], out.samples[1])
    # mono=False keeps the source's single channel
    assert load_audio(tmp_path / "m.wav", SR, mono=False).channels == 1


def test_conflicting_channel_arguments_are_a_programming_error(tmp_path):
    sf.write(tmp_path / "m.wav", tone(), SR)
    with pytest.raises(TypeError):
        load_audio(tmp_path / "m.wav", SR, channels=2, mono=True)


# ---------------------------------------------------------------------------- gradio tuples


def test_gradio_int16_mono_tuple():
    pcm = (tone(440, 1.0, dbfs=-6.0206) * 32768).astype(np.int16)  # peak 0.5
    out = load_audio((SR, pcm), 22050)
    assert out.sample_rate == 22050 and out.channels == 1
    assert out.duration == pytest.approx(1.0, abs=1e-3)
    assert np.abs(out.samples).max() == pytest.approx(0.5, abs=0.01)
    assert dominant_freq(out.samples, 22050) == pytest.approx(440, abs=2)


def test_gradio_int16_stereo_tuple_is_frames_by_channels():
    left = (tone(440, 1.0) * 32767).astype(np.int16)
    right = np.zeros_like(left)
    out = load_audio((SR, np.stack([left, right], axis=1)), SR, mono=False)
    assert out.channels == 2 and out.num_frames == SR
    np.testing.assert_allclose(out.samples[0], left / 32768.0, atol=1e-6)
    assert not out.samples[1].any()


def test_int32_and_float_arrays_with_explicit_rate():
    x = tone(440, 1.0)
    out = load_audio((SR, (x * 2**31).astype(np.int32)), SR)
    np.testing.assert_allclose(out.samples[0], x, atol=1e-6)
    out = load_audio(np.stack([x, x]), SR, source_rate=SR, mono=False)  # (channels, n)
    assert out.channels == 2
    expect_error(x, "sample rate")  # an array without its rate


# -- memory bounded by what is decoded ------------------------------------------------------------------
def _flac(path, seconds, sr, channels, total_samples=None):
    """A FLAC of a quiet tone; ``total_samples`` rewrites the length its STREAMINFO header claims
    (0: unknown, as a streaming encoder leaves it)."""
    sf.write(path, np.tile(tone(seconds=seconds, sr=sr, dbfs=-20)[:, None], (1, channels)), sr, format="FLAC")
    if total_samples is not None:
        data = bytearray(path.read_bytes())
        assert data[:4] == b"fLaC"
        fields = int.from_bytes(data[18:26], "big")  # rate 20 bits, channels 3, bits 5, total samples 36
        data[18:26] = ((fields & ~(2**36 - 1)) | total_samples).to_bytes(8, "big")
        path.write_bytes(bytes(data))
    return path


def _peak_bytes(fn):
    import tracemalloc  # numpy reports its arrays to tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_flac_header_without_its_length_is_read_as_unknown(tmp_path):
    path = _flac(tmp_path / "stream.flac", 2.0, SR, 1, total_samples=0)
    assert sf.info(str(path)).frames >= 2**62  # libsndfile's "unknown"
    sound = load_audio(path, SR)
    assert abs(sound.duration - 2.0) < 0.01
    long = _flac(tmp_path / "long.flac", 8.0, 8000, 1, total_samples=0)
    # the limit is enforced while decoding: the decoded part stays near the limit's 2.5 s of samples
    peak = _peak_bytes(lambda: expect_error(long, "too long", "2 s", sample_rate=8000, max_seconds=2.0))
    assert peak < 2.5 * 8000 * 4 + 65536 * 4 * 2 + 2**20


def test_a_file_over_the_decoding_cap_is_refused_from_its_header(tmp_path):
    # 0.1 s of 8 channels at 384 kHz whose header claims 60 s: 184 M samples, 737 MB as float32
    path = _flac(tmp_path / "wide.flac", 0.1, 384000, 8, total_samples=60 * 384000)
    peak = _peak_bytes(lambda: expect_error(path, "million samples", "8 channel", "384000 Hz", mono=False))
    assert peak < 2**20  # nothing decoded (documented bound: limits.MAX_DECODED_VALUES x 4 bytes, x2 at the join)


def test_many_channels_are_mixed_down_while_decoding(tmp_path):
    path = _flac(tmp_path / "surround.flac", 10.0, 48000, 8)  # 3.84 M samples, 15 MB as float32
    sound = None

    def load():
        nonlocal sound
        sound = load_audio(path, 48000, channels=1)

    peak = _peak_bytes(load)
    assert sound.channels == 1 and abs(sound.duration - 10.0) < 0.01
    assert abs(dominant_freq(sound.samples[0], 48000) - 440) < 5
    assert peak < 8 * 2**20  # mono: 1.9 MB, twice at the join, plus one 8-channel block
