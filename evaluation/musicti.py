"""``python -m evaluation musicti``: MusicTI's evaluation protocol on the style-interpolation tab.

For each content clip: every single style, and ``--pairs`` random pairs of styles at 0.5/0.5 (all
pairs when there are fewer; the draw is seeded per clip, so reruns and shards draw the same), each
rendered with MusicTI's settings (strength 0.7, 50 steps, guidance 5 unless changed). Each output
gets CLAP content preservation (against its content clip) and style fit against its styles' texts
("A music piece in the style of {style}"): for a pair the mean and the max of the two fits, for a
single style both equal its fit (``../shared/reference/seed-systems.md`` section 3).

Writes ``items.csv`` (one row per clip and style combination), ``summary.csv`` (n and mean +- SEM of
content preservation, style fit mean and max, for singles, pairs and all) and ``audio/`` outputs.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

from pipelines.signal import audio as audio_io
from pipelines.systems.style_interpolation import StyleInterpolationSettings

from . import stats
from .pair import clap_values, load_44k
from .runner import ItemTable, as_float, audio_files, current_shard, make_studio, progress, write_csv

FIELDS = ["file", "styles", "kind", "output", "content_preservation", "style_fit_mean", "style_fit_max"]
SCORES = ("content_preservation", "style_fit_mean", "style_fit_max")


def combinations_for(clip: str, styles: list[str], pairs: int, seed: int) -> list[tuple[str, ...]]:
    """Each single style, then ``pairs`` distinct random pairs drawn with a generator seeded by (seed, clip)."""
    all_pairs = list(itertools.combinations(styles, 2))
    chosen = random.Random(f"{seed}:{clip}").sample(all_pairs, min(pairs, len(all_pairs)))
    return [(s,) for s in styles] + sorted(chosen)


def run_musicti(contents: str | Path, out_dir: str | Path, *, styles: list[str] | None = None, pairs: int = 20,
                seed: int = 0, settings: StyleInterpolationSettings | None = None,
                profile: str = "hub", device: str | None = None, studio=None) -> dict[str, Any] | None:
    """Run (or resume) the protocol; returns the summary on the first process, None on the others.

    ``styles``: names in the styles folder (None: all of them); ``studio``: the studio to run on
    (default: one for ``profile`` on this process's device). InputError for an unknown style, a
    missing or empty folder, or settings out of range.
    """
    from core.errors import InputError

    files = audio_files(contents, "content clips")
    settings = (settings or StyleInterpolationSettings()).validate()
    shard = current_shard(device)
    studio = studio or make_studio(profile, shard.device)
    available = studio.style_names()
    names = list(styles) if styles else available
    missing = [s for s in names if s not in available]
    if missing or not names:
        raise InputError(f"Unknown style(s) {', '.join(missing) or '(none given)'}: the styles folder holds "
                         f"{', '.join(available) or 'none'}.")
    items = [(path, combo) for path in files for combo in combinations_for(path.name, names, pairs, seed)]
    out_dir = Path(out_dir)
    table = ItemTable(out_dir, FIELDS, ["file", "styles"], shard)
    done = table.done()
    todo = [(p, c) for p, c in shard.mine(items) if (p.name, "+".join(c)) not in done]
    for path, combo in progress(todo, shard, "musicti"):
        weights = [1.0 / len(combo)] * len(combo)
        result = studio.style_interpolation(str(path), list(combo), weights, settings)
        target = out_dir / "audio" / path.stem / f"{'+'.join(combo)}.wav"
        audio_io.write_wav(target, audio_io.Audio(result.audio, result.sample_rate), result.parameters)
        values = clap_values(studio, load_44k(path), result.audio[0], result.sample_rate, styles=list(combo))
        table.append({"file": path.name, "styles": "+".join(combo), "kind": "single" if len(combo) == 1 else "pair",
                      "output": str(target.relative_to(out_dir)), **values})
    shard.wait()
    if not shard.is_main:
        return None
    return summarise(table.gather(), out_dir)


def summarise(rows: list[dict[str, str]], out_dir: str | Path) -> dict[str, Any]:
    """summary.csv: per kind (single, pair, all): n and mean +- SEM of each score."""
    summary = []
    for kind in ("single", "pair", "all"):
        chosen = [r for r in rows if kind == "all" or r["kind"] == kind]
        if not chosen:
            continue
        entry: dict[str, Any] = {"kind": kind, "n": len(chosen)}
        for score in SCORES:
            entry[f"{score}_mean"], entry[f"{score}_sem"] = stats.mean_sem([as_float(r[score]) for r in chosen])
        summary.append(entry)
    write_csv(Path(out_dir) / "summary.csv",
              ["kind", "n", *itertools.chain.from_iterable((f"{s}_mean", f"{s}_sem") for s in SCORES)], summary)
    return {"items": len(rows), "summary": summary}
