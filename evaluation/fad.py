"""``python -m evaluation fad``: Fréchet audio distance of a folder of outputs against a reference folder.

As fadtk (microsoft/fadtk, ``fad.py`` at commit cb25200) computes it with its ``clap-laion-audio``
model: every file is embedded window by window (CLAP's 10 s windows at 48 kHz; fadtk embeds per model
frame), all windows of a folder form one set, its statistics are ``np.mean`` and ``np.cov`` (unbiased),
and the distance is ``metrics.frechet_distance`` (fadtk's eigendecomposition square root). The
embedder is the studio's ``clap`` role (laion/clap-htsat-unfused through transformers, not fadtk's
laion_clap checkpoint), so values compare with each other, not with fadtk's published numbers.

Each folder's statistics are cached in ``--cache`` as ``<sha256>.npz``, the hash taken over the files'
names and bytes and the CLAP model's source: the same reference folder is embedded once.
FAD is biased upward for small sets; under ``metrics.FAD_RELIABLE_SAMPLES`` embeddings per set (fadtk's
smallest count for FAD-inf) the result carries a warning, and the counts are always reported.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
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
    """``{"mu", "cov", "embeddings", "files", "hash", "cached"}`` of every audio file in ``folder``.

    InputError for a missing or empty folder, an unreadable file, or fewer than two windows in all.
    """
    files = audio_files(folder, what)
    model_id = f"{studio.info.profile}:{studio.registry.resolve('clap').describe()}"
    key = folder_hash(files, model_id)
    cache = Path(cache_dir) / f"{key}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        with np.load(cache) as data:
            return {"mu": data["mu"], "cov": data["cov"], "embeddings": int(data["embeddings"]),
                    "files": int(data["files"]), "hash": key, "cached": True}

    def embed(embedder):
        rows = []
        for path in files:
            sound = audio_io.load_audio(str(path), 48000, mono=True, max_seconds=None, allow_silence=True)
            rows.append(embedder.audio_windows(sound.samples[0], sound.sample_rate))
        return np.concatenate(rows, axis=0)

    embeddings = studio.with_clap(embed)
    if len(embeddings) < 2:
        raise InputError(f"The {what} in {str(folder)!r} give {len(embeddings)} CLAP embedding (one per started "
                         "10 s): FAD needs at least two. Add files or longer ones.")
    mu, cov = metrics.embedding_statistics(embeddings)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, mu=mu, cov=cov, embeddings=len(embeddings), files=len(files))
        tmp.replace(cache)
    return {"mu": mu, "cov": cov, "embeddings": len(embeddings), "files": len(files), "hash": key,
            "cached": False}


def evaluate_fad(studio, outputs: str | Path, reference: str | Path,
                 cache_dir: str | Path | None = DEFAULT_CACHE) -> dict[str, Any]:
    """``{"fad", "outputs": {files, embeddings}, "reference": {files, embeddings, cached}, "warning"}``."""
    ref = folder_statistics(studio, reference, cache_dir, "reference sounds")
    out = folder_statistics(studio, outputs, cache_dir, "outputs")
    fad = metrics.frechet_distance(out["mu"], out["cov"], ref["mu"], ref["cov"])
    smallest = min(out["embeddings"], ref["embeddings"])
    warning = None
    if smallest < metrics.FAD_RELIABLE_SAMPLES:
        warning = (f"Only {smallest} embeddings in the smaller set: FAD is biased upward below "
                   f"{metrics.FAD_RELIABLE_SAMPLES} (fadtk's smallest count for FAD-inf). Compare only runs "
                   "with the same counts.")
    return {"fad": fad, "model": "clap", "formula": "fadtk calc_frechet_distance (commit cb25200)",
            "outputs": {"folder": str(outputs), "files": out["files"], "embeddings": out["embeddings"]},
            "reference": {"folder": str(reference), "files": ref["files"], "embeddings": ref["embeddings"],
                          "hash": ref["hash"], "cached": ref["cached"]},
            "warning": warning}
