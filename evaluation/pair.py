"""``python -m evaluation pair``: the metrics of one input/output pair as a single JSON line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipelines.signal import audio as audio_io
from pipelines.signal import metrics


def load_44k(path: str | Path) -> np.ndarray:
    """Mono float32 (n,) at 44.1 kHz, as the paper's notebook loads (librosa: mean of channels, soxr).

    InputError for a missing, empty or undecodable file (the studio's loader says which).
    """
    return audio_io.load_audio(str(path), metrics.PAPER_SAMPLE_RATE, mono=True, max_seconds=None,
                               allow_silence=True).samples[0]


def clap_values(studio, reference: np.ndarray, output: np.ndarray, sample_rate: int,
                prompt: str | None = None, styles: list[str] | None = None) -> dict[str, Any]:
    """Content preservation (always), CLAP score (with a prompt) and style fit (with styles)."""
    from pipelines.models import clap

    def compute(embedder):
        values: dict[str, Any] = {
            "content_preservation": clap.content_preservation(embedder, reference, output, sample_rate)}
        if prompt:
            values["clap_score"] = clap.clap_score(embedder, output, sample_rate, prompt)
        if styles:
            fit = clap.style_fit(embedder, output, sample_rate, styles)
            values.update(style_fit_mean=fit["style_fit_mean"], style_fit_max=fit["style_fit_max"])
        return values

    return studio.with_clap(compute)


def evaluate_pair(input_path: str | Path, output_path: str | Path, mode: str = "paper", *, studio=None,
                  prompt: str | None = None, styles: list[str] | None = None) -> dict[str, Any]:
    """``{"mode", "input", "output", "ssim", "chroma_cens"}``, plus the CLAP values when a studio is given
    (``content_preservation``; ``clap_score`` with ``prompt``; ``style_fit_mean``/``_max`` with ``styles``).
    Both files are read at 44.1 kHz mono; see ``metrics.pair_metrics`` for the two modes."""
    reference, output = load_44k(input_path), load_44k(output_path)
    result: dict[str, Any] = {"mode": mode, "input": str(input_path), "output": str(output_path),
                              **metrics.pair_metrics(reference, output, mode)}
    if studio is not None:
        result.update(clap_values(studio, reference, output, metrics.PAPER_SAMPLE_RATE, prompt, styles))
    return result
