"""Tests of the pipelines/audio package on signals synthesised here and written to tmp_path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from pipelines.schema import limits
from pipelines.signal.audio import Audio, load_audio, peak_dbfs, peak_normalize, read_wav_metadata, write_wav
from pipelines.signal.audio import loading as audio_loading
from core.errors import InputError

SR = 44100


def tone(freq=440.0, seconds=1.0, sr=SR, dbfs=-6.0):
    t = np.arange(int(round(seconds * sr))) / sr
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x, sr):
    x = np.asarray(x, dtype=np.float64).ravel()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * sr / len(x)


def expect_error(source, *words, **kwargs):
    """load_audio must raise InputError whose message holds every word (case-insensitive)."""
    kwargs.setdefault("sample_rate", 22050)
    with pytest.raises(InputError) as info:
        load_audio(source, **kwargs)
    message = str(info.value)
    for word in words:
        assert word.lower() in message.lower(), message
    assert "Traceback" not in message and "Error opening" not in message and "/tmp" not in message
    return message


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


def test_audio_helpers():
    a = Audio(np.stack([tone(seconds=0.5), np.zeros(SR // 2, np.float32)]), SR)
    assert a.channels == 2 and a.num_frames == SR // 2 and a.duration == pytest.approx(0.5)
    assert a.mono().channels == 1
    np.testing.assert_allclose(a.mono().samples[0], a.samples[0] / 2)
    with pytest.raises(ValueError):
        Audio(np.zeros((1000, 2)), SR)  # (n, channels) by mistake


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


# ---------------------------------------------------------------------------- bad inputs


def test_missing_source():
    expect_error(None, "no audio")
    expect_error((SR, None), "no audio")
    expect_error("   ", "no audio")


def test_nonexistent_path(tmp_path):
    expect_error(tmp_path / "nope.wav", "nope.wav", "not found")


def test_directory_is_not_a_file(tmp_path):
    expect_error(tmp_path, "folder")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    expect_error(tmp_path / "empty.wav", "empty", "0 bytes")


def test_file_over_upload_limit_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.wav"
    with open(path, "wb") as f:  # sparse: not audio at all, so decoding would say something else
        f.truncate(limits.MAX_UPLOAD_BYTES + 1)
    expect_error(path, "huge.wav", "MB", f"{limits.MAX_UPLOAD_BYTES / 2**20:.0f} MB")


@pytest.mark.parametrize(
    "name,payload",
    [
        ("noise.wav", bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8))),
        ("text.mp3", b"this is a text file, not sound\n" * 100),
        ("header.wav", b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00" + b"\xff" * 200),
    ],
)
def test_undecodable_file(tmp_path, name, payload):
    (tmp_path / name).write_bytes(payload)
    expect_error(tmp_path / name, name, "could not be read")


def test_too_long_is_checked_from_the_header(tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(int(8000 * (limits.MAX_INPUT_SECONDS + 5))), 8000, subtype="PCM_16")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file that the header already showed to be too long")

    monkeypatch.setattr(audio_loading.sf.SoundFile, "read", no_decoding)
    monkeypatch.setattr(limits, "DECODE_WORKERS", 0)  # the patched decoder runs in this process
    expect_error(path, "too long", f"{limits.MAX_INPUT_SECONDS:g} s", "trim")


def test_too_long_array_and_custom_limit():
    expect_error((8000, np.ones(8000 * 5, np.float32) * 0.1), "too long", "2 s", max_seconds=2.0)
    out = load_audio((8000, tone(seconds=5.0, sr=8000)), 8000, max_seconds=None)
    assert out.duration == pytest.approx(5.0)


def test_slightly_over_limit_is_cut_to_the_limit():
    out = load_audio((8000, tone(seconds=2.2, sr=8000)), 8000, max_seconds=2.0)
    assert out.duration == pytest.approx(2.0)


def test_too_short(tmp_path):
    sf.write(tmp_path / "blip.wav", tone(seconds=0.05), SR)
    expect_error(tmp_path / "blip.wav", "too short", f"{limits.MIN_INPUT_SECONDS:g} s")


def test_no_samples(tmp_path):
    sf.write(tmp_path / "none.wav", np.zeros(0, np.float32), SR)
    expect_error(tmp_path / "none.wav", "no audio samples")


def test_silence_is_refused_unless_allowed(tmp_path):
    sf.write(tmp_path / "zeros.wav", np.zeros(SR), SR)
    expect_error(tmp_path / "zeros.wav", "silent", f"{limits.SILENCE_DBFS:.0f} dBFS")
    quiet = tone(seconds=1.0, dbfs=limits.SILENCE_DBFS - 10)
    expect_error((SR, quiet), "silent", "peak level")
    out = load_audio(tmp_path / "zeros.wav", SR, allow_silence=True)
    assert out.num_frames == SR and not out.samples.any()
    assert load_audio((SR, tone(seconds=1.0, dbfs=limits.SILENCE_DBFS + 10)), SR).num_frames == SR


def test_nan_and_inf_samples(tmp_path):
    x = tone(seconds=1.0)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, SR, subtype="FLOAT")
    expect_error(tmp_path / "nan.wav", "NaN")
    y = tone(seconds=1.0)
    y[5] = np.inf
    expect_error((SR, y), "infinity")


@pytest.mark.parametrize("rate", [0, 10, 1_000_000, -44100, 44100.5, "44100"])
def test_absurd_sample_rates(rate):
    expect_error((rate, tone(seconds=1.0)), "sample rate")


def test_absurd_sample_rate_in_file(tmp_path):
    sf.write(tmp_path / "slow.wav", np.zeros(500), 500)
    expect_error(tmp_path / "slow.wav", "slow.wav", "500 Hz", "sample rate")


@pytest.mark.parametrize(
    "source,words",
    [
        ({"path": "a.wav"}, ["dictionary", "file path"]),
        (42, ["int", "not supported"]),
        (b"RIFF", ["bytes", "not supported"]),
        ("la la la\nla", ["not a file path"]),
        ("https://example.com/song.mp3", ["links", "upload"]),
        ((1, 2, 3), ["3 items", "(sample_rate, samples)"]),
        ((SR, np.array(["a", "b"])), ["type", "samples"]),
    ],
)
def test_wrong_types(source, words):
    expect_error(source, *words)


def test_more_than_eight_channels(tmp_path):
    sf.write(tmp_path / "many.wav", np.zeros((SR, 10), np.float32) + 0.1, SR)
    expect_error(tmp_path / "many.wav", "10 channels", "at most 8")
    expect_error((SR, np.zeros((SR, 10), np.float32) + 0.1), "10 channels", "at most 8")


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
