"""The originals' GitHub files (pipelines/models/originals.py): fetched from a local GitHub-like server,
verified, converted, cached; every failure names the file, the URL and what to do."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core.errors import ModelUnavailableError
from fake_servers import FakeGitHub, lfs_pointer
from pipelines.models import originals
from pipelines.models.registry import ModelRegistry



@pytest.fixture
def github(monkeypatch, tmp_path):
    """A GitHub-like server; downloads switched on and an empty originals cache for this test."""
    server = FakeGitHub()
    for name in ("HF_HUB_OFFLINE", "STUDIO_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))
    for key, value in server.environ().items():
        monkeypatch.setenv(key, value)
    yield server
    server.close()


def pins_file(tmp_path: Path, pins: dict) -> str:
    path = tmp_path / "pins.json"
    path.write_text(json.dumps(pins))
    return str(path)


def serve(github: FakeGitHub, role: str, name: str, data: bytes, host: str | None = None) -> str:
    file = next(f for f in originals.ORIGINALS[role].files if f.name == name)
    return github.add(host or ("media" if file.lfs else "raw"), file.repo, file.commit, file.path, data)


def test_real_lora_through_the_raw_host_with_the_real_pin(github, real_data):
    """The published TechJam LoRA (the project's real files, conftest's ``real_data``; served locally) passes
    the pinned sha256 and size."""
    lora = real_data / "techjam" / "pytorch_lora_weights.safetensors"
    serve(github, "m2i_lora", "pytorch_lora_weights.safetensors", lora.read_bytes())
    source = ModelRegistry("hub").resolve("m2i_lora")
    assert source.is_local and source.origin == "github"
    fetched = Path(source.location) / "pytorch_lora_weights.safetensors"
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == originals.ORIGINALS["m2i_lora"].files[0].sha256
    assert github.downloads() == ["/raw/Derek327783/TechJam/7929cc115c85061225c008ed4ae785db2205a7ae/"
                                  "Weights/pytorch_lora_weights.safetensors"]
    assert ModelRegistry("hub").resolve("m2i_lora").location == source.location  # cached: no second download
    assert len(github.downloads()) == 1
    assert json.loads((Path(source.location) / "SOURCE.json").read_text())["licence"] == originals.TECHJAM_LICENCE


def test_lfs_pointer_is_refused(github, tmp_path, monkeypatch):
    """The raw host's 132-byte pointer in place of the genre CNN: refused, named, nothing cached."""
    real_size = 6_874_520
    pointer = lfs_pointer(b"x" * real_size)
    serve(github, "genre_classifier", "Genre_classifier_model.h5", pointer)
    with pytest.raises(ModelUnavailableError) as caught:
        ModelRegistry("hub").resolve("genre_classifier")
    message = str(caught.value)
    assert f"is a {len(pointer)}-byte Git LFS pointer" in message and "flask/Genre_classifier_model.h5" in message
    assert "media.githubusercontent.com" in message and github.url in message
    assert "STUDIO_MODEL_GENRE_CLASSIFIER" in message
    assert not originals.is_cached("genre_classifier")


def test_checksum_mismatch_names_file_source_and_remedy(github):
    data = b"not the emotion model"
    serve(github, "m2i_lora", "pytorch_lora_weights.safetensors", data + b"\0" * (3_226_184 - len(data)))
    with pytest.raises(ModelUnavailableError) as caught:
        ModelRegistry("hub").resolve("m2i_lora")
    message = str(caught.value)
    assert "Weights/pytorch_lora_weights.safetensors" in message and f"{github.url}/raw/" in message
    assert "has sha256" in message and originals.ORIGINALS["m2i_lora"].files[0].sha256 in message
    assert "STUDIO_MODEL_M2I_LORA" in message and "it was deleted" in message
    assert not originals.is_cached("m2i_lora") and not any(Path(os.environ["STUDIO_CACHE"]).rglob("*.safetensors"))


def test_size_mismatch_and_missing_file(github):
    serve(github, "m2i_lora", "pytorch_lora_weights.safetensors", b"short")
    with pytest.raises(ModelUnavailableError, match=r"is 5 bytes, not the pinned 3,226,184"):
        ModelRegistry("hub").resolve("m2i_lora")
    with pytest.raises(ModelUnavailableError, match=r"Could not download flask/emotion_model.h5 .* HTTP 404"):
        ModelRegistry("hub").resolve("emotion_classifier")


def test_offline_never_fetches(github, monkeypatch):
    serve(github, "m2i_lora", "pytorch_lora_weights.safetensors", b"anything")
    for switch in ("STUDIO_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(switch, "1")
        with pytest.raises(ModelUnavailableError) as caught:
            ModelRegistry("hub").resolve("m2i_lora")
        assert f"downloads are switched off ({switch}=1)" in str(caught.value)
        assert "STUDIO_MODEL_M2I_LORA" in str(caught.value)
        monkeypatch.delenv(switch)
    assert github.requests == []


def test_role_override_wins(github, monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_MODEL_M2I_LORA", str(tmp_path))
    assert ModelRegistry("hub").resolve("m2i_lora").location == str(tmp_path.resolve())
    assert github.requests == []
    row = next(r for r in originals.describe() if r["role"] == "m2i_lora")
    assert row["state"] == "replaced by a copy of your own"


def test_musicti_styles_verified_by_git_blob_and_converted(github, monkeypatch, tmp_path):
    """Stand-in embeddings.pt files (MusicTI's pickle layout) with their own blob ids: both become style folders."""
    from test_convert_musicti import _write_musicti_checkpoint

    from pipelines.models.style_embedding import StyleLibrary

    pins = {}
    for name in ("accordion", "chime"):
        pt = tmp_path / f"{name}.pt"
        _write_musicti_checkpoint(pt, monkeypatch)
        serve(github, "music_styles", name, pt.read_bytes())
        pins[name] = {"git_blob": originals.git_blob_id(pt)}
    monkeypatch.setenv("STUDIO_ORIGINALS_PINS", pins_file(tmp_path, {"music_styles": pins}))
    library = StyleLibrary(ModelRegistry("hub").resolve("music_styles").location)
    assert library.names() == ["accordion", "chime"]
    assert [style.name for style in library.get(["accordion", "chime"])] == ["accordion", "chime"]
    assert sorted(github.downloads()) == sorted(
        f"/raw/kariander1/interp-music-style/{originals.MUSICTI_SHA}/{f.path}"
        for f in originals.ORIGINALS["music_styles"].files)


def test_git_blob_id_is_gits(tmp_path):
    if not shutil.which("git"):
        pytest.fail("git is not installed")
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(5000) + b"\0blob")
    assert originals.git_blob_id(path) == subprocess.check_output(["git", "hash-object", str(path)], text=True).strip()


def test_about_rows_list_source_commit_licence_without_fetching(github):
    rows = originals.describe()
    assert {(r["role"], r["file"]) for r in rows} == {
        ("genre_classifier", "Genre_classifier_model.h5"), ("emotion_classifier", "emotion_model.h5"),
        ("m2i_lora", "pytorch_lora_weights.safetensors"), ("music_styles", "accordion"), ("music_styles", "chime")}
    techjam = next(r for r in rows if r["role"] == "m2i_lora")
    assert techjam["commit"] == "7929cc1" and "no licence" in techjam["licence"] and "never ships" in techjam["licence"]
    assert techjam["source"].startswith("https://github.com/Derek327783/TechJam/blob/7929cc1")
    assert next(r for r in rows if r["file"] == "chime")["licence"] == "MIT"
    assert github.requests == []


def test_bad_pins_file_is_explained(github, monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_ORIGINALS_PINS", pins_file(tmp_path, {"m2i_lora": {"other.bin": {"sha256": "0"}}}))
    with pytest.raises(ModelUnavailableError, match="m2i_lora/other.bin is not a file of that role"):
        ModelRegistry("hub").resolve("m2i_lora")
