"""``python -m evaluation ablation``: the mask paper's ablation on a folder of sounds.

Each sound runs through sound to music once per value of each swept mask setting (downshift, and
brightness / contrast when asked), the other settings at ``--base`` values (the paper's defaults);
every output is compared with its input (``metrics.pair_metrics``, ``--mode paper`` by default) and
written as one row of ``items.csv``. Then:

* ``summary.csv``: per sweep and value, n and mean +- SEM of every metric;
* ``ttests.csv``: per sweep, every pair of values, every metric: paired t-test over the sounds both
  have, mean difference and Cohen's d_z (``stats.paired_test``);
* ``<sweep>.png``: the means with SEM error bars against the swept value, as the paper's figures;
* ``audio/<sweep>=<value>/<sound>.wav``: the outputs, with their parameters in the WAV comment.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipelines.signal import audio as audio_io
from pipelines.signal import metrics
from pipelines.schema.settings import SoundToMusicSettings

from . import stats
from .pair import clap_values, load_44k
from .plot import error_bar_plot
from .runner import ItemTable, as_float, audio_files, current_shard, make_studio, progress, write_csv

SWEEPS = ("downshift", "brightness", "contrast")
DEFAULT_DOWNSHIFTS = (0.0, 40.0, 80.0, 150.0, 200.0)
PAIR_METRICS = ("ssim", "chroma_cens")
CLAP_METRICS = ("content_preservation", "clap_score")


def item_fields(with_clap: bool) -> list[str]:
    return ["sweep", "value", "file", "output", *PAIR_METRICS, *(CLAP_METRICS if with_clap else ())]


def run_ablation(sounds: str | Path, out_dir: str | Path, sweeps: dict[str, list[float]], *,
                 base: SoundToMusicSettings | None = None, model: str = "mask_model",
                 mode: str = "paper", with_clap: bool = False, profile: str = "hub",
                 device: str | None = None, studio=None) -> dict[str, Any] | None:
    """Run (or resume) the ablation; returns the summary on the first process, None on the others.

    ``studio``: a ``pipelines.studio.Studio`` to run on (default: one made for ``profile`` and this
    process's device, only when some item is left to run).
    ``sweeps`` maps a setting in ``SWEEPS`` to its values; ``base`` holds every other setting (None: the
    tab's defaults, the paper's). InputError for an unknown sweep, a value out
    of the setting's range, or a missing/empty folder (all before any model loads).
    """
    from core.errors import InputError

    base = base or SoundToMusicSettings()
    files = audio_files(sounds)
    unknown = set(sweeps) - set(SWEEPS)
    if unknown or not sweeps:
        raise InputError(f"Sweep one or more of {', '.join(SWEEPS)}; got {', '.join(sorted(unknown)) or 'none'}.")
    if mode not in metrics.PAIR_MODES:
        raise InputError(f"Unknown metrics mode {mode!r}: use one of {', '.join(metrics.PAIR_MODES)}.")
    settings_of = {}
    for sweep, values in sweeps.items():
        for value in values:
            settings = replace(base, mask=replace(base.mask, **{sweep: float(value)}))
            settings.validate()
            settings_of[(sweep, float(value))] = settings
    items = [(sweep, value, path) for (sweep, value) in settings_of for path in files]

    shard = current_shard(device)
    out_dir = Path(out_dir)
    table = ItemTable(out_dir, item_fields(with_clap), ["sweep", "value", "file"], shard)
    done = table.done()
    todo = [item for item in shard.mine(items) if (item[0], repr(item[1]), item[2].name) not in done]
    if todo and studio is None:
        studio = make_studio(profile, shard.device)
    for sweep, value, path in progress(todo, shard, "ablation"):
        settings = settings_of[(sweep, value)]
        result = studio.sound_to_music(str(path), settings, model)
        target = out_dir / "audio" / f"{sweep}={value:g}" / f"{path.stem}.wav"
        audio_io.write_wav(target, audio_io.Audio(result.audio, result.sample_rate),
                           {**result.parameters, "metrics": result.metrics})
        reference = load_44k(path)
        row: dict[str, Any] = {"sweep": sweep, "value": value, "file": path.name,
                               "output": str(target.relative_to(out_dir)),
                               **metrics.pair_metrics(reference, result.audio[0], mode, result.sample_rate)}
        if with_clap:
            row.update(clap_values(studio, reference, result.audio[0], result.sample_rate, settings.prompt))
        table.append(row)
    shard.wait()
    if not shard.is_main:
        return None
    return summarise(table.gather(), out_dir, with_clap)


def summarise(rows: list[dict[str, str]], out_dir: str | Path, with_clap: bool = False) -> dict[str, Any]:
    """Write summary.csv, ttests.csv and one PNG per sweep from the gathered rows; return the tables."""
    out_dir = Path(out_dir)
    names = [*PAIR_METRICS, *(m for m in CLAP_METRICS if with_clap and any(r.get(m) for r in rows))]
    by_setting: dict[tuple[str, float], dict[str, dict[str, float]]] = {}
    for row in rows:
        by_setting.setdefault((row["sweep"], float(row["value"])), {})[row["file"]] = {
            m: as_float(row.get(m)) for m in names}
    summary = []
    for (sweep, value), per_file in sorted(by_setting.items()):
        entry: dict[str, Any] = {"sweep": sweep, "value": value, "n": len(per_file)}
        for m in names:
            entry[f"{m}_mean"], entry[f"{m}_sem"] = stats.mean_sem([v[m] for v in per_file.values()])
        summary.append(entry)
    write_csv(out_dir / "summary.csv",
              ["sweep", "value", "n", *itertools.chain.from_iterable((f"{m}_mean", f"{m}_sem") for m in names)],
              summary)

    tests = []
    sweeps = sorted({sweep for sweep, _ in by_setting})
    for sweep in sweeps:
        values = sorted(v for s, v in by_setting if s == sweep)
        for a, b in itertools.combinations(values, 2):
            left, right = by_setting[(sweep, a)], by_setting[(sweep, b)]
            common = sorted(set(left) & set(right))
            for m in names:
                result = stats.paired_test([left[f][m] for f in common], [right[f][m] for f in common])
                tests.append({"sweep": sweep, "value_a": a, "value_b": b, "metric": m, **result})
        rows_of = [s for s in summary if s["sweep"] == sweep]
        error_bar_plot(out_dir / f"{sweep}.png", sweep, [s["value"] for s in rows_of],
                       {m: ([s[f"{m}_mean"] for s in rows_of], [s[f"{m}_sem"] for s in rows_of]) for m in names},
                       title=f"Mask ablation: {sweep} ({rows_of[0]['n'] if rows_of else 0} sounds)")
    write_csv(out_dir / "ttests.csv", ["sweep", "value_a", "value_b", "metric", "n", "mean_diff", "t", "p",
                                       "cohens_d"], tests)
    return {"items": len(rows), "summary": summary, "ttests": tests,
            "plots": [str(out_dir / f"{sweep}.png") for sweep in sweeps]}
