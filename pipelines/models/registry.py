"""The model registry: where each role's weights live in a profile, and how to override that.

The roles themselves are declared once, in ``roles.ROLES``. Each role maps to a hub repo and
revision in the ``hub`` profile, and to a folder that a *builder* makes on this machine in the
``tiny`` profile (``pipelines/models/building/tiny.py``: same classes, same file layout, random weights: the real
``from_pretrained`` path runs, in seconds, without network) and the ``fullsize`` profile
(``pipelines/models/building/fullsize.py``: the real configurations at full size, random weights). A caller may hand
the registry a builder; without one, ``builder_for(profile)`` imports the profile's builder module
(``BUILDER_MODULES``) when the registry is made, so no pipeline module needs to know the builders.

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

from pipelines.models.roles import ROLES, UNPINNED_ROLES, Role  # noqa: F401  (the table's readers import it from here too)

PROFILES = ("hub", "tiny", "fullsize")
BUILDER_MODULES = {"tiny": "tiny", "fullsize": "fullsize"}  # built profile -> its builder module in pipelines/
BUILT_PROFILES = tuple(BUILDER_MODULES)  # profiles whose models a builder makes on this machine


def builder_for(profile: str) -> ModelBuilder | None:
    """The builder module of a built profile (``pipelines.models.building.tiny`` or ``pipelines.models.building.fullsize``), None for the hub."""
    import importlib

    name = BUILDER_MODULES.get(profile)
    return None if name is None else importlib.import_module(f".building.{name}", __package__)


class ModelBuilder(Protocol):
    """What a built profile needs: a folder per model family, built on first use (see ``tiny.py``).
    Which family a role uses is the role's (``Role.family_for(profile)``)."""

    def ensure(self, family: str) -> Path: ...

    def has(self, family: str) -> bool: ...


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
            builder = builder_for(profile)
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
        if spec.repo_id is None and role in _originals().ORIGINALS:  # TechJam, MusicTI: from GitHub, verified
            return ModelSource(role, str(_originals().fetch(role, self.environ)), None, True, "github")
        if spec.repo_id is None:
            raise ModelUnavailableError(
                f"The '{role}' model ({spec.purpose}) is not published on the Hugging Face Hub. "
                f"Set STUDIO_MODEL_{role.upper()} to a local folder holding {', '.join(spec.files) or 'it'}, "
                "or run the app with --profile tiny to try the tab with random weights."
            )
        return ModelSource(role, spec.repo_id, spec.revision, False, "registry")

    def family(self, role: str) -> str:
        """The built profile's family for ``role`` (``Role.family_for``)."""
        return ROLES[role].family_for(self.profile)

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
                where = f"{spec.repo_id}@{spec.revision}" if spec.repo_id else (
                    _originals().source_label(role) or "(not on the Hub: override needed)")
            rows.append({"role": role, "source": where, "purpose": spec.purpose})
        return rows


def _originals():
    from pipelines.models import originals  # the original systems' GitHub files (pipelines/models/originals.py)

    return originals


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
    from pipelines.models.hub_reach import offline_if_unreachable

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
    from pipelines.models.hub_reach import hub_error_reason

    wrong = hub_error_reason(error, source.location, source.revision, source.role)  # revision, file, repo
    if wrong:
        return f"The '{source.role}' model ({source.location}@{source.revision}) is not available: {wrong}. [{type(error).__name__}]"
    reason = (
        "the Hub is switched off (HF_HUB_OFFLINE=1) and it is not in the local cache" if offline else (
        "the Hugging Face Hub cannot be reached (no network?) and it is not in the local cache" if unreachable
        else "it is not in the local cache and could not be downloaded"
    ))
    return (
        f"The '{source.role}' model ({source.location}@{source.revision}) is not available: {reason}. "
        f"Download it on a machine with network (`hf download {source.location}`), or set "
        f"STUDIO_MODEL_{source.role.upper()} to a local folder, or use the tiny profile: add --profile tiny to this "
        "command (python app.py, python -m evaluation ..., python -m training.<recipe> all take it). "
        f"[{type(error).__name__}]"
    )
