"""``python -m studio batch``: one sound-making pipeline over a folder, resumable, sharded over processes.

Each input file runs through the same Studio method the app's tab calls, with the same settings
dataclass (its defaults, changed by ``key=value`` pairs and checked by its ``validate()``), and its
result is written as the app writes it (``outputs.save_result``: the WAV with every parameter in its
comment, the pictures as PNG) into ``OUT_DIR/<input stem>/``. The folder appears only once complete
(written beside it, then renamed), and a row per finished input goes to the items table.

Sharding and resuming are ``evaluation.runner``'s: under ``accelerate launch`` each process takes
the inputs whose index is its rank modulo the process count, on its own device, and appends to
``items.<rank>-of-<count>.csv``; after a barrier the first writes ``items.csv`` and ``summary.json``.
A rerun with any process count skips every input already in an items file, so an interrupted batch
resumes where it stopped. ``batch.json`` records the pipeline and settings: a rerun with other settings
into the same folder is refused (its outputs would mix). Every input runs with the settings' fixed
seed, so which process ran it does not change its files.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import Cancelled, InputError, StudioError
from evaluation.runner import AUDIO_SUFFIXES, ItemTable, current_shard, make_studio, progress

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
FIELDS = ["file", "output", "seconds", "error"]


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _floats(text: str) -> list[float]:
    return [float(value) for value in _names(text)]


@dataclass(frozen=True)
class Pipeline:
    """How the batch runs one pipeline: its settings class, what its inputs are, the options that are
    not settings (name -> parser of the text), the Studio call, and the file name the app saves under."""

    settings: Callable[[], Any]
    inputs: str  # "sounds" or "pictures"
    run: Callable[[Any, str, Any, dict[str, Any]], Any]
    save_name: str
    options: dict[str, Callable[[str], Any]] = field(default_factory=dict)
    required: tuple[str, ...] = ()


def _pipelines() -> dict[str, Pipeline]:
    from pipelines.systems.extend import ExtendSettings
    from pipelines.schema.settings import ImageToMusicSettings, SoundToMusicSettings, StyleInterpolationSettings

    return {
        "sound_to_music": Pipeline(
            SoundToMusicSettings, "sounds", lambda studio, path, settings, options: studio.sound_to_music(
                path, settings, model=options.get("model", "mask_model")), "music", {"model": str}),
        "style_interpolation": Pipeline(
            StyleInterpolationSettings, "sounds", lambda studio, path, settings, options: studio.style_interpolation(
                path, options["styles"], options.get("weights"), settings), "styled",
            {"styles": _names, "weights": _floats}, required=("styles",)),
        "extend_music": Pipeline(
            ExtendSettings, "sounds", lambda studio, path, settings, options: studio.extend_music(path, settings),
            "extended"),
        "image_to_music": Pipeline(
            ImageToMusicSettings, "pictures", lambda studio, path, settings, options: studio.image_to_music(
                path, options.get("prompt"), settings), "image-to-music", {"prompt": str}),
    }


PIPELINES = _pipelines()


# -- settings from key=value ----------------------------------------------------------------------------------


def _convert(key: str, raw: str, default: Any) -> Any:
    """``raw`` as the type of the field's ``default`` (None defaults take numbers or 'none')."""
    try:
        if isinstance(default, bool):
            words = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False,
                     "0": False}
            return words[raw.strip().lower()]
        if isinstance(default, int):
            number = float(raw)
            if not number.is_integer():
                raise ValueError(raw)
            return int(number)
        if isinstance(default, float) or default is None:
            return None if default is None and raw.strip().lower() in ("", "none") else float(raw)
        return raw
    except (KeyError, ValueError):
        kind = {bool: "true or false", int: "a whole number"}.get(type(default), "a number")
        raise InputError(f"The setting {key} must be {kind}; got {raw!r}.") from None


def _with(settings: Any, path: list[str], raw: str, key: str, known: str) -> Any:
    fields = {f.name for f in dataclasses.fields(settings)}
    if path[0] not in fields:
        raise InputError(f"Unknown setting {key!r}: use {known}.")
    current = getattr(settings, path[0])
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise InputError(f"Unknown setting {key!r}: use {known}.")
        return dataclasses.replace(settings, **{path[0]: _with(current, path[1:], raw, key, known)})
    if dataclasses.is_dataclass(current):
        raise InputError(f"The setting {key} has parts: give them as {key}.<part>=value.")
    return dataclasses.replace(settings, **{path[0]: _convert(key, raw, current)})


def _keys(settings: Any, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        keys += _keys(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else [prefix + f.name]
    return keys


def parse_settings(pipeline: str, pairs: list[str]) -> tuple[Any, dict[str, Any]]:
    """(settings, options) of ``pipeline`` from ``key=value`` texts, validated. InputError for an unknown
    pipeline or key, a value of the wrong type or out of range, or a required option left out."""
    if pipeline not in PIPELINES:
        raise InputError(f"Unknown pipeline {pipeline!r}: use one of {', '.join(sorted(PIPELINES))}.")
    spec = PIPELINES[pipeline]
    settings, options = spec.settings(), {}
    known = ", ".join([*_keys(settings), *spec.options])
    for pair in pairs:
        key, equals, raw = pair.partition("=")
        key = key.strip()
        if not equals or not key:
            raise InputError(f"Settings are given as key=value; got {pair!r}.")
        if key in spec.options:
            try:
                options[key] = spec.options[key](raw)
            except ValueError:
                raise InputError(f"The option {key} could not be read from {raw!r}.") from None
        else:
            settings = _with(settings, key.split("."), raw, key, known)
    missing = [name for name in spec.required if not options.get(name)]
    if missing:
        raise InputError(f"{pipeline} needs {', '.join(f'{name}=...' for name in missing)}.")
    return settings.validate(), options


def describe_settings(pipeline: str) -> str:
    """The pipeline's settings with their defaults, one ``key=value`` a line, then its options."""
    spec = PIPELINES[pipeline]
    settings = spec.settings()
    lines = [f"{key}={_value(settings, key)!r}" for key in _keys(settings)]
    return "\n".join(lines + [f"{name}=... (option)" for name in spec.options])


def _value(settings: Any, key: str) -> Any:
    for part in key.split("."):
        settings = getattr(settings, part)
    return settings


# -- the run --------------------------------------------------------------------------------------------------


def input_files(folder: str | Path, kind: str) -> list[Path]:
    """The inputs directly in ``folder`` ("sounds" or "pictures"), sorted by name. InputError for a
    missing or empty folder, or two inputs with the same stem (their output folders would clash)."""
    path = Path(folder)
    suffixes = AUDIO_SUFFIXES if kind == "sounds" else IMAGE_SUFFIXES
    if not path.is_dir():
        raise InputError(f"The folder of {kind} {str(folder)!r} does not exist (or is not a folder).")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"The folder {str(folder)!r} holds no {kind} ({', '.join(suffixes)}).")
    stems: dict[str, str] = {}
    for file in files:
        if file.stem in stems:
            raise InputError(f"{stems[file.stem]} and {file.name} would both be written to {file.stem}/: rename one.")
        stems[file.stem] = file.name
    return files


def _check_same_batch(out_dir: Path, record: dict[str, Any], is_main: bool) -> None:
    path = out_dir / "batch.json"
    if path.exists():
        before = json.loads(path.read_text())
        if before != record:
            raise InputError(f"{out_dir} holds a {before.get('pipeline')} batch with other settings; resume it with "
                             "the same settings or write into another folder.")
    elif is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1, default=str))


def _write_item(result: Any, name: str, out_dir: Path, stem: str, rank: int) -> Path:
    from pipelines.schema.outputs import save_result

    final, partial = out_dir / stem, out_dir / f".partial-{rank}-{stem}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_result(result, name, partial)
    shutil.rmtree(final, ignore_errors=True)  # a folder left by a run stopped before its row was written
    partial.rename(final)
    return final


def run_batch(pipeline: str, in_dir: str | Path, out_dir: str | Path, pairs: list[str] | None = None, *,
              profile: str = "hub", device: str | None = None, studio=None) -> dict[str, Any] | None:
    """Run (or resume) ``pipeline`` over ``in_dir`` into ``out_dir``; the summary on the first process,
    None on the others.

    ``pairs``: ``key=value`` settings and options (``parse_settings``). ``studio``: the Studio to run on
    (default: one made for ``profile`` and this process's device, only when some input is left).
    An input the pipeline refuses (a broken or silent file) gets its message in the ``error`` column
    and the batch goes on; the settings, the folder and the inputs are checked before any model loads.
    """
    settings, options = parse_settings(pipeline, list(pairs or []))
    spec = PIPELINES[pipeline]
    files = input_files(in_dir, spec.inputs)
    out = Path(out_dir)
    shard = current_shard(device)
    record = {"pipeline": pipeline, "settings": settings.as_dict(), "options": options}
    _check_same_batch(out, record, shard.is_main)
    table = ItemTable(out, FIELDS, ["file"], shard)
    done = table.done()
    todo = [path for path in shard.mine(files) if (path.name,) not in done]
    if todo and studio is None:
        studio = make_studio(profile, shard.device)
    for path in progress(todo, shard, pipeline):
        try:
            result = spec.run(studio, str(path), settings, options)
        except Cancelled:
            raise
        except StudioError as error:
            table.append({"file": path.name, "error": str(error)})
            continue
        folder = _write_item(result, spec.save_name, out, path.stem, shard.rank)
        audio = result.audio_output()
        seconds = audio[0].shape[-1] / audio[1] if audio is not None else None
        table.append({"file": path.name, "output": folder.name, "seconds": seconds, "error": ""})
    shard.wait()
    if not shard.is_main:
        return None
    rows = table.gather()
    failed = {row["file"]: row["error"] for row in rows if row.get("error")}
    summary = {"pipeline": pipeline, "inputs": len(files), "made": len(rows) - len(failed), "failed": failed,
               "processes": shard.count, "out_dir": str(out), "settings": settings.as_dict(), "options": options}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary
