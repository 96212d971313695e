"""Upload budgets: ``/gradio_api/upload`` refused in the studio's words before the bytes reach the disk.

Gradio limits one file's size (``max_file_size``) but not how many files, or bytes, one client may
send, and keeps every upload for its sweep age (``limits.CACHE_SWEEP``, 15 minutes): one client sent
319 files of 49 MB in 60 s. :class:`UploadBudget` (ASGI middleware, installed by ``app.LAUNCH_OPTIONS``)
gives each client (its IP address; on a Space the first ``X-Forwarded-For`` entry, which the Space's
proxy sets) a budget and the whole temp folder one:

* ``limits.UPLOAD_BYTES_PER_MINUTE`` per client over the last 60 s: HTTP 429;
* ``limits.UPLOAD_FILES_WAITING`` per client: its uploads still in the temp folder: HTTP 429;
* ``limits.TEMP_BUDGET_BYTES`` for gradio's temp folder, uploads in flight included: HTTP 413.

A request is refused from its ``Content-Length`` before any byte is read; its streamed bytes are
counted as well (a chunked or lying request is cut off where it passes the budget, and gradio's
parser removes the part it wrote). The response body is our message, as plain text.

A file given by address (``handle_file("https://...")``) spends the same budgets: the middleware puts
itself in every HTTP request's scope (``SCOPE_KEY``), and ``ui.file_urls`` finds it in the scope of
the request that queued the event (``admit``, ``take``, ``settle``: the same accounting).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from core.disk import folder_bytes
from pipelines.schema import limits

log = logging.getLogger("studio.uploads")

UPLOAD_PATH = "/gradio_api/upload"
SCOPE_KEY = "studio.upload_budget"  # where each HTTP request's scope carries the budget that counts it
_WINDOW_SECONDS = 60.0
_FOLDER_SCAN_SECONDS = 2.0  # the temp folder's size is measured at most this often (plus what arrives since)


class Refused(Exception):
    """A budget refused more bytes; ``status`` is the HTTP status an upload gets (429 or 413)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _Client:
    def __init__(self) -> None:
        self.sent: deque[tuple[float, int]] = deque()  # (time, bytes) of its uploads in the last minute
        self.in_flight = 0
        self.files: set[str] = set()  # paths gradio saved for it (those gone from the disk are dropped)

    def bytes_last_minute(self, now: float) -> int:
        while self.sent and now - self.sent[0][0] > _WINDOW_SECONDS:
            self.sent.popleft()
        return sum(size for _, size in self.sent) + self.in_flight

    def files_waiting(self) -> int:
        self.files = {path for path in self.files if os.path.exists(path)}
        return len(self.files)


def _megabytes(size: float) -> str:
    return f"{size / 2**20:.0f} MB"


class UploadBudget:
    """ASGI middleware enforcing the upload budgets above on ``POST /gradio_api/upload``."""

    def __init__(self, app: Any, temp_dir: str | None = None):
        self.app = app
        from gradio.utils import get_upload_folder  # where gradio keeps uploads (GRADIO_TEMP_DIR)

        self.temp_dir = temp_dir or get_upload_folder()
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()
        self._folder = (0.0, 0)  # (measured at, bytes)

    # -- accounting (uploads and files fetched by address alike) -------------------------------------------
    def client_key(self, scope: dict) -> str:
        """Who a request's bytes count for: its IP address (on a Space the first X-Forwarded-For entry)."""
        headers = dict(scope.get("headers") or [])
        forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1")
        if forwarded and (os.environ.get("SPACE_ID") or os.environ.get("SYSTEM") == "spaces"):
            return forwarded.split(",")[0].strip()
        client = scope.get("client")
        return client[0] if client else "unknown"

    def _folder_bytes(self) -> int:
        now = time.monotonic()
        if now - self._folder[0] > _FOLDER_SCAN_SECONDS:
            self._folder = (now, folder_bytes(self.temp_dir))
        return self._folder[1]

    def _in_flight(self) -> int:
        return sum(client.in_flight for client in self._clients.values())

    def _check(self, client: _Client, more: int, *, new_request: bool, this: str) -> None:
        """Raise Refused if ``more`` bytes for ``client`` would pass a budget; ``this`` names the file in
        the message ("this upload")."""
        per_minute, files_waiting, budget = (limits.UPLOAD_BYTES_PER_MINUTE, limits.UPLOAD_FILES_WAITING,
                                             limits.TEMP_BUDGET_BYTES)
        if new_request and client.files_waiting() >= files_waiting:
            raise Refused(429, f"Too many uploads: you have {len(client.files)} uploaded files waiting on the "
                               f"studio (at most {files_waiting} per user; files given by address count too). Use "
                               f"them, or try again in {limits.CACHE_SWEEP[1] // 60} minutes, when they are removed.")
        sent = client.bytes_last_minute(time.monotonic())
        if sent + more > per_minute:
            raise Refused(429, f"Too many uploads: you sent {_megabytes(sent)} in the last minute and {this} "
                               f"would pass the limit of {_megabytes(per_minute)} per minute per user (files "
                               "given by address count too). Wait a minute and try again.")
        used = self._folder_bytes() + self._in_flight()
        if used + more > budget:
            raise Refused(413, f"The studio's upload space is full ({_megabytes(used)} of "
                               f"{_megabytes(budget)} in use). Please try again in a few minutes.")

    def admit(self, key: str, declared: int, this: str = "this upload") -> _Client:
        """The client ``key`` about to send ``declared`` bytes (0: not said): its accounting entry, or
        Refused when a budget is already spent (files waiting, bytes per minute, the folder)."""
        with self._lock:
            client = self._clients.setdefault(key, _Client())
            self._check(client, max(declared, 0), new_request=True, this=this)
            return client

    def take(self, client: _Client, size: int, this: str = "this upload") -> None:
        """``size`` more bytes arrived for ``client``: counted in flight, or Refused (nothing counted)."""
        with self._lock:
            self._check(client, size, new_request=False, this=this)
            client.in_flight += size

    def settle(self, client: _Client, streamed: int, kept: int, paths: list[str]) -> None:
        """A transfer ended: its ``streamed`` bytes leave the in-flight count for the last minute's, the
        ``kept`` bytes join the folder's, and the files it left (``paths``) count as waiting."""
        with self._lock:
            client.in_flight -= streamed
            client.sent.append((time.monotonic(), streamed))
            self._folder = (self._folder[0], self._folder[1] + kept)
            client.files.update(paths)
            if len(self._clients) > 1000:  # forget clients with nothing left to count
                now = time.monotonic()
                for other in [k for k, c in self._clients.items()
                              if not c.in_flight and not c.bytes_last_minute(now) and not c.files_waiting()]:
                    del self._clients[other]

    # -- ASGI ------------------------------------------------------------------------------------------------
    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            scope[SCOPE_KEY] = self  # a file the request's event fetches by address counts here too
        if scope.get("type") != "http" or scope.get("method") != "POST" or not scope.get("path", "").endswith(
                UPLOAD_PATH):
            return await self.app(scope, receive, send)
        key = self.client_key(scope)
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b"") or -1)
        except ValueError:
            declared = -1
        try:
            client = self.admit(key, declared)
        except Refused as refusal:  # before a byte of the body is read
            log.warning("upload refused (%s): %s", key, refusal.message)
            return await _plain(send, refusal.status, refusal.message)

        state = {"refused": None, "status": None, "body": b"", "streamed": 0}

        async def counted_receive() -> dict:
            message = await receive()
            if message.get("type") == "http.request":
                size = len(message.get("body", b""))
                try:
                    self.take(client, size)
                except Refused as refused:
                    state["refused"] = refused
                    from gradio.route_utils import MultiPartException  # gradio's parser then removes its part files

                    raise MultiPartException(refused.message) from None
                state["streamed"] += size
            return message

        async def watched_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                if state["refused"] is not None:  # gradio answers its parser's error with 400: ours is 429/413
                    message = {**message, "status": state["refused"].status}
                state["status"] = message["status"]
                if message["status"] == 413 and state["refused"] is None:  # gradio's max_file_size: our words
                    state["too_large"] = True
                    return None
            elif message["type"] == "http.response.body" and state.get("too_large"):
                if not message.get("more_body", False):
                    log.warning("upload refused (%s): %s", key, TOO_LARGE)
                    await _plain(send, 413, TOO_LARGE)
                return None
            elif message["type"] == "http.response.body" and state["status"] == 200:
                state["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        finally:
            self.settle(client, state["streamed"], state["streamed"],
                        _saved_paths(state["body"]) if state["status"] == 200 else [])
            if state["refused"] is not None:
                log.warning("upload cut off (%s): %s", key, state["refused"].message)


# one file over gradio's max_file_size (app.py sets it to limits.MAX_UPLOAD_BYTES), as gradio refuses it
TOO_LARGE = (f"The file is larger than the {limits.MAX_UPLOAD_BYTES // 2**20} MB an upload may be. Send a shorter "
             "clip or a smaller image (a WAV of a few minutes is well under it; MP3, OGG or FLAC are smaller).")


def _saved_paths(body: bytes) -> list[str]:
    import json

    try:
        paths = json.loads(body)
    except ValueError:
        return []
    return [str(path) for path in paths if isinstance(path, str)] if isinstance(paths, list) else []


async def _plain(send: Any, status: int, message: str) -> None:
    body = message.encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def temp_folder() -> Path:
    """Gradio's temp folder (GRADIO_TEMP_DIR, else <system temp>/gradio)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


_OWN_PREFIX = "studio-"  # <gradio temp>/studio-<pid>: one process's own temp folder
_claimed: list[Path] = []


def claim_temp_folder() -> tuple[Path, int, int]:
    """Give this process its own gradio temp folder, ``<GRADIO_TEMP_DIR or /tmp/gradio>/studio-<pid>``
    (set as ``GRADIO_TEMP_DIR``: call before building the demo), and remove what earlier processes
    left: the folders of studio processes that are gone, and this folder's own files when an earlier
    process had the same pid (a restarted container). gradio's sweep only knows the files of its own
    process, and a folder per process tells whose files are whose, so another app sharing the base
    folder loses nothing. The folder is 0700: what visitors sent and got is the server user's alone.
    Returns (folder, files removed, bytes removed). Called at app start.
    """
    import shutil

    if _claimed:  # a second start in this process (a notebook): its files belong to the first demo
        return _claimed[0], 0, 0
    base = Path(os.environ.get("GRADIO_TEMP_DIR") or temp_folder())
    mine = base / f"{_OWN_PREFIX}{os.getpid()}"
    files = size = 0
    for folder in base.glob(f"{_OWN_PREFIX}*") if base.is_dir() else ():
        owner = folder.name[len(_OWN_PREFIX):]
        if not owner.isdigit() or (folder != mine and _alive(int(owner))):
            continue
        for directory, _, names in os.walk(folder):
            for name in names:
                try:
                    size += os.lstat(os.path.join(directory, name)).st_size
                    files += 1
                except OSError:
                    pass
        shutil.rmtree(folder, ignore_errors=True)
    mine.mkdir(parents=True, exist_ok=True)
    # visitors' uploads and results live below: only the server's own user may read them (on a shared
    # host the base folder is everyone's /tmp; gradio serves the files from this process)
    mine.chmod(0o700)
    os.environ["GRADIO_TEMP_DIR"] = str(mine)
    _claimed.append(mine)
    return mine, files, size


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
