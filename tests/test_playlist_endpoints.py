"""Playlist to music through the API, on the tiny AMUSE models."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from pipelines.signal import audio as audio_io

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_playlist_to_music_end_to_end(client):
    files = [handle_file(str(ASSETS / "groove.wav")), handle_file(str(ASSETS / "rain.wav"))]
    wav, generated, tracks, metrics = client.predict(files, 3, 7.5, 1, True, api_name="/playlist_to_music")
    from conftest import metrics_of

    similarity = metrics_of(metrics)["CLAP similarity to the playlist"]
    assert -1 <= similarity <= 1
    assert audio_io.read_wav_metadata(wav)["metrics"]["playlist_similarity"] == pytest.approx(similarity, abs=1e-4)
    sound = audio_io.load_audio(wav, 22050, allow_silence=True)
    assert abs(sound.duration - 131071 / 22050) < 0.01
    assert Image.open(generated).size == (256, 256)
    assert len(tracks) == 2
    assert audio_io.read_wav_metadata(wav)["seed"] == 1


def test_playlist_bad_inputs(client, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(22050), 22050)
    with pytest.raises(AppError, match="Track 2"):
        client.predict([handle_file(str(ASSETS / "groove.wav")), handle_file(str(silent))], 3, 7.5, 1,
                       api_name="/playlist_to_music")
    with pytest.raises(AppError, match="1 to 10 tracks"):
        client.predict([], 3, 7.5, 1, api_name="/playlist_to_music")
    with pytest.raises(AppError, match="must be a whole number from"):
        client.predict([handle_file(str(ASSETS / "groove.wav"))], 0, 7.5, 1, api_name="/playlist_to_music")


def test_hub_profile_without_the_vae_says_how_to_get_it():
    from core.errors import ModelUnavailableError
    from pipelines.systems.playlist_to_music import PlaylistToMusicSettings
    from pipelines.studio import Studio

    studio = Studio(profile="hub", device="cpu")
    with pytest.raises(ModelUnavailableError, match="STUDIO_MODEL_AMUSE_VAE"):
        studio.playlist_to_music([str(ASSETS / "groove.wav")], PlaylistToMusicSettings(steps=2))
