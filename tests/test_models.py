"""The registry: profiles, overrides, and clear errors when weights are missing."""

import json

import os
from pathlib import Path

import pytest

from pipelines.models.building import tiny
from core.errors import ModelUnavailableError
from pipelines.models.registry import ROLES, ModelRegistry, load_or_explain

DESIGN_ROLES = {"riffusion", "mask_model", "sd15", "m2i_lora", "blip", "musicgen", "clap", "sentence_embedder",
                "amuse_unet", "amuse_vae", "genre_classifier", "emotion_classifier"}


def test_every_role_of_the_design_is_registered():
    assert DESIGN_ROLES <= set(ROLES)


def test_hub_profile_resolves_to_repo_and_revision():
    source = ModelRegistry("hub", environ={}).resolve("riffusion")
    assert (source.location, source.revision, source.is_local) == ("riffusion/riffusion-model-v1", ROLES["riffusion"].revision, False)


def test_tiny_profile_builds_a_local_folder_in_hub_layout():
    source = ModelRegistry("tiny", environ={}, builder=tiny).resolve("mask_model")
    assert source.is_local and source.origin == "tiny"
    index = json.loads((tiny.ensure("sd") / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"] and index["vae"] == ["diffusers", "AutoencoderKL"]


def test_environment_override_wins_over_file_and_profile(tmp_path):
    config = tmp_path / "models.json"
    config.write_text(json.dumps({"riffusion": "someone/other-riffusion@abc123", "sd15": str(tmp_path)}))
    env = {"STUDIO_MODELS_FILE": str(config), "STUDIO_MODEL_SD15": "me/my-sd@v2"}
    registry = ModelRegistry("tiny", environ=env, builder=tiny)
    riff = registry.resolve("riffusion")
    assert (riff.location, riff.revision, riff.origin) == ("someone/other-riffusion", "abc123", "file")
    sd = registry.resolve("sd15")
    assert (sd.location, sd.revision, sd.origin) == ("me/my-sd", "v2", "env")
    local = ModelRegistry("hub", environ={"STUDIO_MODEL_BLIP": str(tmp_path)}).resolve("blip")
    assert local.is_local and local.location == str(tmp_path.resolve())


@pytest.mark.parametrize("content,words", [("{not json", "could not be read"), ('{"nope": "a/b"}', "unknown roles"),
                                           ('{"sd15": 3}', "map role names to strings")])
def test_bad_override_file_is_explained(tmp_path, content, words):
    config = tmp_path / "models.json"
    config.write_text(content)
    with pytest.raises(ModelUnavailableError, match=words):
        ModelRegistry("hub", environ={"STUDIO_MODELS_FILE": str(config)})


def test_missing_local_folder_and_unpublished_roles_are_explained(tmp_path):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        ModelRegistry("hub", environ={"STUDIO_MODEL_SD15": str(tmp_path / "nowhere")}).resolve("sd15")
    with pytest.raises(ModelUnavailableError, match="STUDIO_MODEL_AMUSE_VAE"):
        ModelRegistry("hub", environ={}).resolve("amuse_vae")


def test_offline_hub_model_names_role_repo_and_remedy(monkeypatch):
    from diffusers import StableDiffusionImg2ImgPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = ModelRegistry("hub", environ={}).resolve("mask_model")
    with pytest.raises(ModelUnavailableError) as info:
        load_or_explain(source, StableDiffusionImg2ImgPipeline.from_pretrained)
    message = str(info.value)
    for words in ("'mask_model'", "cappiepappie/stable-diffusion-music-25@main", "HF_HUB_OFFLINE",
                  "hf download", "STUDIO_MODEL_MASK_MODEL", "--profile tiny"):
        assert words in message


def test_hub_app_without_network_says_which_model_is_missing(tmp_path):
    """The sound-to-music endpoint on the hub profile, offline: a clear message, and the app keeps serving."""
    import soundfile as sf
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    import app
    from pipelines.studio import Studio
    from tests.conftest import free_port
    from tests.test_endpoints import masked_args

    demo = app.queue(app.build_demo(Studio(profile="hub", device="cpu")))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        wav = tmp_path / "knock.wav"
        import numpy as np

        sf.write(wav, 0.5 * np.sin(np.arange(44100) / 10), 44100)
        with pytest.raises(AppError, match="cappiepappie/stable-diffusion-music-25.*not available"):
            client.predict(*masked_args(handle_file(str(wav))), api_name="/masked_img2img")
        summary, _ = client.predict(api_name="/status")
        assert "`hub`" in summary
    finally:
        demo.close()


def test_hub_music_to_image_without_the_lora_says_how_to_go_on(monkeypatch):
    from pipelines.systems.music_to_image import MusicToImageSettings
    from pipelines.studio import Studio

    monkeypatch.delenv("STUDIO_MODEL_M2I_LORA", raising=False)
    studio = Studio(profile="hub", device="cpu")
    with pytest.raises(ModelUnavailableError, match="STUDIO_MODEL_M2I_LORA.*LoRA scale to 0"):
        studio.music_to_image(None, "a lake", MusicToImageSettings(steps=2, width=64, height=64, lora_scale=1.0))
    assert studio.manager.events == [], "nothing is loaded before the missing LoRA is reported"


def test_tiny_listing_says_which_roles_have_no_tiny_model_yet():
    rows = {row["role"]: row["source"] for row in ModelRegistry("tiny", environ={}, builder=tiny).describe()}
    assert rows["riffusion"] == "tiny:sd"
    assert rows["amuse_vae"] == "tiny:amuse_vae"
    assert rows["clap"] == "tiny:clap"

    class WithoutClap:  # a builder lacking a family lists it as missing
        ensure = staticmethod(tiny.ensure)

        @staticmethod
        def has(family):
            return family != "clap" and tiny.has(family)

    rows = {row["role"]: row["source"] for row in ModelRegistry("tiny", environ={}, builder=WithoutClap()).describe()}
    assert rows["clap"] == "(no tiny model yet)" and rows["riffusion"] == "tiny:sd"


def test_classifiers_are_listed_with_their_size_and_uses(studio):
    studio.describe_music(str(__import__("pathlib").Path(__file__).resolve().parents[1] / "assets" / "groove.wav"))
    rows = {row["name"]: row for row in studio.manager.status()}
    assert rows["genre_classifier"]["uses"] >= 1
    assert studio.manager.get_cpu("genre_classifier").nbytes > 0  # tiny: a few KB, shown as 0.0 MB
    assert rows["genre_classifier"]["where"] == "cpu"


def test_the_tiny_clip_tokenizer_fits_the_pages_prompts_in_77_tokens_as_the_real_one_does(tmp_path):
    from itertools import product

    from transformers import CLIPTokenizer

    from classifiers.emotion import EMOTIONS
    from classifiers.genre import GENRES
    from pipelines.systems.music_to_image import make_sentence
    from pipelines.schema.settings import PromptInterpolationSettings, SoundToMusicSettings, TextToMusicSettings

    tiny.write_clip_tokenizer(tmp_path)
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path)
    prompts = [make_sentence(genre, 188, emotion) for genre, emotion in product(GENRES, EMOTIONS)]
    prompts += [SoundToMusicSettings.default("prompt"), TextToMusicSettings.default("prompt"),
                PromptInterpolationSettings.default("prompt_a"), PromptInterpolationSettings.default("prompt_b")]
    longest = max(len(tokenizer(p).input_ids) for p in prompts)
    assert longest <= tokenizer.model_max_length == 77
    assert tokenizer.tokenize("music falls") == ["music</w>", "falls</w>"]  # one token per listed word
    assert tokenizer.tokenize("zq") == ["z", "q</w>"]  # any other text still tokenizes, byte by byte


def test_the_evaluation_command_offline_names_its_own_profile_flag(tmp_path):
    """``python -m evaluation pair --mode studio`` without the models: the remedy is this command's --profile tiny."""
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf

    for name in ("a", "b"):
        sf.write(tmp_path / f"{name}.wav", 0.1 * np.sin(np.arange(44100) / 10.0), 44100)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-m", "evaluation", "pair", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"),
                           "--mode", "studio", "--clap", "--profile", "hub"], cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True,
                          text=True, timeout=300)
    said = done.stdout + done.stderr
    assert done.returncode != 0 and "add --profile tiny to this command" in said, said[-2000:]
    assert "start the app" not in said and "Traceback" not in said
