"""Spaces as they work in 2026: the README front matter's preload_from_hub matches the registry's pins and
the loaders' layouts, the Python and torch versions agree with ZeroGPU's and with each other in the front
matter, pre-requirements.txt, requirements.txt and docs/MODELS.md, and ZeroGPU requests ask for a size."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from pipelines.models import device
from pipelines.models.registry import ROLES

ROOT = Path(__file__).resolve().parents[1]


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("\n---\n", 1)[0][4:])


def torch_pin(path: Path) -> str:
    line = next(line for line in path.read_text().splitlines() if line.startswith("torch"))
    return line.split("#")[0].strip()[len("torch"):]


def test_preload_from_hub_pins_every_entry_to_the_registrys_commit_and_layout():
    meta = front_matter()
    by_repo = {spec.repo_id: spec for spec in ROLES.values() if spec.repo_id}
    entries = {}
    for entry in meta["preload_from_hub"]:
        repo, files, commit = entry.split(" ")
        entries[repo] = files.split(",")
        assert repo in by_repo and repo in meta["models"], repo
        assert commit == by_repo[repo].revision, repo  # the pinned commit, never a branch
    weights = {repo: [f for f in files if f.endswith((".bin", ".safetensors"))] for repo, files in entries.items()}
    for role in ("riffusion", "clap"):  # published as .bin only
        assert weights[ROLES[role].repo_id] and all(f.endswith(".bin") for f in weights[ROLES[role].repo_id])
    sd15 = weights[ROLES["sd15"].repo_id]  # a GPU Space loads the fp16 variant files only
    assert {f.split("/")[0] for f in sd15} == {"text_encoder", "unet", "vae"} and all(".fp16." in f for f in sd15)
    amuse = entries[ROLES["amuse_unet"].repo_id]
    assert all(f.startswith(("unet/", "scheduler/")) or f == "model_index.json" for f in amuse)
    # unpinned or with file lists not on record: fetched at first use instead (docs/MODELS.md says which)
    assert set(entries) == set(by_repo) - {ROLES[r].repo_id for r in ("mask_model", "musicgen_melody", "sentence_embedder")}
    assert all(f"`{ROLES[r].repo_id}`" in (ROOT / "docs" / "MODELS.md").read_text()
               for r in ("mask_model", "musicgen_melody", "sentence_embedder"))


def test_python_and_torch_versions_agree_everywhere():
    python = str(front_matter()["python_version"])
    assert python in device.ZERO_GPU_PYTHONS
    pinned = torch_pin(ROOT / "pre-requirements.txt")
    assert pinned.startswith("==")
    version = Version(pinned[2:])
    low, high = (Version(v) for v in device.ZERO_GPU_TORCH)
    assert low <= version <= high  # what ZeroGPU accepts
    assert version in SpecifierSet(torch_pin(ROOT / "requirements.txt"))  # requirements.txt keeps it
    models_doc = (ROOT / "docs" / "MODELS.md").read_text()
    assert f"Python {python}" in models_doc and f"torch {version}" in models_doc
    assert f"torch {device.ZERO_GPU_TORCH[0]} to {device.ZERO_GPU_TORCH[1]}" in models_doc


@pytest.fixture
def spaces_stand_in(monkeypatch):
    """ZeroGPU on, and a stand-in ``spaces`` whose GPU decorator records each call's duration and size."""
    calls = []

    def GPU(duration=60, **options):  # noqa: N802  (spaces' own name)
        def decorate(fn):
            def on_gpu(*args, **kwargs):
                calls.append((duration(*args, **kwargs) if callable(duration) else duration,
                              options.get("size", "large")))
                return fn(*args, **kwargs)
            return on_gpu
        return decorate

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    monkeypatch.setattr(device, "ZERO_GPU", True)
    return calls


def test_zero_gpu_size_and_duration_per_request(spaces_stand_in, monkeypatch):
    manager = device.DeviceManager(device="cpu")
    work = manager.gpu_task(lambda steps: steps * 2, duration=lambda steps: 10 + steps)
    assert work(5) == 10 and spaces_stand_in[-1] == (15, "large")  # the default: half a card
    monkeypatch.setenv("STUDIO_ZERO_GPU_SIZE", "xlarge")
    assert manager.gpu_task(lambda: 1, duration=30)() == 1 and spaces_stand_in[-1] == (30, "xlarge")
    per_request = manager.gpu_task(lambda big: big, duration=20, size=lambda big: "xlarge" if big else "large")
    per_request(True)
    per_request(False)
    assert spaces_stand_in[-2:] == [(20, "xlarge"), (20, "large")]
    monkeypatch.setenv("STUDIO_ZERO_GPU_SIZE", "huge")
    with pytest.raises(device.StudioError, match="STUDIO_ZERO_GPU_SIZE must be one of large, xlarge"):
        manager.gpu_task(lambda: 1)


def test_no_torch_compile_on_zero_gpu(monkeypatch):
    from pipelines.models import loaders

    monkeypatch.setenv("STUDIO_COMPILE", "1")
    monkeypatch.setattr(device, "ZERO_GPU", True)
    assert not loaders.compile_wanted("cuda")  # ZeroGPU does not support torch.compile
    monkeypatch.setattr(device, "ZERO_GPU", False)
    assert loaders.compile_wanted("cuda")
    assert re.search(r"no `torch.compile`", (ROOT / "docs" / "MODELS.md").read_text())
