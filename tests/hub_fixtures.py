"""The tiny profile's models laid out as the real Hub repositories are, at the registry's pinned commits,
for tests/fake_servers.FakeHub; and tiny stand-ins of the originals' GitHub files with their own pins.

Layouts (the captured Hub references, ``scripts.real_data.find_hub_reference()``): riffusion and the mask model ``.bin`` only; SD 1.5
``.safetensors`` and ``.bin`` with ``*.fp16.safetensors`` variants beside them; CLAP ``pytorch_model.bin``
only (the tiny build already is); AMUSE ``unet/`` + ``scheduler/`` + a ``model_index.json`` naming a
DDPMPipeline, and nothing else; the others as the tiny builds save them (transformers' safetensors).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fake_servers import FakeGitHub, FakeHub

# the mask model has no full commit sha on record (models.UNPINNED_ROLES): the server makes one up for "main"
MASK_MODEL_COMMIT = "4f3317c" + "0" * 33
AMUSE_INDEX = {"_class_name": "DDPMPipeline", "_diffusers_version": "0.27.2",
               "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DConditionModel"]}


def _weights_as(folder: Path, bin_files: bool, keep_safetensors: bool, fp16: bool) -> None:
    """Rewrite every ``*.safetensors`` in ``folder``: a ``.bin`` beside it (diffusers' and transformers'
    names), an ``.fp16.safetensors`` variant, and the safetensors kept or removed."""
    import torch
    from safetensors.torch import load_file, save_file

    for path in sorted(folder.rglob("*.safetensors")):
        state = load_file(str(path))
        if bin_files:
            name = "diffusion_pytorch_model.bin" if path.name.startswith("diffusion_pytorch_model") else "pytorch_model.bin"
            torch.save(state, path.with_name(name))
        if fp16:
            save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()},
                      str(path.with_name(path.name.replace(".safetensors", ".fp16.safetensors"))))
        if not keep_safetensors:
            path.unlink()


def tiny_hub_repos(staging: Path) -> dict[str, tuple[str, Path]]:
    """{repo_id: (commit, folder)} for every Hub role of the registry, built from the tiny models."""
    from pipelines.models.building import tiny
    from pipelines.models.registry import ROLES

    repos: dict[str, tuple[str, Path]] = {}
    for role, spec in ROLES.items():
        if spec.repo_id is None or spec.repo_id in repos:
            continue
        folder = staging / spec.repo_id.replace("/", "--")
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(tiny.ensure(spec.family), folder, ignore=shutil.ignore_patterns(".*"))
        if role in ("riffusion", "mask_model"):
            _weights_as(folder, bin_files=True, keep_safetensors=False, fp16=False)
        elif role == "sd15":
            _weights_as(folder, bin_files=True, keep_safetensors=True, fp16=True)
        elif role == "amuse_unet":
            (folder / "model_index.json").write_text(json.dumps(AMUSE_INDEX, indent=2))
        commit = MASK_MODEL_COMMIT if spec.revision == "main" else spec.revision
        repos[spec.repo_id] = (commit, folder)
    return repos


def serve_tiny_hub(hub: FakeHub, staging: Path) -> dict[str, tuple[str, Path]]:
    repos = tiny_hub_repos(staging)
    for repo_id, (commit, folder) in repos.items():
        hub.add(repo_id, commit, folder)
    return repos


def serve_tiny_originals(github: FakeGitHub, staging: Path, monkeypatch, lora: Path | None = None) -> dict:
    """The originals' files as tiny stand-ins on ``github`` (the tiny Keras models, the tiny LoRA or
    ``lora``, two MusicTI-format embeddings of the tiny text encoder's width); returns the pins
    (``STUDIO_ORIGINALS_PINS``'s format) that accept them."""
    from test_convert_musicti import _write_musicti_checkpoint

    from pipelines.models import originals

    from pipelines.models.building import tiny

    sources = {"Genre_classifier_model.h5": tiny.ensure("keras_genre") / "Genre_classifier_model.h5",
               "emotion_model.h5": tiny.ensure("keras_emotion") / "emotion_model.h5",
               "pytorch_lora_weights.safetensors": lora or tiny.ensure("lora") / "pytorch_lora_weights.safetensors"}
    staging.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(("accordion", "chime")):
        import torch

        torch.manual_seed(seed)
        sources[name] = staging / f"{name}.pt"
        _write_musicti_checkpoint(sources[name], monkeypatch,
                                  change=lambda modules, s=seed: [p.data.add_(s) for p in modules["emb_layers"].parameters()])
    pins: dict[str, dict] = {}
    for role, original in originals.ORIGINALS.items():
        for file in original.files:
            path = sources[file.name]
            github.add("media" if file.lfs else "raw", file.repo, file.commit, file.path, path.read_bytes())
            pin = {"git_blob": originals.git_blob_id(path)} if original.convert == "musicti" else {
                "sha256": originals.sha256_of(path), "size": path.stat().st_size}
            pins.setdefault(role, {})[file.name] = pin
    return pins
