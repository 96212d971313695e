"""What every batch command shares: input folders, the studio, sharding across processes, and
resumable per-item CSV files.

Sharding: under ``accelerate launch`` (``WORLD_SIZE`` > 1) each process takes the items whose index
in the full, deterministic item list is its rank modulo the process count, on its own device
(``cuda:<local rank>`` on a GPU node, the CPU otherwise), and appends each finished item at once to
``items.<rank>-of-<count>.csv``. After a barrier the first process reads every items file in the
folder, keeps one row per item key and writes ``items.csv``, from which the summary is made. A rerun
(with any process count) skips every key already in any items file: an interrupted run resumes.
Every item runs with fixed seeds, so which process ran it does not change its numbers.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InputError

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aiff", ".aif")


def audio_files(folder: str | Path, what: str = "sounds") -> list[Path]:
    """The audio files directly in ``folder``, sorted by name. InputError for a missing or empty folder."""
    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"The folder of {what} {str(folder)!r} does not exist (or is not a folder).")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise InputError(f"The folder {str(folder)!r} holds no audio files ({', '.join(AUDIO_SUFFIXES)}).")
    return files


@dataclass
class Shard:
    """This process's place among the processes of one run."""

    rank: int = 0
    count: int = 1
    device: str | None = None  # None: the studio chooses (auto)
    state: Any = None  # accelerate's PartialState when launched by accelerate

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mine(self, items: Sequence[Any]) -> list[Any]:
        return [item for index, item in enumerate(items) if index % self.count == self.rank]

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def current_shard(device: str | None = None) -> Shard:
    """The shard of this process: one process, or accelerate's ranks when ``WORLD_SIZE`` > 1.

    On CPU-only machines accelerate is started with ``cpu=True`` (gloo), so
    ``accelerate launch --multi_gpu --num_processes 2`` also shards on a CPU.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Shard(device=device)
    import torch
    from accelerate import PartialState

    cpu = device == "cpu" or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    if device in (None, "auto") and not cpu:
        device = f"cuda:{state.local_process_index}"
    return Shard(rank=state.process_index, count=state.num_processes, device=device or "cpu", state=state)


def make_studio(profile: str, device: str | None):
    from pipelines.studio import Studio

    return Studio(profile=profile, device=device)


class ItemTable:
    """Per-item rows of one run in ``out_dir``, keyed by ``key_fields``; see the module docstring."""

    def __init__(self, out_dir: str | Path, fields: Sequence[str], key_fields: Sequence[str], shard: Shard):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fields = list(fields)
        self.key_fields = list(key_fields)
        self.shard = shard
        self.path = self.out_dir / f"items.{shard.rank}-of-{shard.count}.csv"

    def key(self, row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(row[k]) for k in self.key_fields)

    def _files(self) -> list[Path]:
        return sorted(self.out_dir.glob("items.*-of-*.csv"))

    def rows(self) -> list[dict[str, str]]:
        """Every row written by any process of any run in this folder, one per key (the first wins)."""
        seen: dict[tuple[str, ...], dict[str, str]] = {}
        for path in self._files():
            with path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    if all(k in row for k in self.key_fields):
                        seen.setdefault(self.key(row), row)
        return [seen[k] for k in sorted(seen)]

    def done(self) -> set[tuple[str, ...]]:
        return {self.key(row) for row in self.rows()}

    def append(self, row: dict[str, Any]) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _cell(row.get(k)) for k in self.fields})

    def gather(self) -> list[dict[str, str]]:
        """Write ``items.csv`` (all rows, sorted by key) and return its rows."""
        rows = self.rows()
        write_csv(self.out_dir / "items.csv", self.fields, rows)
        return rows


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)  # NaN: empty; repr keeps every digit
    return "" if value is None else value


def write_csv(path: str | Path, fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> Path:
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in fields})
    return path


def as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def progress(items: Sequence[Any], shard: Shard, desc: str):
    """A tqdm bar per process (one line each), on stderr."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=f"{desc} [{shard.rank + 1}/{shard.count}]" if shard.count > 1 else desc,
                position=shard.rank, leave=True, dynamic_ncols=True)
