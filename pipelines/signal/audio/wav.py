"""Audio out: WAV files that carry the run's metadata as JSON, and reading that metadata back.

The JSON goes into a RIFF ``LIST/INFO`` chunk's ``ICMT`` comment.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from pipelines.signal.audio.clip import Audio

_WAV_SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")


def write_wav(path: str | os.PathLike, audio: Audio, metadata: dict | None = None, *, subtype: str = "PCM_16") -> Path:
    """Write ``audio`` as a WAV file (16-bit PCM by default; ``subtype`` ``"PCM_24"`` or
    ``"FLOAT"`` otherwise) with ``metadata`` stored as JSON in the LIST/INFO comment (ICMT).

    Samples are clipped to [-1, 1] for PCM. Returns the path written.
    """
    if subtype not in _WAV_SUBTYPES:
        raise ValueError(f"subtype must be one of {_WAV_SUBTYPES}, got {subtype!r}")
    if not np.isfinite(audio.samples).all():
        raise ValueError("audio contains NaN or infinite samples; refusing to write them")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = audio.samples.T
    if subtype != "FLOAT":
        # Clip here rather than trust each libsndfile build's float-to-int conversion to.
        data = np.clip(data, -1.0, 1.0)
    sf.write(str(path), data, audio.sample_rate, subtype=subtype, format="WAV")
    if metadata:
        # Written by hand: libsndfile drops comments longer than about 2 kB.
        _append_info_comment(path, json.dumps(metadata, default=_json_default, ensure_ascii=True))
    return path


def read_wav_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata that :func:`write_wav` stored; ``{}`` when there is none or it is not ours."""
    try:
        text = _read_info_comment(Path(path))
    except OSError:
        return {}
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _append_info_comment(path: Path, text: str) -> None:
    """Append a RIFF ``LIST/INFO`` chunk with an ``ICMT`` comment and fix the RIFF size."""
    payload = text.encode("ascii") + b"\0"
    if len(payload) % 2:
        payload += b"\0"  # RIFF chunks are word aligned
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(payload)) + payload
    chunk = b"LIST" + struct.pack("<I", len(info)) + info
    with open(path, "r+b") as f:
        header = f.read(12)
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise ValueError(f"{path} is not a RIFF/WAVE file")
        end = f.seek(0, os.SEEK_END)
        if end % 2:
            f.write(b"\0")
            end += 1
        f.write(chunk)
        f.seek(4)
        f.write(struct.pack("<I", end + len(chunk) - 8))


def _read_info_comment(path: Path) -> str | None:
    """The last ICMT text in the file's LIST/INFO chunks, walking the RIFF chunk list."""
    found = None
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            chunk_id, size = head[:4], struct.unpack("<I", head[4:])[0]
            if chunk_id == b"LIST":
                body = f.read(size)
                if body[:4] == b"INFO":
                    pos = 4
                    while pos + 8 <= len(body):
                        sub_id, sub_size = body[pos : pos + 4], struct.unpack("<I", body[pos + 4 : pos + 8])[0]
                        if sub_id == b"ICMT":
                            found = body[pos + 8 : pos + 8 + sub_size].split(b"\0", 1)[0].decode("latin-1")
                        pos += 8 + sub_size + (sub_size % 2)
                if size % 2:
                    f.seek(1, os.SEEK_CUR)
            else:
                f.seek(size + (size % 2), os.SEEK_CUR)  # skip the sample data without reading it
    return found
