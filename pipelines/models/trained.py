"""What visitors train in the app: their own styles and genre LoRAs, kept per session, capped, expiring.

A public Space must not let one visitor's training change what the others see, take a name for good or
fill the disk. So a trained model lands in its session's folder, which only that session lists and
loads:

    <root>/sessions/<key>/styles/<name>/   style.json, style.safetensors, training.json, loss.csv
    <root>/sessions/<key>/loras/<name>/    pytorch_lora_weights.safetensors, lora.json, training.json, loss.csv
    <root>/shared/loras/<name>/            genre LoRAs every visitor sees (shared mode only)
    <root>/staging/<pid>-<random>/         a training's clips and output while it runs

``root`` is ``$STUDIO_CACHE/trained``; ``<key>`` is the first 32 hex digits of the SHA-256 of gradio's
session hash (no caller's text in a path). A session's folder is removed when its page closes (the
app's ``demo.unload``: ``forget``) or ``limits.TRAIN_SESSION_SECONDS`` after its last use (``sweep``,
run by the store itself at most once a minute and at app start). Names need only be unique within
the session, and may not be those of the built-in styles or shared LoRAs. The caps: styles and LoRAs
per session (``limits.TRAIN_PER_SESSION``), one session's bytes (``TRAIN_SESSION_BYTES``) and all
sessions' bytes (``TRAIN_TOTAL_BYTES``), each refused with a message in our words.

Shared mode (``limits.TRAIN_SHARED``, env ``STUDIO_TRAIN_SHARED=1``, for a private or local run) keeps
the behaviour of a single-user studio: a trained style goes into the studio's styles folder and a LoRA
into ``shared/loras``, both listed for every visitor, kept for good, names unique across everyone, no
per-session caps. Imports no gradio and no torch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from core import files as core_files
from core.disk import folder_bytes
from core.errors import InputError, StudioError

from pipelines.schema import limits

STYLES, LORAS = "styles", "loras"  # the two kinds of trained model, each a folder of its own
SWEEP_EVERY_S = 60.0  # the store looks for expired sessions at most this often
MB = 2**20


def default_root() -> Path:
    """``$STUDIO_CACHE/trained`` (``model_building.studio_cache_root``): the app's store."""
    from pipelines.models.building.common import studio_cache_root

    return studio_cache_root() / "trained"


def session_key(session: str | None) -> str:
    """The folder name of a session: 32 hex digits of SHA-256 of its hash (None: "default")."""
    return hashlib.sha256(str(session or "default").encode()).hexdigest()[:32]


def _mb(count: int) -> str:
    return f"{count / MB:.1f} MB"


class TrainedStore:
    """The trained styles and LoRAs of every session, under ``root``; ``shared``: shared mode (above)."""

    def __init__(self, root: str | Path, shared: bool | None = None):
        self.root = Path(root)
        self.shared = limits.TRAIN_SHARED if shared is None else bool(shared)
        self._lock = threading.Lock()
        self._last_sweep = float("-inf")

    # -- where things are ---------------------------------------------------------------------------
    def session_folder(self, session: str | None) -> Path:
        return self.root / "sessions" / session_key(session)

    def shared_loras(self) -> Path:
        return self.root / "shared" / LORAS

    def own(self, session: str | None, kind: str) -> dict[str, Path]:
        """The session's trained models of ``kind`` (STYLES or LORAS): name -> folder. Counts as a use
        (the session's lifetime starts again)."""
        self.touch(session)
        self.sweep()
        return _listed(self.session_folder(session) / kind)

    def shared_lora_folders(self) -> dict[str, Path]:
        return _listed(self.shared_loras())

    def touch(self, session: str | None) -> None:
        try:
            os.utime(self.session_folder(session))
        except OSError:
            pass

    # -- caps -----------------------------------------------------------------------------------------
    def check_room(self, session: str | None, queued: int = 0) -> None:
        """InputError when the session already keeps ``limits.TRAIN_PER_SESSION`` models (``queued``:
        its trainings waiting or running count too) or ``TRAIN_SESSION_BYTES``; StudioError when all
        sessions together hold ``TRAIN_TOTAL_BYTES``. Nothing is checked in shared mode."""
        if self.shared:
            return
        self.sweep()
        folder = self.session_folder(session)
        kept = sum(len(_listed(folder / kind)) for kind in (STYLES, LORAS))
        if kept + queued >= limits.TRAIN_PER_SESSION:
            raise InputError(f"You already have {kept + queued} trained style(s) or LoRA(s) in this session "
                             f"(at most {limits.TRAIN_PER_SESSION} per visitor, trainings in progress included). "
                             "They go when you close the page; open a new one to start afresh.")
        used = folder_bytes(folder)
        if used >= limits.TRAIN_SESSION_BYTES:
            raise InputError(f"Your trained styles and LoRAs take {_mb(used)} (at most "
                             f"{_mb(limits.TRAIN_SESSION_BYTES)} per visitor); close the page to free them.")
        total = folder_bytes(self.root / "sessions")
        if total >= limits.TRAIN_TOTAL_BYTES:
            raise StudioError(f"Busy: the studio's space for trained styles is full ({_mb(total)} of "
                              f"{_mb(limits.TRAIN_TOTAL_BYTES)}, all visitors together). Try again later: a "
                              "visitor's styles go when their page closes.")

    # -- a training's lifecycle ----------------------------------------------------------------------
    def staging(self) -> Path:
        """A fresh folder for one training's clips and output (``remove_stale_staging`` cleans up
        after a process that died)."""
        (self.root / "staging").mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self.root / "staging"))

    def destination(self, session: str | None, kind: str, name: str, styles_root: Path) -> Path:
        """Where a finished training of ``kind`` named ``name`` goes (``styles_root``: the built-in styles
        folder, shared mode's home for styles)."""
        if self.shared:
            return Path(styles_root) / name if kind == STYLES else self.shared_loras() / name
        return self.session_folder(session) / kind / name

    def install(self, output: Path, files: tuple[str, ...], target: Path, session: str | None) -> None:
        """Copy ``files`` of ``output`` into ``target`` (beside it, then renamed: never half a model).
        StudioError when they would pass the session's or the total byte cap (nothing is kept)."""
        size = sum((output / name).stat().st_size for name in files if (output / name).is_file())
        if not self.shared:
            used, total = folder_bytes(self.session_folder(session)), folder_bytes(self.root / "sessions")
            if used + size > limits.TRAIN_SESSION_BYTES:
                raise StudioError(f"The trained model ({_mb(size)}) does not fit in your space: you keep "
                                  f"{_mb(used)} of {_mb(limits.TRAIN_SESSION_BYTES)}; nothing was kept.")
            if total + size > limits.TRAIN_TOTAL_BYTES:
                raise StudioError(f"The trained model ({_mb(size)}) does not fit: the studio's space for "
                                  f"trained styles holds {_mb(total)} of {_mb(limits.TRAIN_TOTAL_BYTES)}, all "
                                  "visitors together; nothing was kept. Try again later.")
        partial = target.with_name(f".{target.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for name in files:
            if (output / name).is_file():
                shutil.copy2(output / name, partial / name)
        core_files.readable(partial)  # copy2 keeps a writer's 0600 (core/files.py): readable like every output
        partial.rename(target)
        if not self.shared:
            self.touch(session)

    # -- expiry ---------------------------------------------------------------------------------------
    def forget(self, session: str | None) -> bool:
        """Remove the session's trained models (its page closed); True if there was a folder."""
        folder = self.session_folder(session)
        existed = folder.is_dir()
        shutil.rmtree(folder, ignore_errors=True)
        return existed

    def sweep(self, now: float | None = None, force: bool = False) -> list[Path]:
        """Remove the session folders unused for ``limits.TRAIN_SESSION_SECONDS`` (at most once every
        ``SWEEP_EVERY_S`` unless ``force``); returns those removed."""
        now = time.time() if now is None else now
        with self._lock:
            if not force and time.monotonic() - self._last_sweep < SWEEP_EVERY_S:
                return []
            self._last_sweep = time.monotonic()
        removed = []
        sessions = self.root / "sessions"
        if sessions.is_dir():
            for folder in sessions.iterdir():
                try:
                    idle = now - folder.stat().st_mtime
                except OSError:
                    continue
                if idle > limits.TRAIN_SESSION_SECONDS:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
        return removed

    def remove_stale_staging(self) -> list[Path]:
        """Staging folders of studio processes that are gone (a kill during a training); at app start."""
        removed = []
        staging = self.root / "staging"
        if staging.is_dir():
            for folder in staging.iterdir():
                pid = folder.name.split("-", 1)[0]
                if not (pid.isdigit() and _alive(int(pid))):
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
        return removed


def _listed(folder: Path) -> dict[str, Path]:
    """name -> folder of the finished models directly under ``folder`` (a half-installed ``.x.partial`` is not one)."""
    if not folder.is_dir():
        return {}
    return {path.name: path for path in sorted(folder.iterdir()) if path.is_dir() and not path.name.startswith(".")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
