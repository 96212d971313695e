"""Image to music through the API: caption, music, song suggestions, and bad inputs."""

from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from pipelines.signal import audio as audio_io

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def i2m_args(image, prompt="", seconds=2, guidance=3.0, temperature=1.0, top_k=250, top_p=0.0, seed=0):
    return [image, prompt, seconds, guidance, temperature, top_k, top_p, seed]


def test_picture_to_music_in_one_call(client):
    used, wav, metrics = client.predict(*i2m_args(handle_file(str(ASSETS / "sunset.png"))), None, True,
                                        api_name="/image_to_music")
    assert isinstance(used, str) and used.strip()
    from conftest import metrics_of

    score = metrics_of(metrics)["CLAP score (output vs prompt)"]  # asked for: CLAP against the caption
    assert -1 <= score <= 1 and audio_io.read_wav_metadata(wav)["metrics"]["clap_score"] == pytest.approx(score, abs=1e-4)
    sound = audio_io.load_audio(wav, 32000, allow_silence=True)
    assert abs(sound.duration - 2.0) < 0.03
    saved = audio_io.read_wav_metadata(wav)
    assert saved["prompt"] == used and saved["seed"] == 0


def test_written_prompt_skips_the_caption_and_seed_repeats(client):
    used, first, metrics = client.predict(*i2m_args(None, "calm piano by the sea", seed=9), api_name="/image_to_music")
    _, again, _ = client.predict(*i2m_args(None, "calm piano by the sea", seed=9), api_name="/image_to_music")
    from conftest import metrics_of

    assert metrics_of(metrics) == {}  # CLAP metrics are off by default on a CPU
    assert used == "calm piano by the sea"
    assert Path(first).read_bytes() == Path(again).read_bytes()


def test_song_suggestions_for_a_picture(client):
    used, table = client.predict(handle_file(str(ASSETS / "forest.png")), "", api_name="/recommend_songs")
    assert used.strip()
    rows = table["data"]
    assert 1 <= len(rows) <= 10
    scores = [row[2] for row in rows]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("changes,words", [
    ({"seconds": 0}, "must be a number from"), ({"seconds": 121}, "must be a number from"), ({"top_p": 2}, "must be a number from"),
])
def test_bad_settings(client, changes, words):
    with pytest.raises(AppError, match=words):
        client.predict(*i2m_args(None, "x", **changes), api_name="/image_to_music")


def test_no_picture_and_no_prompt(client):
    with pytest.raises(AppError, match="Give a picture"):
        client.predict(*i2m_args(None, "  "), api_name="/image_to_music")


def test_a_file_that_is_not_a_picture(client, tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"GIF89a but not really")
    with pytest.raises(AppError, match="photo.png is not an image that can be read") as caught:
        client.predict(*i2m_args(handle_file(str(fake))), api_name="/image_to_music")
    assert "preprocess" not in str(caught.value) and str(tmp_path) not in str(caught.value)


# -- following a melody (MusicGen-melody with the tune's chroma) --------------------------------------------
def tune(path, hz, seconds=3.0, rate=22050):
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    audio_io.write_wav(path, audio_io.Audio((0.5 * np.sin(2 * np.pi * hz * t)).astype("float32"), rate))
    return handle_file(str(path))


def test_music_follows_an_uploaded_melody_and_another_tune_changes_it(client, tmp_path):
    c_major = tune(tmp_path / "c.wav", 261.63)
    used, first, _ = client.predict(*i2m_args(None, "warm strings"), c_major, api_name="/image_to_music")
    assert used == "warm strings"
    saved = audio_io.read_wav_metadata(first)
    assert saved["model"] == "musicgen_melody" and saved["melody_frames"] == 3 * 32000 // 4096 + 1
    assert abs(audio_io.load_audio(first, 32000, allow_silence=True).duration - 2.0) < 0.03
    _, again, _ = client.predict(*i2m_args(None, "warm strings"), c_major, api_name="/image_to_music")
    assert Path(first).read_bytes() == Path(again).read_bytes()  # same tune, same seed
    _, other, _ = client.predict(*i2m_args(None, "warm strings"), tune(tmp_path / "g.wav", 392.0),
                              api_name="/image_to_music")
    assert audio_io.load_audio(other, 32000).samples.tolist() != audio_io.load_audio(first, 32000).samples.tolist()
    _, plain, _ = client.predict(*i2m_args(None, "warm strings"), None, api_name="/image_to_music")
    assert audio_io.read_wav_metadata(plain)["model"] == "musicgen"  # no melody: musicgen-small


@pytest.mark.parametrize("kind,words", [
    ("silent", "melody is silent"), ("short", "at least 1 s"), ("long_music", "at most 30 s"), ("text", "could not"),
])
def test_a_melody_that_cannot_be_followed_is_refused_in_words(client, tmp_path, kind, words):
    import numpy as np

    seconds = 2
    if kind == "silent":
        audio_io.write_wav(tmp_path / "m.wav", audio_io.Audio(np.zeros(44100, "float32"), 22050))
    elif kind == "short":
        tune(tmp_path / "m.wav", 440.0, seconds=0.5)
    elif kind == "long_music":
        tune(tmp_path / "m.wav", 440.0)
        seconds = 31
    else:
        (tmp_path / "m.wav").write_text("not a sound")
    with pytest.raises(AppError, match=words) as caught:
        client.predict(*i2m_args(None, "x", seconds=seconds), handle_file(str(tmp_path / "m.wav")),
                       api_name="/image_to_music")
    assert str(tmp_path) not in str(caught.value)
