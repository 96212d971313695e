"""Image to music, and image to song recommendation (MusicGenAI).

1. ``caption_image``: BLIP (Salesforce/blip-image-captioning-large) writes an unconditional caption,
   greedy, so the same picture always gives the same sentence.
2. ``generate_music``: MusicGen (facebook/musicgen-small) turns the caption, used verbatim, into
   audio. The duration becomes a number of codec frames (50 per second for musicgen-small); the
   original asked for 2000 tokens (about 40 s), here the default is 10 s and the limit 30 s.
3. ``recommend``: the caption is embedded like sentence-transformers' all-distilroberta-v1 does it
   (mean of the token vectors under the attention mask, L2-normalised), compared with every lyric
   line of a ``SongIndex`` (cosine, top 100 lines), the lines are grouped by song and the songs
   ranked by the mean score of their matched lines. The original's lyric pickles are private (and
   pickles are never loaded here): the index is built from a JSON or CSV file the project ships,
   ``assets/lyrics_sample.json``.

Models come in as (model, processor) pairs from the ``load_*`` functions below, which take a
registry location (local folder or Hub repo id) and return them on the CPU.
"""

from __future__ import annotations

import csv
import json
import math
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import Cancelled, InputError

from . import audio as audio_io
from . import limits
from .results import Result
from .settings import ImageToMusicSettings

CAPTION_MAX_NEW_TOKENS = 20  # BLIP's default max_length, which the original's plain generate() used
TOP_LINES = 100  # lyric lines kept by the semantic search, as the original
MAX_SONGS = 50
MAX_EMBED_TOKENS = 128  # all-distilroberta-v1's max_seq_length in sentence-transformers
SAMPLE_LYRICS = Path(__file__).resolve().parents[1] / "assets" / "lyrics_sample.json"


# -- captioning ---------------------------------------------------------------------------------------
def load_image(image: Any):
    """A PIL RGB image from a PIL image, a path or an (h, w[, c]) uint8/float array; InputError otherwise."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        if not path.is_file():
            raise InputError(f"The image file {path.name or image!s} does not exist.")
        if path.stat().st_size > limits.MAX_UPLOAD_BYTES:
            raise InputError(f"The image file is larger than {limits.MAX_UPLOAD_BYTES // 2**20} MB.")
        try:
            with Image.open(path) as opened:
                opened.load()
                image = opened.copy()
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
            raise InputError(f"{path.name} is not an image that can be read (PNG, JPEG, WebP...): {error}") from error
    elif isinstance(image, np.ndarray):
        image = _array_to_image(image)
    elif not isinstance(image, Image.Image):
        raise InputError(f"Give a picture (an image file or a PIL image); got {type(image).__name__}.")
    width, height = image.size
    low, high = limits.MIN_INPUT_IMAGE_SIDE, limits.MAX_INPUT_IMAGE_SIDE
    if not (low <= width <= high and low <= height <= high):
        raise InputError(f"The picture must be {low} to {high} pixels on each side; it is {width}x{height}.")
    if image.mode != "RGB":
        # transparent pixels over white, not black: what a viewer shows
        if image.mode in ("RGBA", "LA", "P", "PA"):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        image = image.convert("RGB")
    return image


def _array_to_image(array: np.ndarray):
    from PIL import Image

    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise InputError(f"An image array must be (height, width) or (height, width, 3 or 4); got {array.shape}.")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
            raise InputError("The image array must hold finite numbers.")
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0  # floats in [0, 1] or already 0..255
        array = np.clip(array * scale, 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def caption_image(blip_model, blip_processor, image: Any, max_new_tokens: int = CAPTION_MAX_NEW_TOKENS) -> str:
    """BLIP's unconditional caption of ``image`` (greedy: deterministic). ``image``: see ``load_image``."""
    import torch

    limits.check_number("caption length (max_new_tokens)", max_new_tokens, 1, limits.MAX_CAPTION_TOKENS, integer=True)
    picture = load_image(image)
    inputs = blip_processor(images=picture, return_tensors="pt")
    pixel_values = inputs["pixel_values"].to(blip_model.device, blip_model.dtype)
    with torch.inference_mode():
        tokens = blip_model.generate(pixel_values=pixel_values, max_new_tokens=int(max_new_tokens),
                                     do_sample=False, num_beams=1)
    return blip_processor.decode(tokens[0], skip_special_tokens=True).strip()


# -- text to music ------------------------------------------------------------------------------------
@dataclass
class MusicResult(Result):
    audio: np.ndarray  # float32 (1, n), peak-normalised
    sample_rate: int
    prompt: str  # the caption, or the caller's prompt

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def as_audio(self) -> audio_io.Audio:
        return audio_io.Audio(self.audio, self.sample_rate)


def check_prompt(prompt: Any) -> str:
    return limits.check_text("music prompt", prompt, hint="caption a picture first, or write a prompt")


def _stopper(should_stop: Callable[[], bool]):
    import torch
    from transformers import StoppingCriteria

    class PollStop(StoppingCriteria):
        """Asks ``should_stop`` after every generated frame; True ends every sequence of the batch."""

        def __init__(self):
            self.stopped = False

        def __call__(self, input_ids, scores, **kwargs):
            self.stopped = self.stopped or bool(should_stop())
            return torch.full((input_ids.shape[0],), self.stopped, dtype=torch.bool, device=input_ids.device)

    return PollStop()


def generate_music(
    musicgen_model,
    musicgen_processor,
    prompt: str,
    settings: ImageToMusicSettings = ImageToMusicSettings(),
    *,
    should_stop: Callable[[], bool] | None = None,
) -> MusicResult:
    """MusicGen text-to-music: ``settings.seconds`` of audio at the audio encoder's rate (32 kHz for
    musicgen-small), shaped (1, n) float32, peak-normalised.

    The seed makes it repeatable without touching the global RNG. ``should_stop`` is polled after
    every frame; a cancelled run raises Cancelled.
    """
    import torch
    from transformers import StoppingCriteriaList

    prompt = check_prompt(prompt)
    settings.validate()
    seconds, top_p = float(settings.seconds), float(settings.top_p)
    codec = musicgen_model.config.audio_encoder
    sample_rate, frame_rate = int(codec.sampling_rate), int(codec.frame_rate)
    frames = math.ceil(float(seconds) * frame_rate)
    # the delay pattern staggers codebook k by k steps: the last (num_codebooks - 1) steps only finish frames
    max_new_tokens = frames + musicgen_model.decoder.num_codebooks - 1
    inputs = musicgen_processor(text=[prompt], padding=True, return_tensors="pt").to(musicgen_model.device)
    stopper = _stopper(should_stop) if should_stop is not None else None
    device = musicgen_model.device
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices), torch.inference_mode():
        torch.manual_seed(int(settings.seed))
        try:
            values = musicgen_model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=True,
                guidance_scale=float(settings.guidance),
                temperature=float(settings.temperature),
                top_k=int(settings.top_k),
                top_p=top_p if top_p else 1.0,  # 0 means "off" in MusicGen's demo
                stopping_criteria=StoppingCriteriaList([stopper]) if stopper else None,
            )
        except Exception:
            if stopper is not None and stopper.stopped:  # a cut-short delay pattern may not decode
                raise Cancelled() from None
            raise
    if stopper is not None and stopper.stopped:
        raise Cancelled()
    samples = values[0, :1].float().cpu().numpy()[:, : round(float(seconds) * sample_rate)]
    parameters = {
        "pipeline": "image_to_music",
        "prompt": prompt,
        **settings.as_dict(),
        "max_new_tokens": max_new_tokens,
        "sample_rate": sample_rate,
    }
    return MusicResult(audio=audio_io.peak_normalize(samples, headroom_db=1.0), sample_rate=sample_rate, prompt=prompt,
                       parameters=parameters)


# -- song recommendation ------------------------------------------------------------------------------
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


def embed_sentences(model, tokenizer, sentences: list[str]):
    """sentence-transformers' recipe for all-distilroberta-v1: mean of the token vectors under the
    attention mask (padding excluded), then L2 normalisation. Returns float32 (len, dim) on the model's device."""
    import torch

    batch = tokenizer(list(sentences), padding=True, truncation=True, max_length=MAX_EMBED_TOKENS,
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
