"""Song recommendation by lyric similarity (MusicGenAI's image to song step).

The caption of a picture is embedded like sentence-transformers' all-distilroberta-v1 does it (mean
of the token vectors under the attention mask, L2-normalised), compared with every lyric line of a
``SongIndex`` (cosine, top 100 lines), the lines are grouped by song and the songs ranked by the
mean score of their matched lines. The original's lyric pickles are private (and pickles are never
loaded here): the index is built from a JSON or CSV file the project ships,
``assets/lyrics_sample.json``.

The embedder comes in as a (model, tokenizer) pair from ``loaders.load_sentence_embedder``.
"""

from __future__ import annotations

import csv
import json
import os
import weakref
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError

from pipelines.schema import limits

TOP_LINES = 100  # lyric lines kept by the semantic search, as the original
MAX_SONGS = 50
SAMPLE_LYRICS = Path(__file__).resolve().parents[2] / "assets" / "lyrics_sample.json"


@dataclass(frozen=True)
class Song:
    artist: str
    title: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class SongMatch:
    artist: str
    title: str
    score: float  # mean cosine similarity of the matched lines
    lines: tuple[tuple[str, float], ...]  # the matched lines, best first


class SongIndex:
    """Lyric lines of a set of songs, with their embeddings cached per embedder."""

    def __init__(self, songs: list[Song]):
        if not songs:
            raise InputError("The song index is empty.")
        self.songs = list(songs)
        self.lines = [line for song in self.songs for line in song.lines]
        self.line_song = np.array([i for i, song in enumerate(self.songs) for _ in song.lines], dtype=np.int64)
        if not self.lines:
            raise InputError("The song index has no lyric lines.")
        self._cache: tuple[Any, Any, Any] | None = None  # (weakref(model), weakref(tokenizer), embeddings)

    def __len__(self) -> int:
        return len(self.songs)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> SongIndex:
        """JSON ``{"songs": [{"artist", "title", "lines": [...]}]}`` (or a bare list of those), or CSV with
        columns artist, title, line (one row per lyric line)."""
        path = Path(path)
        try:
            if path.suffix.lower() == ".csv":
                with path.open(newline="", encoding="utf-8") as handle:
                    rows = list(csv.DictReader(handle))
                grouped: dict[tuple[str, str], list[str]] = {}
                for row in rows:
                    grouped.setdefault((row["artist"], row["title"]), []).append(row["line"])
                records = [{"artist": a, "title": t, "lines": lines} for (a, t), lines in grouped.items()]
            else:
                data = json.loads(path.read_text(encoding="utf-8"))
                records = data["songs"] if isinstance(data, dict) else data
            songs = [Song(str(r["artist"]), str(r["title"]),
                          tuple(s.strip() for s in r["lines"] if isinstance(s, str) and s.strip()))
                     for r in records]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError(f"The song list {path.name} could not be read: {type(error).__name__}: {error}") from error
        return cls(songs)

    def embeddings(self, model, tokenizer, batch_size: int = 64):
        """(lines, dim) normalised line embeddings, computed once per (model, tokenizer)."""
        if self._cache is not None:
            model_ref, tokenizer_ref, cached = self._cache
            if model_ref() is model and tokenizer_ref() is tokenizer and cached.device == model.device:
                return cached
        import torch

        parts = [embed_sentences(model, tokenizer, self.lines[i : i + batch_size])
                 for i in range(0, len(self.lines), batch_size)]
        embeddings = torch.cat(parts)
        self._cache = (weakref.ref(model), weakref.ref(tokenizer), embeddings)
        return embeddings


@lru_cache(maxsize=1)
def sample_index() -> SongIndex:
    """The index of the project's own sample lyrics (one per process, so its embeddings stay cached)."""
    return SongIndex.from_file(SAMPLE_LYRICS)


def max_tokens(model, tokenizer) -> int:
    """The embedder's own sequence limit, what sentence-transformers calls ``max_seq_length``: the
    position table less RoBERTa's padding offset (positions start after ``pad_token_id``), capped by
    the tokenizer's limit. all-distilroberta-v1: 514 - 2 = 512, as its sentence_bert_config.json."""
    config = model.config
    offset = config.pad_token_id + 1 if getattr(config, "model_type", "") in ("roberta", "xlm-roberta") else 0
    return int(min(config.max_position_embeddings - offset, tokenizer.model_max_length))


def embed_sentences(model, tokenizer, sentences: list[str]):
    """sentence-transformers' recipe for all-distilroberta-v1: mean of the token vectors under the
    attention mask (padding excluded), then L2 normalisation. Returns float32 (len, dim) on the model's device."""
    import torch

    batch = tokenizer(list(sentences), padding=True, truncation=True, max_length=max_tokens(model, tokenizer),
                      return_tensors="pt").to(model.device)
    with torch.inference_mode():
        tokens = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
    mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean.float(), p=2, dim=1)


def recommend(embedder, tokenizer, index: SongIndex | None, caption: str, k: int = 10,
              top_lines: int = TOP_LINES) -> list[SongMatch]:
    """The ``k`` songs whose lyric lines are closest to ``caption`` (None: the project's sample lyrics).

    Cosine search over every line, the best ``top_lines`` kept, grouped by song, songs ranked by the
    mean score of their kept lines (ties: the song with more matched lines first, then index order).
    """
    import torch

    if not isinstance(caption, str) or not caption.strip():
        raise InputError("The caption is empty: caption a picture first, or write a sentence.")
    if len(caption) > limits.MAX_PROMPT_CHARS:
        raise InputError(f"The caption must be at most {limits.MAX_PROMPT_CHARS} characters; it has {len(caption)}.")
    limits.check_number("number of songs", k, 1, MAX_SONGS, integer=True)
    limits.check_number("number of lyric lines searched", top_lines, 1, 10_000, integer=True)
    index = sample_index() if index is None else index
    lines = index.embeddings(embedder, tokenizer)
    query = embed_sentences(embedder, tokenizer, [caption.strip()])[0]
    scores, best = torch.topk(lines @ query, min(int(top_lines), len(index.lines)))
    matched: dict[int, list[tuple[str, float]]] = {}
    for score, line in zip(scores.tolist(), best.tolist()):
        matched.setdefault(int(index.line_song[line]), []).append((index.lines[line], float(score)))
    ranked = sorted(matched.items(), key=lambda item: (-float(np.mean([s for _, s in item[1]])), -len(item[1]), item[0]))
    return [
        SongMatch(index.songs[i].artist, index.songs[i].title, float(np.mean([s for _, s in hits])), tuple(hits))
        for i, hits in ranked[: int(k)]
    ]
