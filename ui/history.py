"""Session history: every result a browser session (or a gradio_client) made, and "Download all" as one zip.

``model_event`` records each finished model run here, in the server process (on ZeroGPU the run
itself happens in a worker process: what comes back are the saved files, whose WAV comment or PNG
text chunk carries the parameters, so those are read from the files). Sessions are told apart by
gradio's session hash; each keeps its ``MAX_ENTRIES`` newest results and the ``MAX_SESSIONS`` most
recently active sessions are kept. The files themselves live in the studio's output folders, which
keep the 64 newest requests (all sessions together) for up to an hour: an older file is listed in
the zip's ``session.json`` as expired instead of being packed.

A result can be run again from the History tab with the same arguments (``rerun``): each endpoint's
handler is remembered as ``model_event`` wires it, so a re-run is the tab's own run, files and all.

The History tab and its ``/download_session`` endpoint are ``ui/history_tab.py``: this module is the
store alone, so ``common.model_event`` records here without an import circle (history_tab imports
common and this module; neither of them imports it).
"""

from __future__ import annotations

import functools
import json
import threading
import time
import zipfile
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from core.errors import InputError
from pipelines.signal import audio as audio_io
from pipelines.schema import outputs

MAX_ENTRIES = 50  # results kept per session, newest first
MAX_SESSIONS = 256  # sessions kept, least recently active dropped first


@dataclass
class Entry:
    """One result: which endpoint made it, when (Unix seconds), its files (audio and images) and parameters."""

    endpoint: str
    created: float
    files: list[str]
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: tuple = ()  # the handler's arguments, for a re-run with the same settings

    @property
    def audio(self) -> str | None:
        return next((f for f in self.files if f.endswith(".wav")), None)

    @property
    def images(self) -> list[str]:
        return [f for f in self.files if f.endswith(".png")]

    def label(self, number: int) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.created))
        return f"{number}. {stamp} {self.endpoint}"


_sessions: OrderedDict[str, deque[Entry]] = OrderedDict()
_handlers: dict[str, Callable] = {}  # endpoint -> its handler as model_event runs it (re-runs call it again)
_lock = threading.Lock()


def session_of(request: Any = None) -> str:
    """The session hash of ``request``, else of the event being run (gradio's context), else "default"."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    return getattr(request, "session_hash", None) or "default"


def _output_files(value: Any) -> list[str]:
    """Every path in a handler's return value that is a file the studio saved (WAV or PNG)."""
    found: list[str] = []
    items = value if isinstance(value, (tuple, list)) else [value]
    root = Path(outputs.OUTPUT_ROOT).resolve()
    for item in items:
        if isinstance(item, (tuple, list)):
            found.extend(_output_files(item))
        elif isinstance(item, str) and item.endswith((".wav", ".png")):
            path = Path(item).resolve()
            if root in path.parents and path.is_file():
                found.append(str(path))
    return list(dict.fromkeys(found))


def _parameters(files: list[str]) -> dict[str, Any]:
    """The parameters saved with the first file that has them (WAV INFO comment, PNG text chunk)."""
    for path in files:
        try:
            saved = audio_io.read_wav_metadata(path) if path.endswith(".wav") else outputs.read_png_parameters(path)
        except Exception:  # noqa: BLE001  (a file without metadata: try the next)
            saved = None
        if saved:
            return dict(saved)
    return {}


def _plain(args: tuple) -> tuple:
    """The handler's own arguments: gradio appends its request and progress objects, which are dropped."""
    kept = list(args)
    while kept and not isinstance(kept[-1], (str, int, float, bool, list, dict, type(None))):
        kept.pop()
    return tuple(kept)


def record(endpoint: str, value: Any, session: str | None = None, inputs: tuple = ()) -> Entry | None:
    """Add a handler's saved files to the session's history; None when it returned no files (cancelled).
    ``inputs``: the handler's arguments, kept for ``rerun``."""
    files = _output_files(value)
    if not files:
        return None
    entry = Entry(endpoint=endpoint, created=time.time(), files=files, parameters=_parameters(files),
                  inputs=_plain(inputs))
    key = session or session_of()
    with _lock:
        entries = _sessions.pop(key, None) or deque(maxlen=MAX_ENTRIES)
        entries.appendleft(entry)
        _sessions[key] = entries  # most recently active last
        while len(_sessions) > MAX_SESSIONS:
            _sessions.popitem(last=False)
    return entry


def entries(session: str | None = None) -> list[Entry]:
    """The session's results, newest first."""
    with _lock:
        return list(_sessions.get(session or session_of(), ()))


def recording(fn: Callable, endpoint: str) -> Callable:
    """``fn`` (a handler) whose saved files are recorded in the calling session's history."""
    _handlers[endpoint] = fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        value = fn(*args, **kwargs)
        try:
            record(endpoint, value, inputs=args)
        except Exception:  # noqa: BLE001  (history must never fail a run that worked)
            pass
        return value

    return wrapper


def rerun(entry: Entry, session: str | None = None) -> Entry:
    """Run ``entry``'s endpoint again with the same arguments (same settings and seed); the new result
    joins the session's history. InputError when it cannot be re-run (its handler is gone, or it
    returned nothing, e.g. cancelled)."""
    handler = _handlers.get(entry.endpoint)
    if handler is None or not entry.inputs:
        raise InputError(f"This {entry.endpoint} result cannot be run again here.")
    made = record(entry.endpoint, handler(*entry.inputs), session=session, inputs=entry.inputs)
    if made is None:
        raise InputError("The re-run made no result (was it cancelled?).")
    return made


def parameter_rows(entry: Entry) -> list[list[str]]:
    """An entry's endpoint and parameters as (name, value) rows for people: numbers as written, lists and
    tables on one line ("pop 0.48, rock 0.21"), nested settings as "mask invert", "mask contrast"."""
    rows = [["endpoint", entry.endpoint]]

    def add(name: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                add(f"{name} {key}".strip(), item)
        elif isinstance(value, (list, tuple)):
            rows.append([name, ", ".join(" ".join(_text(part) for part in item) if isinstance(item, (list, tuple))
                                         else _text(item) for item in value)])
        else:
            rows.append([name, _text(value)])

    for key, value in entry.parameters.items():
        add(key, value)
    return rows


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def forget(request: gr.Request = None) -> None:
    """The page closed: drop its session's history."""
    with _lock:
        _sessions.pop(session_of(request), None)


def write_zip(session_entries: list[Entry], folder: Path | None = None) -> str:
    """A zip of the entries, oldest first: ``NN-endpoint/<file>`` for each result's files and
    ``session.json`` (endpoint, ISO time, parameters, packed and expired files of each)."""
    folder = folder or outputs.new_output_dir()
    path = Path(folder) / f"session-{time.strftime('%Y%m%d-%H%M%S')}.zip"
    listing = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number, entry in enumerate(reversed(session_entries), start=1):
            prefix = f"{number:02d}-{entry.endpoint}"
            packed, expired = [], []
            for file in entry.files:
                if Path(file).is_file():
                    name = f"{prefix}/{Path(file).name}"
                    archive.write(file, name)
                    packed.append(name)
                else:
                    expired.append(Path(file).name)
            listing.append({"endpoint": entry.endpoint,
                            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(entry.created)),
                            "parameters": entry.parameters, "files": packed, "expired": expired})
        archive.writestr("session.json", json.dumps({"results": listing}, indent=2, default=str))
    return str(path)
