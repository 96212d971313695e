"""``python -m evaluation fad``: Fréchet audio distance of a folder of outputs against a reference folder.

As fadtk (microsoft/fadtk, ``fad.py`` at commit cb25200) computes it with its ``clap-laion-audio``
model: every file is embedded window by window (CLAP's 10 s windows at 48 kHz; fadtk embeds per model
frame), all windows of a folder form one set, its statistics are ``np.mean`` and ``np.cov`` (unbiased),
and the distance is ``metrics.frechet_distance`` (fadtk's eigendecomposition square root). The
embedder is the studio's ``clap`` role (laion/clap-htsat-unfused through transformers, not fadtk's
laion_clap checkpoint), so values compare with each other, not with fadtk's published numbers.

Each folder's statistics are cached in ``--cache`` as ``<sha256>.npz``, the hash taken over the files'
names and bytes and the CLAP model's source: the same reference folder is embedded once.

A file the studio cannot read (missing, empty, damaged, too long to decode) is skipped and reported
with its reason, as ``python -m studio batch`` does; the rest still count. Too few embeddings make FAD
meaningless: below ``metrics.fad_minimum_embeddings`` (the embedding size + 1: a full-rank covariance)
in either set the command refuses, unless ``allow_few`` (``--allow-few``) asks for the number anyway,
with a warning; under ``metrics.FAD_RELIABLE_SAMPLES`` (fadtk's smallest count for FAD-inf) it is
biased upward and says so. The counts are always reported.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import Cancelled, InputError, StudioError
from pipelines.signal import audio as audio_io
from pipelines.signal import metrics

from .runner import audio_files

DEFAULT_CACHE = Path.home() / ".cache" / "music-studio" / "fad-stats"


def folder_hash(files: list[Path], model_id: str) -> str:
    """sha256 over the model's identity and each file's name and bytes, in name order."""
    digest = hashlib.sha256(model_id.encode())
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def folder_statistics(studio, folder: str | Path, cache_dir: str | Path | None = DEFAULT_CACHE,
                      what: str = "sounds") -> dict[str, Any]:
    """``{"mu", "cov", "embeddings", "files", "skipped", "hash", "cached"}`` of the audio files in
    ``folder``: ``files`` counts those embedded, ``skipped`` maps each file the studio could not read to
    the reason (the rest still count).

    InputError for a missing or empty folder, no readable file, or fewer than two windows in all.
    """
    files = audio_files(folder, what)
    model_id = f"{studio.info.profile}:{studio.registry.resolve('clap').describe()}"
    key = folder_hash(files, model_id)
    cache = Path(cache_dir) / f"{key}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        with np.load(cache) as data:
            skipped = json.loads(str(data["skipped"])) if "skipped" in data.files else {}
            return {"mu": data["mu"], "cov": data["cov"], "embeddings": int(data["embeddings"]),
                    "files": int(data["files"]), "skipped": skipped, "hash": key, "cached": True}

    skipped: dict[str, str] = {}

    def embed(embedder):
        rows = []
        for path in files:
            try:
                sound = audio_io.load_audio(str(path), 48000, mono=True, max_seconds=None, allow_silence=True)
            except Cancelled:
                raise
            except StudioError as error:  # skipped and reported, as the batch command does
                skipped[path.name] = str(error)
                continue
            rows.append(embedder.audio_windows(sound.samples[0], sound.sample_rate))
        return np.concatenate(rows, axis=0) if rows else np.zeros((0, 0), np.float32)

    embeddings = studio.with_clap(embed)
    if len(skipped) == len(files):
        first = next(iter(skipped.values()))
        raise InputError(f"None of the {len(files)} {what} in {str(folder)!r} could be read (the first: {first})")
    if len(embeddings) < 2:
        raise InputError(f"The {what} in {str(folder)!r} give {len(embeddings)} CLAP embedding (one per started "
                         "10 s): FAD needs at least two. Add files or longer ones.")
    mu, cov = metrics.embedding_statistics(embeddings)
    used = len(files) - len(skipped)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, mu=mu, cov=cov, embeddings=len(embeddings), files=used, skipped=json.dumps(skipped))
        tmp.replace(cache)
    return {"mu": mu, "cov": cov, "embeddings": len(embeddings), "files": used, "skipped": skipped, "hash": key,
            "cached": False}


def evaluate_fad(studio, outputs: str | Path, reference: str | Path,
                 cache_dir: str | Path | None = DEFAULT_CACHE, allow_few: bool = False) -> dict[str, Any]:
    """``{"fad", "outputs": {files, embeddings, skipped}, "reference": {files, embeddings, skipped, cached},
    "minimum_embeddings", "warning"}``; ``warning`` (None when all is well) says which files were skipped
    and why the value may mislead.

    InputError (besides ``folder_statistics``'s) when a set has fewer than
    ``metrics.fad_minimum_embeddings`` embeddings, unless ``allow_few``.
    """
    ref = folder_statistics(studio, reference, cache_dir, "reference sounds")
    out = folder_statistics(studio, outputs, cache_dir, "outputs")
    dim = int(np.atleast_1d(out["mu"]).shape[0])
    needed = metrics.fad_minimum_embeddings(dim)
    smallest = min(out["embeddings"], ref["embeddings"])
    counts = f"the outputs give {out['embeddings']}, the reference {ref['embeddings']}"
    if smallest < needed and not allow_few:
        raise InputError(
            f"Too few embeddings for a meaningful FAD: {counts} (one per started 10 s of audio), and each set needs "
            f"at least {needed} (CLAP's {dim} dimensions + 1) for a covariance of full rank; with fewer, FAD measures "
            "the sample count more than the sound. Add audio, or pass --allow-few for a value that compares only "
            "with runs of the same counts.")
    warnings = [f"Skipped {len(folder['skipped'])} file(s) of the {name} that could not be read: "
                + "; ".join(f"{file}: {reason}" for file, reason in folder["skipped"].items())
                for name, folder in (("outputs", out), ("reference", ref)) if folder["skipped"]]
    if smallest < needed:
        warnings.append(f"Only {smallest} embeddings in the smaller set ({counts}): below {needed} the covariance "
                        "is singular and FAD says more about the counts than the sound. Compare only runs with the "
                        "same counts.")
    elif smallest < metrics.FAD_RELIABLE_SAMPLES:
        warnings.append(f"Only {smallest} embeddings in the smaller set: FAD is biased upward below "
                        f"{metrics.FAD_RELIABLE_SAMPLES} (fadtk's smallest count for FAD-inf). Compare only runs "
                        "with the same counts.")
    fad = metrics.frechet_distance(out["mu"], out["cov"], ref["mu"], ref["cov"])
    return {"fad": fad, "model": "clap", "formula": "fadtk calc_frechet_distance (commit cb25200)",
            "outputs": {"folder": str(outputs), "files": out["files"], "embeddings": out["embeddings"],
                        "skipped": out["skipped"]},
            "reference": {"folder": str(reference), "files": ref["files"], "embeddings": ref["embeddings"],
                          "skipped": ref["skipped"], "hash": ref["hash"], "cached": ref["cached"]},
            "minimum_embeddings": needed, "warning": " ".join(warnings) or None}
