"""Music to image (TechJam): genre + emotion + tempo of a track -> a sentence -> Stable Diffusion.

1. ``describe_music``: the GTZAN genre CNN and the Emotify emotion CNN score every segment of the
   whole track and average the probabilities (the original used the first 6 s and a random 10 s);
   librosa's beat tracker gives the tempo; the three fill the original's sentence.
2. ``generate_image``: Stable Diffusion 1.5 text-to-image from that sentence, with the TechJam LoRA
   (UNet-only, rank 4, old ``lora.down/up`` attention-processor keys) loaded through diffusers'
   ``load_lora_weights`` and fused into the UNet's weights at the asked scale for the call only
   (``fused_lora``: no adapter runs beside the projections, so the UNet costs what stock SD costs;
   0 turns it off).

The classifiers are ``classifiers.KerasClassifier`` objects (``classifiers.genre.load(folder)``);
the pipeline is any loaded Stable Diffusion pipeline (the device manager's img2img one is fine:
text-to-image is built from its components without copying weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core import runs
from core.errors import Cancelled, InputError

from pipelines.signal import audio as audio_io
from pipelines.models.lora import DEFAULT_ADAPTER, LORA_FILE, adapter_names, fused_lora, load_lora  # noqa: F401  (callers read them here)
from pipelines.schema import limits
from pipelines.schema.results import Result
from pipelines.schema.settings import MusicToImageSettings

TEMPLATE = "This piece of music falls under the {genre} genre. It is of tempo {bpm} and evokes a sense of {emotion}."
NO_BEAT_TEMPLATE = "This piece of music falls under the {genre} genre. It has no steady beat and evokes a sense of {emotion}."
NO_BEAT = "no steady beat"
SAMPLE_RATE = 22050  # both classifiers and the beat tracker work at 22.05 kHz, as the original
TOP_K = 3


@dataclass
class Description(Result):
    """What ``describe_music`` heard: top labels with probabilities, tempo, and the prompt sentence."""

    genres: list[tuple[str, float]]  # top genres, most likely first
    emotions: list[tuple[str, float]]
    bpm: int | None  # int(librosa's estimate), as TechJam states it; None: no steady beat
    refined_bpm: float | None  # our beat-time fit (classifiers.tempo), shown beside it, never in the sentence
    beat_times: list[float]  # seconds
    sentence: str
    duration: float  # seconds of audio described
    segments: dict[str, int] = field(default_factory=dict)  # segments averaged per classifier

    @property
    def genre(self) -> str:
        return self.genres[0][0]

    @property
    def emotion(self) -> str:
        return self.emotions[0][0]

    @property
    def tempo_text(self) -> str:
        """The tempo for people: "117 BPM (refined 120.0)", or "no steady beat"."""
        return tempo_text(self.bpm, self.refined_bpm)


def tempo_text(bpm: int | None, refined_bpm: float | None = None) -> str:
    """A tempo for people: "117 BPM (refined 120.0)", "117 BPM" without a refined value, or "no steady beat"."""
    if bpm is None:
        return NO_BEAT
    return f"{bpm} BPM" + (f" (refined {refined_bpm:.1f})" if refined_bpm is not None else "")


def make_sentence(genre: str, bpm: int | None, emotion: str) -> str:
    """TechJam's sentence; ``bpm`` None (no steady beat) says so instead of "tempo 0"."""
    if bpm is None:
        return NO_BEAT_TEMPLATE.format(genre=genre, emotion=emotion)
    return TEMPLATE.format(genre=genre, bpm=int(bpm), emotion=emotion)


def describe_music(
    audio_samples: Any, sample_rate: int | None, genre_model, emotion_model, top_k: int = TOP_K
) -> Description:
    """Genre, emotion and tempo of a whole track, and the sentence that prompts the image.

    audio_samples: an array ((n,), (channels, n) or (n, channels)) at ``sample_rate``, a gradio
        ``(rate, data)`` tuple or a file path (then ``sample_rate`` may be None); checked and
        resampled to 22050 Hz mono by ``audio.load_audio`` (length limits, silence, NaN).
    genre_model, emotion_model: ``classifiers.KerasClassifier`` (``classify(samples) -> Prediction``).
    """
    from classifiers.tempo import estimate_tempo

    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 10:
        raise InputError(f"top_k must be a whole number from 1 to 10; got {top_k!r}.")
    source_rate = None
    if isinstance(audio_samples, np.ndarray):
        source_rate = sample_rate
        if sample_rate is None:
            raise InputError("Give the sample rate of the audio samples.")
    sound = audio_io.load_audio(audio_samples, SAMPLE_RATE, channels=1, source_rate=source_rate)
    mono = sound.samples[0]
    genre = genre_model.classify(mono)  # each classifier checks the run's stop flag (core.runs)
    emotion = emotion_model.classify(mono)
    runs.raise_if_stopped()
    tempo = estimate_tempo(mono, SAMPLE_RATE)
    genres, emotions = genre.top(top_k), emotion.top(top_k)
    return Description(
        genres=genres,
        emotions=emotions,
        bpm=tempo.stated_bpm,
        refined_bpm=round(tempo.bpm, 2) if tempo.steady else None,
        beat_times=[float(t) for t in tempo.beat_times],
        sentence=make_sentence(genres[0][0], tempo.stated_bpm, emotions[0][0]),
        duration=sound.duration,
        segments={"genre": genre.segments, "emotion": emotion.segments},
        parameters={"pipeline": "describe_music", "top_k": top_k, "sample_rate": SAMPLE_RATE},
    )


# -- text to image ----------------------------------------------------------------------------------


@dataclass
class MusicImageResult(Result):
    image: Any  # PIL.Image
    prompt: str
    description: Description | None = None  # None when the caller wrote the prompt

    def image_outputs(self) -> dict[str, Any]:
        return {"music-to-image": self.image}


def check_prompt(prompt: Any) -> str:
    return limits.check_text("image prompt", prompt, hint="describe the music first, or write a prompt")


def generate_image(
    pipe,
    description: Description | str,
    settings: MusicToImageSettings = MusicToImageSettings(),
    *,
    should_stop: Callable[[], bool] | None = None,
    adapter_name: str = DEFAULT_ADAPTER,
) -> MusicImageResult:
    """Stable Diffusion text-to-image from the description's sentence (or a prompt string).

    ``pipe``: a loaded Stable Diffusion pipeline (any of diffusers' SD 1.x pipelines; its components
    are shared, not copied). ``description``: what ``describe_music`` made, or the caller's prompt.
    ``settings.lora_scale`` scales the adapter ``adapter_name`` if ``load_lora`` put it there, fused
    into the weights for this call (``fused_lora``; 0: LoRA off, bit-identical to the base model). ``should_stop`` is polled after every step (Cancelled).
    Returns the image (``settings.width`` x ``settings.height``, RGB) with its parameters.
    """
    import torch
    from diffusers import StableDiffusionPipeline

    prompt = check_prompt(description.sentence if isinstance(description, Description) else description)
    settings.validate()
    lora_scale = settings.lora_scale
    has_lora = adapter_name in adapter_names(pipe)
    if lora_scale and not has_lora:
        lora_scale = 0.0  # nothing to scale; recorded as such in the parameters
    components = {k: v for k, v in pipe.components.items() if k in _text_to_image_components()}
    text_to_image = StableDiffusionPipeline(**components, requires_safety_checker=False)
    text_to_image.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))

    def on_step_end(p, i, t, callback_kwargs):
        if should_stop is not None and should_stop():
            p._interrupt = True
        return {}

    generator = torch.Generator(device="cpu").manual_seed(int(settings.seed))  # same noise on every device
    with fused_lora(pipe, adapter_name, float(lora_scale) if has_lora else 0.0) as fused:
        output = text_to_image(
            prompt=prompt,
            negative_prompt=settings.negative_prompt or None,
            num_inference_steps=int(settings.steps),
            guidance_scale=float(settings.guidance),
            width=int(settings.width),
            height=int(settings.height),
            generator=generator,
            callback_on_step_end=on_step_end,
        )
    if text_to_image.interrupt:
        raise Cancelled()
    parameters = {
        "pipeline": "music_to_image",
        "prompt": prompt,
        **settings.as_dict(),
        "lora_scale": float(lora_scale),
        "lora": adapter_name if has_lora else None,
        "lora_fused_layers": fused,  # projections the LoRA was fused into for this call (0: none)
    }
    described = description if isinstance(description, Description) else None
    if described is not None:
        parameters.update(genres=described.genres, emotions=described.emotions, bpm=described.bpm,
                          refined_bpm=described.refined_bpm)
    return MusicImageResult(image=output.images[0], prompt=prompt, description=described, parameters=parameters)


def _text_to_image_components() -> set[str]:
    import inspect

    from diffusers import StableDiffusionPipeline

    return set(inspect.signature(StableDiffusionPipeline.__init__).parameters) - {"self", "requires_safety_checker"}
