"""CLAP embeddings (laion/clap-htsat-unfused through transformers) and the scores built on them.

* **CLAP score**: cosine of a result's audio embedding and its prompt's text embedding (the mask
  paper reports 0.37 for its outputs; ``../shared/reference/seed-systems.md`` section 2).
* **Content preservation**: cosine of the input's and the output's audio embeddings (MusicTI,
  section 3).
* **Style fit**: cosine of the output's audio embedding and the text embedding of
  ``"A music piece in the style of {style}"``, MusicTI's template; for a mix of styles, the mean and
  the max over the styles (MusicTI reports both for its pairs).

All embeddings are L2-normalised float64 vectors of the model's projection size (512 for the real
model, 16 for the tiny one), so every score is a cosine in [-1, 1].

Audio goes in at any rate and is resampled to CLAP's 48 kHz with librosa (soxr, high quality): the
feature extractor does not resample and would silently misread other rates. CLAP sees at most 10 s
(longer input is cropped at random by the unfused model's ``rand_trunc``), so longer sounds are cut
here into 10 s windows, each embedded (the last, shorter one repeat-padded by the extractor, as
CLAP was trained), and the sound's embedding is the normalised mean of its windows': deterministic,
and every second counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core import runs
from core.errors import InputError

CLAP_SAMPLE_RATE = 48_000  # Hz; laion/clap-htsat-unfused's feature extractor
WINDOW_SECONDS = 10.0  # CLAP's input length (max_length_s in its preprocessor config)
STYLE_TEMPLATE = "A music piece in the style of {style}"  # MusicTI's style-fit text


def to_clap_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 (n,) at 48 kHz from (n,) or (channels, n) samples at ``sample_rate`` Hz.

    Channels are averaged. InputError for empty or non-finite audio or a rate <= 0.
    """
    import librosa

    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    x = x.reshape(-1)
    if x.size == 0:
        raise InputError("The audio is empty: CLAP needs at least one sample.")
    if not np.isfinite(x).all():
        raise InputError("The audio contains NaN or infinite samples.")
    if sample_rate <= 0:
        raise InputError(f"Sample rate must be positive, got {sample_rate}.")
    if int(sample_rate) != CLAP_SAMPLE_RATE:
        x = librosa.resample(x, orig_sr=int(sample_rate), target_sr=CLAP_SAMPLE_RATE)
    return np.ascontiguousarray(x, dtype=np.float32)


def windows(samples_48k: np.ndarray, seconds: float = WINDOW_SECONDS) -> list[np.ndarray]:
    """Consecutive ``seconds``-long pieces of a 48 kHz mono signal; the last may be shorter."""
    size = round(seconds * CLAP_SAMPLE_RATE)
    return [samples_48k[i:i + size] for i in range(0, max(len(samples_48k), 1), size)]


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (0.0 when either is all zeros)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.0


class ClapEmbedder:
    """Audio and text embeddings from a loaded CLAP (``loaders.load_clap``'s bundle: model, processor).

    The model must already be on ``device`` (the device manager puts it there); inputs follow it,
    in the model's dtype.
    """

    def __init__(self, bundle: Any, device: str = "cpu", batch_size: int = 8):
        self.model = bundle.model
        self.processor = bundle.processor
        self.device = device
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    @staticmethod
    def _features(output: Any):
        # transformers 5 returns a ModelOutput whose pooler_output is the projected, normalised vector
        return output.pooler_output if hasattr(output, "pooler_output") else output

    def _embed_windows(self, pieces: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        dtype = next(self.model.parameters()).dtype
        out = []
        for start in range(0, len(pieces), self.batch_size):
            runs.raise_if_stopped()  # metrics of a cancelled run stop between batches
            batch = [np.asarray(p, dtype=np.float32) for p in pieces[start:start + self.batch_size]]
            inputs = self.processor(audio=batch, sampling_rate=CLAP_SAMPLE_RATE, return_tensors="pt")
            inputs = {k: v.to(self.device, dtype=dtype) if v.is_floating_point() else v.to(self.device)
                      for k, v in inputs.items()}
            with torch.no_grad():
                features = self._features(self.model.get_audio_features(**inputs))
            out.append(features.float().cpu().numpy().astype(np.float64))
        return _normalise(np.concatenate(out, axis=0))

    def audio_windows(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """(windows, dim) normalised embeddings of each 10 s window of one sound (FAD's samples)."""
        return self._embed_windows(windows(to_clap_rate(samples, sample_rate)))

    def audio(self, clips: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """(len(clips), dim): each clip's normalised mean of its 10 s windows' embeddings.

        ``clips`` are (n,) or (channels, n) arrays at ``sample_rate`` Hz. InputError when none is given.
        """
        if len(clips) == 0:
            raise InputError("No audio was given to embed.")
        per_clip = [windows(to_clap_rate(c, sample_rate)) for c in clips]
        flat = [w for pieces in per_clip for w in pieces]
        embedded = self._embed_windows(flat)
        out, i = [], 0
        for pieces in per_clip:
            out.append(embedded[i:i + len(pieces)].mean(axis=0))
            i += len(pieces)
        return _normalise(np.stack(out))

    def text(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) normalised text embeddings. InputError for no text or an empty one."""
        import torch

        texts = [str(t) for t in texts]
        if not texts or any(not t.strip() for t in texts):
            raise InputError("CLAP needs a non-empty text.")
        inputs = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            features = self._features(self.model.get_text_features(**inputs))
        return _normalise(features.float().cpu().numpy().astype(np.float64))


def clap_score(embedder: ClapEmbedder, audio: np.ndarray, sample_rate: int, prompt: str) -> float:
    """CLAP score: cosine(audio embedding of the result, text embedding of its prompt), in [-1, 1]."""
    return cosine(embedder.audio([audio], sample_rate)[0], embedder.text([prompt])[0])


def content_preservation(embedder: ClapEmbedder, content: np.ndarray, output: np.ndarray,
                         sample_rate: int, output_rate: int | None = None) -> float:
    """MusicTI's content preservation: cosine(audio emb. of the content, audio emb. of the output)."""
    a = embedder.audio([content], sample_rate)[0]
    b = embedder.audio([output], output_rate or sample_rate)[0]
    return cosine(a, b)


def style_fit(embedder: ClapEmbedder, output: np.ndarray, sample_rate: int,
              styles: Sequence[str]) -> dict[str, Any]:
    """MusicTI's style fit of one output against each style's text (``STYLE_TEMPLATE``).

    Returns ``{"style_fit": {style: cosine}, "style_fit_mean": mean, "style_fit_max": max}`` (one
    style: mean = max). InputError when no style is given.
    """
    styles = [str(s) for s in styles]
    if not styles:
        raise InputError("Style fit needs at least one style name.")
    audio = embedder.audio([output], sample_rate)[0]
    texts = embedder.text([STYLE_TEMPLATE.format(style=s) for s in styles])
    fits = {s: cosine(audio, t) for s, t in zip(styles, texts)}
    values = list(fits.values())
    return {"style_fit": fits, "style_fit_mean": float(np.mean(values)), "style_fit_max": float(np.max(values))}


def result_scores(embedder: ClapEmbedder, output: np.ndarray, sample_rate: int, *,
                  content: tuple[np.ndarray, int] | None = None, prompt: str | None = None,
                  styles: Sequence[str] | None = None,
                  playlist: Sequence[tuple[np.ndarray, int]] | None = None) -> dict[str, float]:
    """The CLAP values that fit one result, by what it was made from (each only when given):

    ``content`` (samples, rate) -> ``content_preservation``; ``prompt`` -> ``clap_score``; ``styles`` ->
    ``style_fit_mean`` and ``style_fit_max``; ``playlist`` [(samples, rate), ...] ->
    ``playlist_similarity``, the cosine of the output's embedding and the normalised mean of the tracks'.
    """
    out = embedder.audio([output], sample_rate)[0]
    scores: dict[str, float] = {}
    if content is not None:
        scores["content_preservation"] = cosine(embedder.audio([content[0]], content[1])[0], out)
    if prompt and prompt.strip():
        scores["clap_score"] = cosine(out, embedder.text([prompt])[0])
    if styles:
        texts = embedder.text([STYLE_TEMPLATE.format(style=s) for s in styles])
        fits = [cosine(out, t) for t in texts]
        scores.update(style_fit_mean=float(np.mean(fits)), style_fit_max=float(np.max(fits)))
    if playlist:
        tracks = np.concatenate([embedder.audio([samples], rate) for samples, rate in playlist])
        scores["playlist_similarity"] = cosine(out, tracks.mean(axis=0))
    return scores
