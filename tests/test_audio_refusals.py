"""What load_audio refuses, in our words (no traceback, no temporary path): missing or empty sources,
undecodable files, lengths, silence, NaN, absurd rates, wrong types, too many channels."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audio_checks import SR, expect_error, tone
from pipelines.schema import limits
from pipelines.signal.audio import load_audio
from pipelines.signal.audio import loading as audio_loading


def test_missing_source():
    expect_error(None, "no audio")
    expect_error((SR, None), "no audio")
    expect_error("   ", "no audio")


def test_nonexistent_path(tmp_path):
    expect_error(tmp_path / "nope.wav", "nope.wav", "does not exist", "upload it again")


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
