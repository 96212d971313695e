"""The model registry: every role the app uses, where its weights live, and how to override that.

A *role* is what a model is for ("riffusion", "mask_model", "sd15", ...). Each role maps to a hub
repo and revision in the ``hub`` profile, and to a folder that a *builder* makes on this machine in the ``tiny``
profile (``pipelines/tiny.py``: same classes, same file layout, random weights: the real
``from_pretrained`` path runs, in seconds, without network) and the ``fullsize`` profile
(``pipelines/fullsize.py``: the real configurations at full size, random weights). The registry never imports a builder:
whoever creates it (``Studio``) hands one in, so nothing here depends on the pipelines.

Overrides, strongest first (never through the public API):
  1. environment ``STUDIO_MODEL_<ROLE>`` = ``owner/repo``, ``owner/repo@revision`` or a local folder;
  2. a JSON file named by ``STUDIO_MODELS_FILE``: ``{"<role>": "owner/repo@rev" or "/local/path"}``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.errors import ModelUnavailableError

PROFILES = ("hub", "tiny", "fullsize")
BUILT_PROFILES = ("tiny", "fullsize")  # profiles whose models a builder makes on this machine


class ModelBuilder(Protocol):
    """What a built profile needs: a folder per model family, built on first use (see ``tiny.py``).

    A builder may also map roles to its own families with ``ROLE_FAMILIES = {role: family}``
    (``fullsize.py`` does: riffusion and SD 1.5 share the tiny "sd" family but not a real layout).
    """

    def ensure(self, family: str) -> Path: ...

    def has(self, family: str) -> bool: ...


@dataclass(frozen=True)
class Role:
    name: str
    repo_id: str | None  # None: not published on the Hub; an override is needed
    revision: str  # the full commit sha recorded in ../shared/reference/hub, else "main" (see UNPINNED_ROLES)
    family: str  # which tiny model stands in for it (see tiny.py; fullsize.py may map it further)
    purpose: str
    files: tuple[str, ...] = ()  # for single-file roles (LoRA, Keras .h5)
    variants: tuple[str, ...] = ()  # weight variants the repo publishes (SD 1.5: "fp16" files beside fp32)


# Revisions: the full commit sha each repo's manifest in ../shared/reference/hub records (the newest
# commit seen with its full sha; later commits seen there only change READMEs). A repo with no full
# sha known stays on "main" and is listed in UNPINNED_ROLES (and the README's fullsize section).
RIFFUSION_SHA = "4a629d28923f3618cb773f4b6ab8a205a8a6b406"  # #27, 2023-05-16; a README-only commit may follow
SD15_SHA = "451f4fe16113bff5a5d2269ed5ad43b0592e9a14"  # same snapshot under the old runwayml name
BLIP_SHA = "353689b859fcf0523410b1806dace5fb46ecdf41"  # README-only change over 2227ac38 (#18 safetensors)
MUSICGEN_SHA = "3e02990f9775c87efd8f8af10faa8bf78294b338"  # newest tree seen (28 commits)
# not in ../shared/reference/hub: the newest tree of the Hub page (18 commits, "Upload MusicgenMelodyForConditionalGeneration")
MUSICGEN_MELODY_SHA = "6eb8539b8f58210b68673406f403bb0e63ba730e"
CLAP_SHA = "8fa0f1c6d0433df6e97c127f64b2a1d6c0dcda8a"  # main head, 2023-04-24
SENTENCE_SHA = "842eaed40bee4d61673a81c92d5689a8fed7a09f"  # the Hub cache snapshot public code downloads
AMUSE_UNET_SHA = "2745e7eb509b4c4055a8fbcd556577aac7bf51d1"  # 2024-05-27 (README) over the Epoch 89/99 weights
UNPINNED_ROLES = frozenset({"mask_model"})  # cappiepappie: only the short sha 4f3317c is known

ROLES: dict[str, Role] = {
    r.name: r
    for r in [
        Role("riffusion", "riffusion/riffusion-model-v1", RIFFUSION_SHA, "sd",
             "Riffusion base (spectrogram Stable Diffusion), shared by sound-to-music and style interpolation"),
        Role("mask_model", "cappiepappie/stable-diffusion-music-25", "main", "sd",
             "Riffusion fine-tune used by the mask-based img2img paper's notebooks"),
        Role("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", SD15_SHA, "sd",
             "Stable Diffusion 1.5 for music-to-image", variants=("fp16",)),
        Role("m2i_lora", None, "main", "lora",
             "Music-to-image LoRA (UNet-only, rank 4; in the TechJam GitHub repo, not on the Hub)",
             ("pytorch_lora_weights.safetensors",)),
        Role("s2m_lora", None, "main", "lora",
             "Genre LoRA for sound-to-music (DreamBooth-LoRA on Riffusion; train one with "
             "`python -m training.riffusion_lora`)", ("pytorch_lora_weights.safetensors",)),
        Role("blip", "Salesforce/blip-image-captioning-large", BLIP_SHA, "blip", "Image captioning"),
        Role("musicgen", "facebook/musicgen-small", MUSICGEN_SHA, "musicgen", "Text-to-music"),
        Role("musicgen_melody", "facebook/musicgen-melody", MUSICGEN_MELODY_SHA, "musicgen_melody",
             "Text-to-music following a tune's melody (its chroma), for image to music"),
        Role("clap", "laion/clap-htsat-unfused", CLAP_SHA, "clap", "Audio-text similarity for metrics"),
        Role("sentence_embedder", "sentence-transformers/all-distilroberta-v1", SENTENCE_SHA, "sentence",
             "Caption-to-lyrics similarity for song recommendation"),
        Role("amuse_unet", "alppo/vae-conditioned-diffusion-model_v2", AMUSE_UNET_SHA, "amuse_unet",
             "AMUSE playlist-conditioned spectrogram UNet"),
        Role("amuse_vae", None, "main", "amuse_vae", "AMUSE playlist VAE (weights not published)"),
        Role("music_styles", None, "main", "music_styles",
             "MusicTI styles: one folder per style (style.json + style.safetensors); convert an embeddings.pt "
             "with `python -m scripts.convert_musicti_checkpoint IN.pt OUT_DIR`"),
        Role("genre_classifier", None, "main", "keras_genre",
             "GTZAN genre CNN (TechJam, Keras .h5)", ("Genre_classifier_model.h5",)),
        Role("emotion_classifier", None, "main", "keras_emotion",
             "Emotify emotion CNN (TechJam, Keras .h5)", ("emotion_model.h5",)),
    ]
}


@dataclass(frozen=True)
class ModelSource:
    """Where one role's weights come from, resolved for a profile."""

    role: str
    location: str  # hub repo id or local folder
    revision: str | None
    is_local: bool
    origin: str  # "registry", "env", "file" or the built profile's name: for messages and the About panel

    def describe(self) -> str:
        if self.is_local:
            return f"{self.location} (local folder, from {self.origin})"
        return f"{self.location}@{self.revision} (Hub, from {self.origin})"


class ModelRegistry:
    """Resolves roles to sources for one profile; the loaders live with the pipelines."""

    def __init__(self, profile: str = "hub", environ: dict[str, str] | None = None,
                 builder: ModelBuilder | None = None):
        if profile not in PROFILES:
            raise ValueError(f"Unknown profile {profile!r}: use one of {', '.join(PROFILES)}.")
        if profile in BUILT_PROFILES and builder is None:
            raise ValueError(f"The {profile} profile needs a builder (e.g. pipelines.tiny).")
        self.profile = profile
        self.builder = builder
        self.environ = os.environ if environ is None else environ
        self._file_overrides = self._read_override_file()

    def _read_override_file(self) -> dict[str, str]:
        path = self.environ.get("STUDIO_MODELS_FILE")
        if not path:
            return {}
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ModelUnavailableError(f"STUDIO_MODELS_FILE={path} could not be read as JSON: {error}") from error
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ModelUnavailableError(f"STUDIO_MODELS_FILE={path} must map role names to strings.")
        unknown = set(data) - set(ROLES)
        if unknown:
            raise ModelUnavailableError(f"STUDIO_MODELS_FILE names unknown roles: {', '.join(sorted(unknown))}.")
        return data

    def resolve(self, role: str) -> ModelSource:
        if role not in ROLES:
            raise ModelUnavailableError(f"Unknown model role {role!r}.")
        spec = ROLES[role]
        env_value = self.environ.get(f"STUDIO_MODEL_{role.upper()}")
        if env_value:
            return _parse_override(role, env_value, "env")
        if role in self._file_overrides:
            return _parse_override(role, self._file_overrides[role], "file")
        if self.builder is not None and self.profile in BUILT_PROFILES:
            # builds the folder on first use, once
            return ModelSource(role, str(self.builder.ensure(self.family(role))), None, True, self.profile)
        if spec.repo_id is None:
            raise ModelUnavailableError(
                f"The '{role}' model ({spec.purpose}) is not published on the Hugging Face Hub. "
                f"Set STUDIO_MODEL_{role.upper()} to a local folder holding {', '.join(spec.files) or 'it'}, "
                "or run the app with --profile tiny to try the tab with random weights."
            )
        return ModelSource(role, spec.repo_id, spec.revision, False, "registry")

    def family(self, role: str) -> str:
        """The builder's family for ``role``: its own mapping first, else the role's tiny family."""
        return getattr(self.builder, "ROLE_FAMILIES", {}).get(role, ROLES[role].family)

    def describe(self) -> list[dict[str, str]]:
        """Every role and where it would load from, without loading or building anything."""
        rows = []
        for role, spec in ROLES.items():
            env_value = self.environ.get(f"STUDIO_MODEL_{role.upper()}") or self._file_overrides.get(role)
            if env_value:
                where = env_value
            elif self.builder is not None and self.profile in BUILT_PROFILES:
                family = self.family(role)
                built = self.builder.has(family)
                where = f"{self.profile}:{family}" if built else f"(no {self.profile} model yet)"
            else:
                where = f"{spec.repo_id}@{spec.revision}" if spec.repo_id else "(not on the Hub: override needed)"
            rows.append({"role": role, "source": where, "purpose": spec.purpose})
        return rows


def _parse_override(role: str, value: str, origin: str) -> ModelSource:
    value = value.strip()
    path = Path(value).expanduser()
    if value.startswith((".", "/", "~")) or path.exists():
        if not path.exists():
            raise ModelUnavailableError(
                f"The '{role}' model is set to the local folder {value} ({origin} override), which does not exist."
            )
        return ModelSource(role, str(path.resolve()), None, True, origin)
    repo, _, revision = value.partition("@")
    return ModelSource(role, repo, revision or "main", False, origin)


T = TypeVar("T")


def load_or_explain(source: ModelSource, load: Callable[..., T], **kwargs: Any) -> T:
    """Call ``load(location, revision=..., **kwargs)`` and turn every failure into a clear error.

    Offline (``HF_HUB_OFFLINE=1``, no network) or missing weights name the role, the repo and how
    to get them, instead of a stack of hub exceptions.
    """
    call_kwargs = dict(kwargs)
    if not source.is_local:
        call_kwargs["revision"] = source.revision
    from .hub_reach import offline_if_unreachable

    # without network the Hub client would retry each file for half a minute: take cached files only
    with offline_if_unreachable() if not source.is_local else contextlib.nullcontext(False) as offline:
        try:
            return load(source.location, **call_kwargs)
        except Exception as error:  # noqa: BLE001  (every loader failure gets the same explanation)
            raise ModelUnavailableError(explain_missing(source, error, unreachable=offline)) from error


def explain_missing(source: ModelSource, error: BaseException, unreachable: bool = False) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if source.is_local:
        return (
            f"The '{source.role}' model could not be loaded from {source.location}: {type(error).__name__}: "
            f"{str(error)[:300]}. Check that the folder holds the model in Hugging Face layout."
        )
    reason = "the Hub is switched off (HF_HUB_OFFLINE=1) and it is not in the local cache" if offline else (
        "the Hugging Face Hub cannot be reached (no network?) and it is not in the local cache" if unreachable
        else "it is not in the local cache and could not be downloaded"
    )
    return (
        f"The '{source.role}' model ({source.location}@{source.revision}) is not available: {reason}. "
        f"Download it on a machine with network (`hf download {source.location}`), or set "
        f"STUDIO_MODEL_{source.role.upper()} to a local folder, or use the tiny profile: add --profile tiny to this "
        "command (python app.py, python -m evaluation ..., python -m training.<recipe> all take it). "
        f"[{type(error).__name__}]"
    )
