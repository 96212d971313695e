"""The one shape every pipeline result has, so the UI, the CLI and ``outputs`` handle them alike.

Each pipeline returns its own dataclass (``SoundToMusicResult``, ``MusicImageResult``, ...) with
named fields, as diffusers pipelines return their own output classes; all of them derive from
``Result`` and say, through ``audio_output`` and ``image_outputs``, which of their fields are the
files a user downloads. ``parameters`` always holds ``pipeline`` (its name) and, once the Studio has
run it, ``model`` (the registry role that made it), next to every setting used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(kw_only=True)
class Result:
    """Base of every result. ``parameters``: the settings and what made it; ``metrics``: scores
    computed on it (name -> value), empty where the pipeline computes none."""

    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def audio_output(self) -> tuple[Any, int] | None:
        """``(samples (channels, n) float32, sample rate in Hz)`` of the audio a user downloads, or None."""
        audio, rate = getattr(self, "audio", None), getattr(self, "sample_rate", None)
        return None if audio is None or rate is None else (audio, int(rate))

    def image_outputs(self) -> dict[str, Any]:
        """Name -> PIL image for every picture a user downloads (empty when there are none)."""
        return {}


@dataclass
class SpectrogramResult(Result):
    """A sound as a spectrogram image, or an image as sound: ``image`` carries the codec's parameters
    in its metadata (``params``); ``audio`` (channels, n) float32 is set when sound was made."""

    image: Any  # PIL.Image
    params: Any  # spectrogram.SpectrogramParams
    audio: Any = None
    sample_rate: int | None = None

    def image_outputs(self) -> dict[str, Any]:
        return {f"spectrogram-{self.params.name}": self.image}


@dataclass
class MaskPreviewResult(Result):
    """The input's spectrogram and its change map (windows side by side), before any diffusion."""

    input_spectrogram: Any  # PIL.Image
    mask: Any  # PIL.Image, L

    def image_outputs(self) -> dict[str, Any]:
        return {"input-spectrogram": self.input_spectrogram, "mask": self.mask}


@dataclass
class SongRecommendationResult(Result):
    """The caption used and the closest songs, best first (``song_recommendation.SongMatch``)."""

    caption: str
    matches: list[Any]
