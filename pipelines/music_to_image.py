"""Music to image (TechJam): genre + emotion + tempo of a track -> a sentence -> Stable Diffusion.

1. ``describe_music``: the GTZAN genre CNN and the Emotify emotion CNN score every segment of the
   whole track and average the probabilities (the original used the first 6 s and a random 10 s);
   librosa's beat tracker gives the tempo; the three fill the original's sentence.
2. ``generate_image``: Stable Diffusion 1.5 text-to-image from that sentence, with the TechJam LoRA
   (UNet-only, rank 4, old ``lora.down/up`` attention-processor keys) loaded through diffusers'
   ``load_lora_weights`` and scaled per call (0 turns it off).

The classifiers are ``classifiers.KerasClassifier`` objects (``classifiers.genre.load(folder)``);
the pipeline is any loaded Stable Diffusion pipeline (the device manager's img2img one is fine:
text-to-image is built from its components without copying weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import audio as audio_io
from . import limits
from core.errors import Cancelled, InputError, ModelUnavailableError

TEMPLATE = "This piece of music falls under the {genre} genre. It is of tempo {bpm} and evokes a sense of {emotion}."
SAMPLE_RATE = 22050  # both classifiers and the beat tracker work at 22.05 kHz, as the original
LORA_FILE = "pytorch_lora_weights.safetensors"
DEFAULT_ADAPTER = "m2i"
MIN_LORA_SCALE, MAX_LORA_SCALE = 0.0, 2.0
DEFAULT_SEED = 0
TOP_K = 3


@dataclass(frozen=True)
class Description:
    genres: list[tuple[str, float]]  # top genres, most likely first
    emotions: list[tuple[str, float]]
    bpm: int
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


def make_sentence(genre: str, bpm: int, emotion: str) -> str:
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
    genre = genre_model.classify(mono)
    emotion = emotion_model.classify(mono)
    tempo = estimate_tempo(mono, SAMPLE_RATE)
    genres, emotions = genre.top(top_k), emotion.top(top_k)
    return Description(
        genres=genres,
        emotions=emotions,
        bpm=tempo.bpm_int,
        beat_times=[float(t) for t in tempo.beat_times],
        sentence=make_sentence(genres[0][0], tempo.bpm_int, emotions[0][0]),
        duration=sound.duration,
        segments={"genre": genre.segments, "emotion": emotion.segments},
    )


# -- the LoRA ----------------------------------------------------------------------------------------


def load_lora(
    pipe, path_or_folder: str | Path, adapter_name: str = DEFAULT_ADAPTER, weight_name: str = LORA_FILE
) -> str:
    """Load a LoRA into ``pipe`` once (diffusers' ``load_lora_weights``, peft backend) and return its name.

    ``path_or_folder``: a .safetensors file, a folder holding ``weight_name``, or a Hub repo id.
    The TechJam file's old keys (``unet.<block>.attn1.processor.to_q_lora.down.weight``) are
    converted by diffusers itself (``.processor.`` dropped, ``to_q_lora.down`` -> ``to_q.lora_A``).
    The adapter is left switched off; ``generate_image`` switches it on at the asked scale.
    """
    if not isinstance(adapter_name, str) or not adapter_name.isidentifier():
        raise ValueError(f"adapter_name must be a simple name, got {adapter_name!r}")
    if adapter_name in _adapters(pipe):
        return adapter_name
    location = Path(str(path_or_folder)).expanduser()
    if location.is_file():
        location, weight_name = location.parent, location.name
    elif location.is_dir() and not (location / weight_name).is_file():
        raise ModelUnavailableError(f"{location} has no {weight_name}.")
    try:
        pipe.load_lora_weights(str(location) if location.exists() else str(path_or_folder),
                               weight_name=weight_name, adapter_name=adapter_name)
    except Exception as error:  # noqa: BLE001  (diffusers/peft raise many types; the user needs one message)
        raise ModelUnavailableError(
            f"The LoRA {path_or_folder} could not be loaded: {type(error).__name__}: {str(error)[:300]}"
        ) from error
    pipe.disable_lora()  # off until a generation asks for it: the UNet may be shared with other tabs
    return adapter_name


def _adapters(pipe) -> list[str]:
    try:
        return [name for names in pipe.get_list_adapters().values() for name in names]
    except (ValueError, AttributeError):  # no peft layers yet
        return []


# -- text to image ----------------------------------------------------------------------------------


@dataclass
class MusicImageResult:
    image: Any  # PIL.Image
    prompt: str
    parameters: dict[str, Any]


def validate_generation(
    prompt: str, steps: int, guidance: float, width: int, height: int, seed: int, lora_scale: float
) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("The image prompt is empty: describe the music first, or write a prompt.")
    if len(prompt) > limits.MAX_PROMPT_CHARS:
        raise InputError(
            f"The image prompt must be at most {limits.MAX_PROMPT_CHARS} characters; it has {len(prompt)}."
        )
    limits.check_number("steps", steps, limits.MIN_STEPS, limits.MAX_STEPS, integer=True)
    limits.check_number("guidance", guidance, limits.MIN_GUIDANCE, limits.MAX_GUIDANCE)
    limits.check_number("seed", seed, 0, limits.MAX_SEED, integer=True)
    limits.check_number("LoRA scale", lora_scale, MIN_LORA_SCALE, MAX_LORA_SCALE)
    for name, side in (("width", width), ("height", height)):
        limits.check_number(name, side, 64, limits.MAX_IMAGE_SIDE, integer=True)
        if int(side) % 8:
            raise InputError(f"The image {name} must be a multiple of 8 (the latent is 1/8 of the image); got {side}.")


def generate_image(
    pipe,
    description: Description | str,
    steps: int = 50,
    guidance: float = 7.5,
    width: int = 512,
    height: int = 512,
    seed: int = DEFAULT_SEED,
    lora_scale: float = 1.0,
    should_stop: Callable[[], bool] | None = None,
    adapter_name: str = DEFAULT_ADAPTER,
    negative_prompt: str = "",
) -> MusicImageResult:
    """Stable Diffusion text-to-image from the description's sentence (or a prompt string).

    ``pipe``: a loaded Stable Diffusion pipeline (any of diffusers' SD 1.x pipelines; its components
    are shared, not copied). Defaults are diffusers' (50 steps, guidance 7.5, 512x512) as the
    original. ``lora_scale`` scales the adapter ``adapter_name`` if ``load_lora`` put it there
    (0: LoRA off, bit-identical to the base model). ``should_stop`` is polled after every step.
    """
    import torch
    from diffusers import StableDiffusionPipeline

    prompt = description.sentence if isinstance(description, Description) else description
    validate_generation(prompt, steps, guidance, width, height, seed, lora_scale)
    if not isinstance(negative_prompt, str) or len(negative_prompt) > limits.MAX_PROMPT_CHARS:
        raise InputError(f"The negative prompt must be text of at most {limits.MAX_PROMPT_CHARS} characters.")
    has_lora = adapter_name in _adapters(pipe)
    if lora_scale and not has_lora:
        lora_scale = 0.0  # nothing to scale; recorded as such in the parameters
    components = {k: v for k, v in pipe.components.items() if k in _text_to_image_components()}
    text_to_image = StableDiffusionPipeline(**components, requires_safety_checker=False)
    text_to_image.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))

    def on_step_end(p, i, t, callback_kwargs):
        if should_stop is not None and should_stop():
            p._interrupt = True
        return {}

    generator = torch.Generator(device="cpu").manual_seed(int(seed))  # same noise on every device
    if has_lora and lora_scale:
        pipe.enable_lora()
        pipe.set_adapters([adapter_name], adapter_weights=[float(lora_scale)])
    try:
        output = text_to_image(
            prompt=prompt,
            negative_prompt=negative_prompt or None,
            num_inference_steps=int(steps),
            guidance_scale=float(guidance),
            width=int(width),
            height=int(height),
            generator=generator,
            callback_on_step_end=on_step_end,
        )
    finally:
        if has_lora:
            pipe.disable_lora()  # the UNet may be shared: leave it as the base model
    if text_to_image.interrupt:
        raise Cancelled()
    parameters = {
        "pipeline": "music_to_image",
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "steps": int(steps),
        "guidance": float(guidance),
        "width": int(width),
        "height": int(height),
        "seed": int(seed),
        "lora_scale": float(lora_scale),
        "lora": adapter_name if has_lora else None,
    }
    if isinstance(description, Description):
        parameters.update(genres=description.genres, emotions=description.emotions, bpm=description.bpm)
    return MusicImageResult(output.images[0], prompt, parameters)


def _text_to_image_components() -> set[str]:
    import inspect

    from diffusers import StableDiffusionPipeline

    return set(inspect.signature(StableDiffusionPipeline.__init__).parameters) - {"self", "requires_safety_checker"}
