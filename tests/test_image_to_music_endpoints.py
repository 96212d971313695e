"""Image to music through the API: caption, music, song suggestions, and bad inputs."""

from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from pipelines import audio as audio_io

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def i2m_args(image, prompt="", seconds=2, guidance=3.0, temperature=1.0, top_k=250, top_p=0.0, seed=0):
    return [image, prompt, seconds, guidance, temperature, top_k, top_p, seed]


def test_picture_to_music_in_one_call(client):
    used, wav = client.predict(*i2m_args(handle_file(str(ASSETS / "sunset.png"))), api_name="/image_to_music")
    assert isinstance(used, str) and used.strip()
    sound = audio_io.load_audio(wav, 32000, allow_silence=True)
    assert abs(sound.duration - 2.0) < 0.03
    saved = audio_io.read_wav_metadata(wav)
    assert saved["prompt"] == used and saved["seed"] == 0


def test_written_prompt_skips_the_caption_and_seed_repeats(client):
    used, first = client.predict(*i2m_args(None, "calm piano by the sea", seed=9), api_name="/image_to_music")
    _, again = client.predict(*i2m_args(None, "calm piano by the sea", seed=9), api_name="/image_to_music")
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
    ({"seconds": 0}, "minimum"), ({"seconds": 121}, "maximum"), ({"top_p": 2}, "maximum"),
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
