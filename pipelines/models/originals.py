"""The original systems' own weights that are not on the Hugging Face Hub, fetched from GitHub on first use.

Two published projects keep their weights in GitHub repositories, not on the Hub:

- TechJam (github.com/Derek327783/TechJam, pinned at commit 7929cc1; every weight file was added in
  9ab1121 and not changed since): the genre and emotion Keras classifiers (``flask/*.h5``, stored
  with Git LFS) and the music-to-image LoRA (``Weights/pytorch_lora_weights.safetensors``, plain git).
  The repository has no licence file: the files are downloaded onto the user's own machine when a
  tab first needs them, for the user's own use; this project never ships or re-hosts them.
- MusicTI styles of *Style Embedding Interpolation in Music Generation*
  (github.com/kariander1/interp-music-style, commit cf77424, MIT): the accordion and chime
  ``embeddings.pt``, converted into style folders by ``pipelines.models.musicti_checkpoint``.

Where a file is read from: a Git LFS file from GitHub's media host (``media.githubusercontent.com``;
the raw host serves the 132-byte LFS *pointer*, which is detected and refused), a plain file from
the raw host (``raw.githubusercontent.com``); both at the pinned commit. ``STUDIO_GITHUB_MEDIA_URL``
and ``STUDIO_GITHUB_RAW_URL`` replace the two hosts (a mirror; the tests' local server).

Verification: the size where known, then the sha256 (TechJam, ``../shared/reference/hub/
Derek327783--TechJam/manifest.md``) or the git blob id (MusicTI: sha1 of ``b"blob <size>\\0"`` + the
bytes, as ``git hash-object`` computes it; the file sizes are not recorded, the blob id fixes them).
A file that fails is deleted and never used. ``STUDIO_ORIGINALS_PINS`` names a JSON file that
replaces pins (``{"role": {"file name": {"sha256"|"git_blob"|"size": ...}}}``): for a mirror that
serves other bytes knowingly, and for the tests' stand-ins.

Cache: ``$STUDIO_CACHE/originals/<role>-<pin digest>/`` (``model_building.studio_cache_root``), built
once under a lock and renamed into place when complete (``model_building.ensure_built``), so parallel
workers download once and a broken download never looks finished. Offline (``STUDIO_OFFLINE`` or
``HF_HUB_OFFLINE`` set to 1/true/yes) nothing is downloaded: a cached copy is used, else one clear
message. A role override (``STUDIO_MODEL_<ROLE>``) is honoured before any of this (``models.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from core.errors import ModelUnavailableError

from pipelines.models.building.common import ensure_built, studio_cache_root

log = logging.getLogger(__name__)

TECHJAM = "Derek327783/TechJam"
TECHJAM_SHA = "7929cc115c85061225c008ed4ae785db2205a7ae"  # HEAD, 2024-07-07; weights from 9ab1121 (2024-07-02)
MUSICTI = "kariander1/interp-music-style"
MUSICTI_SHA = "cf77424fdb937787ed0b1e87f9447874a7ad9832"  # HEAD, 2025-04-13; embeddings from 6b69250
RAW_URL = "https://raw.githubusercontent.com"
MEDIA_URL = "https://media.githubusercontent.com/media"  # where GitHub serves Git LFS objects by path
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
LFS_POINTER_MAX_BYTES = 1024  # a pointer is ~130 bytes; real weight files are megabytes
TIMEOUT_S = 30.0  # per connection and per read
CHUNK = 1 << 20
OFF = ("1", "true", "yes", "on")

TECHJAM_LICENCE = ("none (the repository has no licence file): downloaded onto this machine at first use, "
                   "for your own use; this app never ships or re-hosts it")
MUSICTI_LICENCE = "MIT"


@dataclass(frozen=True)
class OriginalFile:
    """One published file: where it is (repo, commit, path) and how it is verified."""

    name: str  # what the app calls it: the file name its loader expects, or the style's name
    repo: str
    commit: str
    path: str
    lfs: bool = False  # stored with Git LFS: served by the media host, the raw host gives the pointer
    size: int | None = None  # bytes, where recorded
    sha256: str | None = None
    git_blob: str | None = None  # sha1 of b"blob <size>\0" + bytes

    def url(self, environ: Mapping[str, str] = os.environ) -> str:
        base = (environ.get("STUDIO_GITHUB_MEDIA_URL") or MEDIA_URL) if self.lfs else (
            environ.get("STUDIO_GITHUB_RAW_URL") or RAW_URL)
        return f"{base.rstrip('/')}/{self.repo}/{self.commit}/{quote(self.path)}"

    def page(self) -> str:
        """The file's page on GitHub at the pinned commit (for people; the app downloads ``url``)."""
        return f"https://github.com/{self.repo}/blob/{self.commit}/{quote(self.path)}"

    def pin(self) -> str:
        return f"sha256 {self.sha256}" if self.sha256 else f"git blob {self.git_blob}"


@dataclass(frozen=True)
class Original:
    """A registry role whose weights are these files (``convert``: "copy" keeps them as they are,
    "musicti" turns each ``embeddings.pt`` into a style folder named after the file's ``name``)."""

    role: str
    files: tuple[OriginalFile, ...]
    licence: str
    convert: str = "copy"


_TECHJAM = dict(repo=TECHJAM, commit=TECHJAM_SHA)
_MUSICTI = dict(repo=MUSICTI, commit=MUSICTI_SHA)
ORIGINALS: dict[str, Original] = {o.role: o for o in (
    Original("genre_classifier", (OriginalFile(
        "Genre_classifier_model.h5", path="flask/Genre_classifier_model.h5", lfs=True, size=6_874_520,
        sha256="6572829f9add78efffc0f17a8b0447ce50f84f751b942ba9c7dbf14703603f28", **_TECHJAM),), TECHJAM_LICENCE),
    Original("emotion_classifier", (OriginalFile(
        "emotion_model.h5", path="flask/emotion_model.h5", lfs=True, size=246_095_376,
        sha256="f88238ef0a8671880b24d992e435aad8b169717f83231824229c0911253869fd", **_TECHJAM),), TECHJAM_LICENCE),
    Original("m2i_lora", (OriginalFile(
        "pytorch_lora_weights.safetensors", path="Weights/pytorch_lora_weights.safetensors", size=3_226_184,
        sha256="b1b19610541f9a2c6f235a1bac2690d04b98535f9f9f7790e9ad4d0fe8ac89b0", **_TECHJAM),), TECHJAM_LICENCE),
    Original("music_styles", (
        OriginalFile("accordion", path="logs/accordion2025-04-04T11-44-43_test/checkpoints/embeddings.pt",
                     git_blob="d5bfa882b8c7d35a7d757f4d895052853cee9028", **_MUSICTI),
        OriginalFile("chime", path="logs/chime2025-04-02T12-43-31_test/checkpoints/embeddings.pt",
                     git_blob="a6ae22879344e370308c931033270f52741ca777", **_MUSICTI),
    ), MUSICTI_LICENCE, convert="musicti"),
)}


# -- pins, cache, offline ------------------------------------------------------------------------------
def offline(environ: Mapping[str, str] = os.environ) -> str | None:
    """The variable that switches downloads off (``STUDIO_OFFLINE`` or ``HF_HUB_OFFLINE``), or None."""
    for env in (environ, os.environ):  # the process's own switch holds whatever environ a registry was given
        for name in ("STUDIO_OFFLINE", "HF_HUB_OFFLINE"):
            if env.get(name, "").strip().lower() in OFF:
                return name
    return None


def pinned(role: str, environ: Mapping[str, str] = os.environ) -> Original:
    """``ORIGINALS[role]`` with the pins of ``STUDIO_ORIGINALS_PINS`` applied (ModelUnavailableError
    for a file that cannot be read or names unknown roles, files or keys)."""
    original = ORIGINALS[role]
    path = environ.get("STUDIO_ORIGINALS_PINS")
    if not path:
        return original
    try:
        pins = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ModelUnavailableError(f"STUDIO_ORIGINALS_PINS={path} could not be read as JSON: {error}") from error
    if not isinstance(pins, dict) or set(pins) - set(ORIGINALS):
        raise ModelUnavailableError(f"STUDIO_ORIGINALS_PINS={path} must map roles ({', '.join(ORIGINALS)}) to "
                                    "{file name: {sha256, git_blob, size}}.")
    changes = pins.get(role) or {}
    names = {f.name for f in original.files}
    for name, pin in changes.items():
        if name not in names or not isinstance(pin, dict) or set(pin) - {"sha256", "git_blob", "size"}:
            raise ModelUnavailableError(f"STUDIO_ORIGINALS_PINS: {role}/{name} is not a file of that role "
                                        f"({', '.join(sorted(names))}) or has keys other than sha256, git_blob, size.")
    files = tuple(replace(f, **{"sha256": None, "git_blob": None, "size": None, **changes[f.name]})
                  if f.name in changes else f for f in original.files)
    return replace(original, files=files)


def cache_folder(original: Original) -> Path:
    """Where the role's verified (and converted) files live: named after every file's pin, so a new
    pin never reuses an old download."""
    pins = "\n".join(f"{f.repo}@{f.commit}:{f.path}:{f.pin()}:{f.size}" for f in original.files)
    digest = hashlib.sha256(f"{original.convert}\n{pins}".encode()).hexdigest()[:12]
    return studio_cache_root() / "originals" / f"{original.role}-{digest}"


def is_cached(role: str, environ: Mapping[str, str] = os.environ) -> bool:
    return (cache_folder(pinned(role, environ)) / ".complete").exists()


def fetch(role: str, environ: Mapping[str, str] = os.environ) -> Path:
    """The folder holding ``role``'s files (classifiers, LoRA: the files by name; styles: one style
    folder per name), downloaded, verified and converted now if it is not cached yet.

    Raises ModelUnavailableError naming the file, the URL and what to do: offline without a cached
    copy, a failed download, an LFS pointer instead of the file, a size or checksum that differs.
    """
    original = pinned(role, environ)
    target = cache_folder(original)
    if (target / ".complete").exists():
        return target
    switch = offline(environ)
    if switch:
        first = original.files[0]
        raise ModelUnavailableError(
            f"The '{role}' weights ({', '.join(f.path for f in original.files)} of github.com/{first.repo} at "
            f"{first.commit[:7]}) are not in this machine's cache, and downloads are switched off ({switch}=1). "
            f"Start the app once with network to fetch them, or download them yourself and set "
            f"STUDIO_MODEL_{role.upper()} to a folder holding {_holding(original)}."
        )

    def build(folder: Path) -> None:
        for file in original.files:
            if original.convert == "musicti":
                downloaded = download(file, folder / ".downloads" / f"{file.name}.pt", role, environ)
                _convert_style(downloaded, folder / file.name, file, role)
            else:
                download(file, folder / file.name, role, environ)
        shutil.rmtree(folder / ".downloads", ignore_errors=True)
        (folder / "SOURCE.json").write_text(json.dumps(
            {"role": role, "licence": original.licence,
             "files": [{"name": f.name, "url": f.url(environ), "page": f.page(), "pin": f.pin()} for f in original.files]},
            indent=2))

    return ensure_built(target, build)


def _holding(original: Original) -> str:
    if original.convert == "musicti":
        return "one style folder per style (convert each embeddings.pt with `python -m scripts.convert_musicti_checkpoint`)"
    return ", ".join(f.name for f in original.files)


def _what_to_do(file: OriginalFile, role: str, original_holding: str) -> str:
    return (f"Try again later, or download {file.page()} yourself and set STUDIO_MODEL_{role.upper()} to a folder "
            f"holding {original_holding}.")


# -- download and verify -------------------------------------------------------------------------------
def download(file: OriginalFile, dest: Path, role: str, environ: Mapping[str, str] = os.environ) -> Path:
    """``file`` from its URL into ``dest``, verified (size, LFS pointer, sha256 or git blob); a file
    that fails is deleted. Returns ``dest``; raises ModelUnavailableError."""
    url = file.url(environ)
    holding = _holding(ORIGINALS[role]) if role in ORIGINALS else file.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s (%s) from %s", file.path, role, url)
    started = time.perf_counter()
    request = urllib.request.Request(url, headers={"User-Agent": "sound-picture-studio"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except urllib.error.HTTPError as error:
        dest.unlink(missing_ok=True)
        raise ModelUnavailableError(
            f"Could not download {file.path} ('{role}', {file.repo} at {file.commit[:7]}) from {url}: HTTP {error.code} "
            f"{error.reason}. {_what_to_do(file, role, holding)}") from error
    except (urllib.error.URLError, OSError) as error:
        dest.unlink(missing_ok=True)
        reason = getattr(error, "reason", None) or error
        raise ModelUnavailableError(
            f"Could not download {file.path} ('{role}', {file.repo} at {file.commit[:7]}) from {url}: {reason} "
            f"(is GitHub reachable from this machine?). {_what_to_do(file, role, holding)}") from error
    try:
        verify(dest, file, url)
    except ModelUnavailableError as error:
        dest.unlink(missing_ok=True)
        raise ModelUnavailableError(f"{error} {_what_to_do(file, role, holding)}") from None
    log.info("fetched and verified %s: %.1f MB in %.1f s", file.path, dest.stat().st_size / 1e6,
             time.perf_counter() - started)
    return dest


def is_lfs_pointer(path: Path) -> bool:
    """A Git LFS pointer file (the text git stores in place of an LFS object), not the object itself."""
    if path.stat().st_size > LFS_POINTER_MAX_BYTES:
        return False
    with open(path, "rb") as handle:
        return handle.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX


def git_blob_id(path: Path) -> str:
    """What ``git hash-object`` gives: sha1 of ``b"blob <size>\\0"`` followed by the bytes."""
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, file: OriginalFile, url: str) -> None:
    """Raise ModelUnavailableError unless ``path`` is ``file`` as pinned (checked in this order: an
    LFS pointer, the size, the sha256 or git blob id)."""
    size = path.stat().st_size
    where = f"{file.path} from {url}"
    if is_lfs_pointer(path):
        raise ModelUnavailableError(
            f"{where} is a {size}-byte Git LFS pointer, not the file"
            + (f" ({file.size:,} bytes)" if file.size else "")
            + ": LFS files are served by GitHub's media host (media.githubusercontent.com), not the raw one "
              "(check STUDIO_GITHUB_MEDIA_URL), or in a clone by `git lfs pull`.")
    if file.size is not None and size != file.size:
        raise ModelUnavailableError(f"{where} is {size:,} bytes, not the pinned {file.size:,} "
                                    f"({file.repo} at {file.commit[:7]}): an interrupted or changed download; it was deleted.")
    if file.sha256 is not None and (got := sha256_of(path)) != file.sha256:
        raise ModelUnavailableError(f"{where} has sha256 {got}, not the pinned {file.sha256} ({file.repo} at "
                                    f"{file.commit[:7]}): damaged or not the published file; it was deleted.")
    if file.git_blob is not None and (got := git_blob_id(path)) != file.git_blob:
        raise ModelUnavailableError(f"{where} has git blob id {got}, not the pinned {file.git_blob} ({file.repo} at "
                                    f"{file.commit[:7]}): damaged or not the published file; it was deleted.")
    if file.sha256 is None and file.git_blob is None:
        raise ModelUnavailableError(f"{file.path} has no checksum pinned; it is not used unverified.")


def _convert_style(pt: Path, out: Path, file: OriginalFile, role: str) -> None:
    from core.errors import InputError

    from pipelines.models.musicti_checkpoint import convert_musicti_checkpoint

    try:
        convert_musicti_checkpoint(pt, out, file.name)
    except InputError as error:  # the blob id matched, so this means the converter, not the download
        raise ModelUnavailableError(f"The MusicTI style {file.name!r} ({file.page()}) could not be converted: {error}") from error


# -- what the About tab shows ---------------------------------------------------------------------------
def source_label(role: str) -> str | None:
    """``github:owner/repo@commit7 (N files, fetched on first use)`` for a role fetched here, else None."""
    original = ORIGINALS.get(role)
    if original is None:
        return None
    first = original.files[0]
    return f"github:{first.repo}@{first.commit[:7]} (fetched on first use)"


def describe(environ: Mapping[str, str] = os.environ) -> list[dict[str, str]]:
    """One row per file: role, name, source page, commit, licence, pin, state (cached, to fetch,
    overridden). Reads no network and downloads nothing."""
    rows = []
    for role in ORIGINALS:
        try:
            original = pinned(role, environ)
            cached = (cache_folder(original) / ".complete").exists()
        except ModelUnavailableError:
            original, cached = ORIGINALS[role], False
        override = environ.get(f"STUDIO_MODEL_{role.upper()}")
        state = ("replaced by a copy of your own" if override else "in the cache" if cached
                 else "not fetched: offline" if offline(environ) else "fetched on first use")
        for file in original.files:
            rows.append({"role": role, "file": file.name, "source": file.page(), "commit": file.commit[:7],
                         "licence": original.licence, "pin": file.pin(), "state": state})
    return rows
