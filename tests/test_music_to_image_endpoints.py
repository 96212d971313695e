"""Music to image through the API, and two base models sharing one device under a small budget."""

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from classifiers.emotion import EMOTIONS
from classifiers.genre import GENRES

ASSETS = Path(__file__).resolve().parents[1] / "assets"
FAST = dict(steps=2, guidance=7.5, width=64, height=64, seed=3, lora_scale=1.0)


def m2i_args(audio, description="", **changes):
    settings = {**FAST, **changes}
    return [audio, description, settings["steps"], settings["guidance"], settings["width"], settings["height"],
            settings["seed"], settings["lora_scale"]]


def test_describe_music_returns_labels_tempo_and_sentence(client):
    genres, emotions, tempo, sentence = client.predict(handle_file(str(ASSETS / "groove.wav")),
                                                       api_name="/describe_music")
    assert {c["label"] for c in genres["confidences"]} <= set(GENRES)
    assert {c["label"] for c in emotions["confidences"]} <= set(EMOTIONS)
    stated, refined = re.fullmatch(r"(\d+) BPM \(refined ([\d.]+)\)", tempo).groups()
    assert abs(float(refined) - 120) <= 2 and abs(int(stated) - 120) <= 4  # the groove is made at 120 BPM
    top_genre, top_emotion = genres["label"], emotions["label"]
    assert sentence == (f"This piece of music falls under the {top_genre} genre. "
                        f"It is of tempo {stated} and evokes a sense of {top_emotion}.")


def test_a_steady_tone_has_no_beat_in_the_sentence_or_the_tempo(client, tmp_path):
    sf.write(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050 * 4) / 22050), 22050)
    _, _, tempo, sentence = client.predict(handle_file(str(tmp_path / "tone.wav")), api_name="/describe_music")
    assert tempo == "no steady beat"
    assert "It has no steady beat and evokes" in sentence and "tempo 0" not in sentence


def test_one_call_from_sound_to_picture(client):
    path, used = client.predict(*m2i_args(handle_file(str(ASSETS / "groove.wav"))), api_name="/music_to_image")
    image = Image.open(path)
    assert image.size == (64, 64)
    assert used.startswith("This piece of music falls under the ")
    assert "parameters" in image.info and '"lora_scale": 1.0' in image.info["parameters"]


def test_a_written_description_replaces_the_generated_one(client):
    path, used = client.predict(*m2i_args(None, "a red violin in the rain"), api_name="/music_to_image")
    assert used == "a red violin in the rain"
    first = np.asarray(Image.open(path))
    again, _ = client.predict(*m2i_args(None, "a red violin in the rain"), api_name="/music_to_image")
    assert np.array_equal(first, np.asarray(Image.open(again))), "same seed, same picture"


@pytest.mark.parametrize("changes,words", [
    ({"width": 100}, "multiple of 8"),
    ({"steps": 0}, "must be a whole number from"),
    ({"lora_scale": 5}, "must be a number from"),
    ({"description": "x" * 1200}, "at most|characters"),
])
def test_bad_music_to_image_arguments(client, changes, words):
    description = changes.pop("description", "a calm lake")
    with pytest.raises(AppError, match=words):
        client.predict(*m2i_args(None, description, **changes), api_name="/music_to_image")


def test_no_music_and_no_description(client):
    with pytest.raises(AppError, match="Give a piece of music"):
        client.predict(*m2i_args(None, "   "), api_name="/music_to_image")


def test_describe_refuses_silence(client, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(22050), 22050)
    with pytest.raises(AppError, match="silent"):
        client.predict(handle_file(str(silent)), api_name="/describe_music")


@pytest.mark.slow
def test_two_tabs_in_turn_under_a_small_budget_evict_and_reload():
    """Budget for one tiny SD model: sound-to-music and music-to-image take turns on the device."""
    from pipelines.systems.masked_img2img import SoundToMusicSettings
    from pipelines.systems.music_to_image import MusicToImageSettings
    from pipelines.studio import Studio

    probe = Studio(profile="tiny", device="cpu")
    from pipelines.models.memory import model_nbytes

    one_model = model_nbytes(probe.manager.get_cpu("sd15"))
    studio = Studio(profile="tiny", device="cpu", budget_bytes=int(1.5 * one_model))
    sound = ASSETS / "knocks.wav"
    settings = SoundToMusicSettings(steps=2, strength=0.5)
    studio.sound_to_music(str(sound), settings)
    studio.music_to_image(None, "a lake", MusicToImageSettings(steps=2, width=64, height=64, lora_scale=0))
    studio.sound_to_music(str(sound), settings)
    moves = [event for event in studio.manager.events if event[1] in ("mask_model", "sd15")]
    # a first load happens (on the CPU) before room is made, since its size is known only then; a model
    # loaded before has a known size, so room is made first and the two are never held together
    assert moves == [
        ("load", "mask_model"), ("to_device", "mask_model"),
        ("load", "sd15"), ("drop", "mask_model"), ("to_device", "sd15"),
        ("drop", "sd15"), ("load", "mask_model"), ("to_device", "mask_model"),
    ]
    assert studio.manager.resident_bytes() <= 1.5 * one_model
