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

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import runs
from core.errors import Cancelled, InputError, ModelUnavailableError

from pipelines.signal import audio as audio_io
from pipelines.schema import limits
from pipelines.schema.results import Result
from pipelines.schema.settings import MusicToImageSettings

TEMPLATE = "This piece of music falls under the {genre} genre. It is of tempo {bpm} and evokes a sense of {emotion}."
NO_BEAT_TEMPLATE = "This piece of music falls under the {genre} genre. It has no steady beat and evokes a sense of {emotion}."
NO_BEAT = "no steady beat"
SAMPLE_RATE = 22050  # both classifiers and the beat tracker work at 22.05 kHz, as the original
LORA_FILE = "pytorch_lora_weights.safetensors"
DEFAULT_ADAPTER = "m2i"
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


def _lora_layers(unet, adapter_name: str) -> list:
    """The peft layers of ``unet`` that hold ``adapter_name`` (one per adapted projection)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [module for module in unet.modules()
            if isinstance(module, BaseTunerLayer) and adapter_name in getattr(module, "lora_A", {})]


@contextmanager
def fused_lora(pipe, adapter_name: str, scale: float) -> Iterator[int]:
    """The adapter ``adapter_name`` fused into ``pipe.unet``'s weights at ``scale`` while inside; the
    exact base weights afterwards. Yields the number of projections fused (0: nothing to fuse).

    W' = W + scale * (alpha / r) * B @ A, computed by peft on the weights' device (diffusers'
    ``fuse_lora``), so every UNet call inside costs what the plain model costs (the adapters no longer
    run beside every projection). On the way out ``unfuse_lora`` subtracts the same product and the
    fused projections' weights are then copied back from a copy taken before fusing: W + d - d is W
    only up to rounding (in fp16 an ulp per call, which would drift over many calls), the copy is W
    bit for bit. The copy weighs what the adapted projections weigh (SD 1.5: ~93 M parameters) and
    lives only for the call. The LoRA is left switched off (``disable_lora``): the UNet may be shared.
    """
    layers = _lora_layers(pipe.unet, adapter_name) if scale else []
    if not layers:
        yield 0
        return
    originals = [layer.get_base_layer().weight.detach().clone() for layer in layers]
    pipe.enable_lora()  # a disabled peft layer unmerges itself on its next forward: enable first
    pipe.set_adapters([adapter_name], adapter_weights=[float(scale)])
    try:
        pipe.fuse_lora(components=["unet"], lora_scale=1.0, adapter_names=[adapter_name])
        yield len(layers)
    finally:
        import torch

        if any(layer.merged for layer in layers):
            with warnings.catch_warnings():  # peft warns for every other adapted layer: "Already unmerged"
                warnings.filterwarnings("ignore", message="Already unmerged")
                pipe.unfuse_lora(components=["unet"])

        with torch.no_grad():
            for layer, original in zip(layers, originals):
                layer.get_base_layer().weight.copy_(original)
        pipe.disable_lora()


def _adapters(pipe) -> list[str]:
    try:
        return [name for names in pipe.get_list_adapters().values() for name in names]
    except (ValueError, AttributeError):  # no peft layers yet
        return []


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
