"""Files a user downloads: every result written the same way, for the UI and for scripts alike.

Audio becomes a 16-bit WAV whose INFO comment holds the parameters and metrics as JSON
(``audio.read_wav_metadata`` reads them back); pictures become PNGs that keep a spectrogram's own
metadata (EXIF and text chunk) and add a ``parameters`` text chunk. Each request writes into a fresh
folder under ``OUTPUT_ROOT``; when a new one is made, folders older than ``OUTPUT_MAX_AGE_S`` are removed
and so are the oldest beyond ``limits.OUTPUT_MAX_FOLDERS`` (gradio copies a result's files into its own
cache as it answers, so only the latest few are still needed).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.signal import audio as audio_io
from pipelines.schema import limits
from pipelines.signal import spectrogram
from pipelines.schema.results import Result

OUTPUT_ROOT = Path(tempfile.gettempdir()) / "studio-outputs"
OUTPUT_MAX_AGE_S = 3600
PARAMETERS_KEY = "parameters"  # the PNG text chunk holding a result's parameters


@dataclass
class SavedResult:
    """Paths of a saved result: ``audio`` (WAV) or None, ``images`` name -> PNG path."""

    audio: str | None = None
    images: dict[str, str] = field(default_factory=dict)


def new_output_dir(root: Path | None = None, max_age_s: float = OUTPUT_MAX_AGE_S,
                   max_folders: int = limits.OUTPUT_MAX_FOLDERS) -> Path:
    """A fresh folder for one request's files. Sibling folders older than ``max_age_s`` are removed,
    and the oldest beyond ``max_folders - 1``, so ``root`` holds at most ``max_folders`` folders."""
    root = Path(root or OUTPUT_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    folders = []
    for old in root.iterdir():
        try:
            folders.append((old.stat().st_mtime, old))
        except OSError:  # another request removed it first
            pass
    folders.sort(reverse=True)  # newest first
    for rank, (mtime, old) in enumerate(folders):
        if rank >= max_folders - 1 or now - mtime > max_age_s:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root))


def _json(value: Any) -> str:
    def default(item: Any) -> Any:
        if hasattr(item, "tolist"):  # numpy scalars and arrays
            return item.tolist()
        return str(item)

    return json.dumps(value, default=default)


def save_png(image: Any, path: str | Path, parameters: dict[str, Any] | None = None) -> str:
    """Write ``image`` as PNG, keeping its spectrogram metadata, with ``parameters`` as JSON text."""
    text = {PARAMETERS_KEY: _json(parameters)} if parameters else None
    spectrogram.save_image(image, path, text=text)
    return str(path)


def read_png_parameters(path: str | Path) -> dict[str, Any]:
    """The parameters that ``save_png`` stored ({} when there are none)."""
    from PIL import Image

    with Image.open(path) as image:
        raw = image.info.get(PARAMETERS_KEY)
    return json.loads(raw) if raw else {}


def save_wav(samples: Any, sample_rate: int, path: str | Path, metadata: dict[str, Any] | None = None) -> str:
    """Write (channels, n) float samples as 16-bit WAV with ``metadata`` as JSON in its INFO comment."""
    return str(audio_io.write_wav(path, audio_io.Audio(samples, sample_rate), metadata))


def save_result(result: Result, name: str, folder: str | Path | None = None) -> SavedResult:
    """Write a result's audio (``<name>.wav``) and pictures (``<image name>.png``) into ``folder``
    (a fresh output folder when None), each with the result's parameters and metrics."""
    folder = Path(folder) if folder is not None else new_output_dir()
    metadata = {**result.parameters, "metrics": result.metrics} if result.metrics else dict(result.parameters)
    saved = SavedResult()
    audio = result.audio_output()
    if audio is not None:
        saved.audio = save_wav(audio[0], audio[1], folder / f"{name}.wav", metadata)
    for image_name, image in result.image_outputs().items():
        saved.images[image_name] = save_png(image, folder / f"{image_name}.png", metadata)
    return saved
