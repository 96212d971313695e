"""The hub profile end to end with only a local Hub and a local GitHub reachable (tests/fake_servers.py):
``python app.py --profile hub`` downloads every model through huggingface_hub at the pinned commits, in
the real repositories' layouts (tests/hub_fixtures.py), fetches the originals' GitHub files, caches
them, and every tab runs. Wrong revisions and missing files are explained; SD 1.5's fp16 variant is
the only weight set fetched when asked for.

The app runs in a subprocess: huggingface_hub reads HF_ENDPOINT when it is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fake_servers import FakeGitHub, FakeHub
from hub_fixtures import serve_tiny_hub, serve_tiny_originals
from pipelines.models import originals
from pipelines.models.roles import ROLES, SD15_SHA

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
WRONG_REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The local Hub with every Hub role's tiny repo, and the GitHub stand-ins; yields (hub, github, env)."""
    staging = tmp_path_factory.mktemp("hub-staging")
    hub, github = FakeHub(), FakeGitHub()
    mp = pytest.MonkeyPatch()
    try:
        repos = serve_tiny_hub(hub, staging / "repos")
        clap_commit, clap_folder = repos[ROLES["clap"].repo_id]
        hub.add("studio-tests/clap-without-weights", clap_commit, clap_folder, skip=lambda name: name.endswith(".bin"))
        pins = serve_tiny_originals(github, staging / "originals", mp)
        (staging / "pins.json").write_text(json.dumps(pins))
        from pipelines.models.building import tiny

        env = {key: value for key, value in os.environ.items()
               if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "STUDIO_OFFLINE", "STUDIO_PROFILE")
               and not key.startswith("STUDIO_MODEL")}
        env.update(github.environ())
        env.update({"HF_ENDPOINT": hub.url, "HF_HOME": str(staging / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1",
                    "STUDIO_CACHE": str(staging / "studio-cache"), "STUDIO_ORIGINALS_PINS": str(staging / "pins.json"),
                    # no AMUSE VAE is published anywhere: the playlist tab runs on the tiny one, named as a user would
                    "STUDIO_MODEL_AMUSE_VAE": str(tiny.ensure("amuse_vae")), "PYTHONUNBUFFERED": "1",
                    # its own upload folder: gradio deletes its cached files on close, and uploads of the same
                    # file share one path across apps (another app's groove.wav would go with them)
                    "GRADIO_TEMP_DIR": str(staging / "gradio")})
        yield hub, github, env
    finally:
        mp.undo()
        hub.close()
        github.close()


@pytest.fixture(scope="module")
def hub_app(servers):
    """``python app.py --profile hub`` on a free port, talking to the local servers only; yields its URL."""
    from conftest import free_port

    _, _, env = servers
    port = free_port()
    process = subprocess.Popen([sys.executable, "app.py", "--profile", "hub", "--device", "cpu", "--port", str(port),
                                "--no-warm-up"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True).start()
    deadline = time.monotonic() + 180
    while not any(line.startswith("Serving") for line in lines):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the hub-profile app did not start:\n" + "".join(lines[-40:]))
        time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}/", lines
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _weights(paths: list[str], repo: str) -> list[str]:
    return [p for p in paths if p.startswith(f"/{repo}/") and p.endswith((".bin", ".safetensors"))]


@pytest.mark.slow
def test_every_tab_runs_on_the_hub_profile_through_the_local_hub_and_github(servers, hub_app, tmp_path):
    from gradio_client import Client, handle_file

    hub, github, env = servers
    url, log = hub_app
    client = Client(url, verbose=False)
    tone = tmp_path / "tone.wav"
    sf.write(tone, 0.5 * np.sin(2 * np.pi * 440 * np.arange(44100) / 44100), 44100)
    sound = handle_file(str(tone))
    started = time.perf_counter()

    for model in ("mask_model", "riffusion"):  # sound to music, both models (riffusion and the mask model: .bin only)
        out = client.predict(sound, model, "funk drums", "", 1.0, 0.05, 200, 150, 2, 0.5, 8.0, 5, "repo",
                             api_name="/masked_img2img")
        assert Path(out[0]).is_file()
    genres, _emotions, _tempo, sentence = client.predict(handle_file(str(ASSETS / "groove.wav")),
                                                         api_name="/describe_music")  # the fetched .h5 classifiers
    assert genres["label"] and sentence.startswith("This piece of music")
    image = client.predict(handle_file(str(ASSETS / "groove.wav")), "", 2, 7.5, 64, 64, 3, 1.0,
                           api_name="/music_to_image")  # SD 1.5 + the fetched LoRA at scale 1
    assert Path(image[0] if isinstance(image, (list, tuple)) else image).is_file()
    styled = client.predict(sound, ["accordion", "chime"], "0.5, 0.5", 0.5, 2, 5.0, 23, api_name="/style_interpolation")
    assert Path(styled[0]).is_file()  # the two MusicTI styles, fetched and converted
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="choose from accordion, chime"):  # the styles the tab offers
        client.predict(sound, ["jazz"], "", 0.5, 2, 5.0, 23, api_name="/style_interpolation")
    wav, _png = client.predict("funk bassline", "", 2.0, 2, 7.0, 5, "riffusion", api_name="/text_to_music")
    assert Path(wav).is_file()
    used, music, metrics = client.predict(handle_file(str(ASSETS / "sunset.png")), "", 1, 3.0, 1.0, 250, 0.0, 0, None,
                                          True, api_name="/image_to_music")  # BLIP caption, MusicGen, CLAP metrics
    assert used.strip() and Path(music).is_file() and metrics
    _used, melodic, _ = client.predict(None, "calm piano", 1, 3.0, 1.0, 250, 0.0, 0, sound, False,
                                       api_name="/image_to_music")  # MusicGen-melody
    assert Path(melodic).is_file()
    caption, songs = client.predict(None, "a quiet forest at dawn", api_name="/recommend_songs")
    assert caption == "a quiet forest at dawn" and songs
    playlist = client.predict([handle_file(str(ASSETS / "groove.wav"))], 2, 7.5, 1, False, api_name="/playlist_to_music")
    assert Path(playlist[0]).is_file()
    png, _plot = client.predict(sound, "riffusion", False, api_name="/audio_to_spectrogram")
    assert Path(png).is_file()
    print(f"\n[hub path] every tab through the local Hub and GitHub in {time.perf_counter() - started:.1f} s")

    got = hub.downloads()
    for role, spec in ROLES.items():  # every Hub repo, at its pinned commit (the mask model's: what "main" names)
        if spec.repo_id:
            commit = hub.repos[spec.repo_id].commit
            assert spec.revision in ("main", commit)
            assert any(p.startswith(f"/{spec.repo_id}/resolve/{commit}/") for p in got), (role, got)
    assert _weights(got, ROLES["riffusion"].repo_id) and all(
        p.endswith(".bin") for p in _weights(got, ROLES["riffusion"].repo_id))  # riffusion publishes .bin only
    sd15 = _weights(got, ROLES["sd15"].repo_id)
    assert sd15 and all(p.endswith(".safetensors") and ".fp16." not in p for p in sd15)  # fp32 on the CPU
    amuse = [p for p in got if p.startswith(f"/{ROLES['amuse_unet'].repo_id}/")]
    assert amuse and all("/unet/" in p or "/scheduler/" in p or p.endswith("model_index.json") for p in amuse)
    fetched = github.downloads()
    for original in originals.ORIGINALS.values():
        for file in original.files:
            host = "/media/" if file.lfs else "/raw/"
            assert f"{host}{file.repo}/{file.commit}/{file.path}" in fetched
    assert len(fetched) == 5  # each once: cached after the first use
    cache = Path(env["STUDIO_CACHE"]) / "originals"
    assert sorted(p.name.split("-")[0] for p in cache.iterdir() if not p.name.startswith(".")) == [
        "emotion_classifier", "genre_classifier", "m2i_lora", "music_styles"]


PROBE = """
import json, torch
from core.errors import ModelUnavailableError
from pipelines.models import loaders
from pipelines.models.registry import ModelRegistry, load_or_explain
registry, out = ModelRegistry("hub"), {}
for role, load in (("blip", loaders.load_blip), ("clap", loaders.load_clap)):
    try:
        load_or_explain(registry.resolve(role), load)
        out[role] = "loaded"
    except ModelUnavailableError as error:
        out[role] = str(error)
pipe = load_or_explain(registry.resolve("sd15"), loaders.load_sd_img2img, dtype=torch.float16, variant="fp16")
out["sd15"] = str(pipe.unet.dtype)
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_wrong_revision_and_missing_file_are_explained_and_fp16_variant_alone_is_fetched(servers):
    hub, _, env = servers
    env = {**env, "STUDIO_MODEL_BLIP": f"{ROLES['blip'].repo_id}@{WRONG_REVISION}",
           "STUDIO_MODEL_CLAP": "studio-tests/clap-without-weights", "HF_HOME": env["HF_HOME"] + "-probe"}
    before = len(hub.requests)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    result = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
    assert result, done.stdout[-2000:] + done.stderr[-3000:]
    out = json.loads(result[len("RESULT "):])
    assert f"the revision '{WRONG_REVISION}' does not exist in {ROLES['blip'].repo_id} on the Hub" in out["blip"]
    assert "STUDIO_MODEL_BLIP" in out["blip"]
    assert "studio-tests/clap-without-weights@main on the Hub has no" in out["clap"], out["clap"]
    assert out["sd15"] == "torch.float16"
    sd15 = _weights([p for m, p in hub.requests[before:] if m == "GET"], ROLES["sd15"].repo_id)
    assert sd15 and all(p.endswith(".fp16.safetensors") for p in sd15), sd15  # only the half-size files
    assert all(f"/resolve/{SD15_SHA}/" in p for p in sd15)
