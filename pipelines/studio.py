"""The studio: one registry, one device manager, and the loaders that connect them.

app.py builds one ``Studio`` and calls its pipelines with plain Python values; it never sees a
torch device. Nothing is loaded when a Studio is created (except on ZeroGPU, see ``preload``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from . import audio as audio_io
from . import limits, spectrogram
from .device import ZERO_GPU, DeviceManager, choose_device
from core.errors import InputError, ModelUnavailableError
from .models import ModelRegistry, load_or_explain

# Models the sound-to-music tab can run on: the paper's fine-tune first, plain Riffusion second.
SOUND_TO_MUSIC_MODELS = ("mask_model", "riffusion")
CLASSIFIER_ROLES = ("genre_classifier", "emotion_classifier")


def _preset(name: str):
    if name not in spectrogram.PRESETS:
        raise InputError(f"Unknown spectrogram preset {name!r}: use one of {', '.join(spectrogram.PRESETS)}.")
    return spectrogram.PRESETS[name]


def _builder(profile: str):
    """The module that builds a built profile's models on this machine (None for the hub profile)."""
    if profile == "tiny":
        from . import tiny

        return tiny
    if profile == "fullsize":
        from . import fullsize

        return fullsize
    return None


def _default_budget(device: str) -> int | None:
    """STUDIO_MEMORY_BUDGET_GB, else on CUDA 75% of the card (activations, the CUDA context and
    the allocator's cache need the rest), else none: on the CPU models are only dropped on OOM."""
    value = os.environ.get("STUDIO_MEMORY_BUDGET_GB")
    if value:
        return int(float(value) * 2**30)
    if device.startswith("cuda") and not ZERO_GPU:
        import torch

        return int(0.75 * torch.cuda.get_device_properties(torch.device(device)).total_memory)
    return None


@dataclass
class StudioInfo:
    profile: str
    device: str
    dtype: str


class Studio:
    """Owns the registry and the device manager; registers one loader per pipeline."""

    def __init__(self, profile: str = "hub", device: str | None = None, budget_bytes: int | None = None):
        choice = choose_device(device)
        self.registry = ModelRegistry(profile, builder=_builder(profile))
        self.manager = DeviceManager(
            device=choice.device,
            dtype=None if choice.device == "cpu" else choice.dtype,
            budget_bytes=budget_bytes if budget_bytes is not None else _default_budget(choice.device),
        )
        self.info = StudioInfo(profile, choice.device, choice.dtype_name)
        self._styles = None  # the MusicTI style library, opened on first use
        self._styles_lock = threading.Lock()
        self._register_loaders()

    @property
    def device(self) -> str:
        return self.manager.device

    # -- loaders -------------------------------------------------------------------------------------
    def _register_loaders(self) -> None:
        """Name every model the pipelines ask the manager for, and how to load it (nothing loads yet).

        Torch models load in the device's dtype (fp16 on CUDA; None keeps fp32 on the CPU), and SD 1.5
        from its fp16 variant files when the dtype is 16-bit: a Space downloads and holds half.
        """
        from functools import partial

        from . import loaders
        from .models import ROLES

        dtype = self.manager.dtype
        simple = {role: partial(loaders.load_sd_img2img, dtype=dtype, variant=(ROLES[role].variants or (None,))[0])
                  for role in ("riffusion", "mask_model", "sd15")}
        simple.update({"blip": partial(loaders.load_blip, dtype=dtype),
                       "musicgen": partial(loaders.load_musicgen, dtype=dtype),
                       "sentence_embedder": partial(loaders.load_sentence_embedder, dtype=dtype)})
        simple.update({role: loaders.classifier_loader(role) for role in CLASSIFIER_ROLES})
        for role, load in simple.items():
            self.manager.register(role, lambda role=role, load=load: load_or_explain(self.registry.resolve(role), load))
        self.manager.register("amuse", self._load_amuse)

    def _load_amuse(self) -> Any:
        """AMUSE's UNet (Hub) and playlist VAE (not published: a local folder) as one unit."""
        from . import loaders

        vae = load_or_explain(self.registry.resolve("amuse_vae"), loaders.load_amuse_vae)  # explains first
        unet_source = self.registry.resolve("amuse_unet")
        return loaders.ModelBundle(unet=load_or_explain(unet_source, loaders.load_amuse_unet, dtype=self.manager.dtype),
                                   vae=vae,
                                   scheduler=load_or_explain(unet_source, loaders.load_amuse_scheduler))

    def preload(self) -> None:
        """On ZeroGPU the platform wants models on "cuda" before requests arrive."""
        if ZERO_GPU:
            self.manager.preload()

    # -- pipelines ----------------------------------------------------------------------------------
    def load_input_audio(self, source: Any, sample_rate: int, channels: int = 1) -> audio_io.Audio:
        return audio_io.load_audio(source, sample_rate, channels=channels)

    def audio_to_spectrogram(self, audio_source: Any, preset: str, stereo: bool = False):
        """(spectrogram image with its metadata, params) of a whole sound, on the studio's device."""
        params = _preset(preset)
        if stereo and params.name != "riffusion":  # the RGB stereo layout is riffusion's
            raise InputError(f"Stereo spectrograms exist only in the riffusion preset, not {preset}.")
        sound = self.load_input_audio(audio_source, params.sample_rate, channels=2 if stereo else 1)
        return spectrogram.audio_to_image(sound.samples, params, device=self.device), params

    def spectrogram_to_audio(self, image, preset: str | None = None):
        """(peak-normalised samples (channels, n), params); preset None reads the image's own metadata."""
        params = None if preset is None else _preset(preset)
        samples = spectrogram.image_to_audio(image, params, device=self.device)
        params = params or spectrogram.read_metadata(image)["params"]
        return audio_io.peak_normalize(samples, headroom_db=1.0), params

    def preview_mask(self, audio_source: Any, mask_settings) -> tuple[Any, Any]:
        """The input's spectrogram and its change map, without any diffusion (fast, CPU side)."""
        from . import masked_img2img, windows

        sound = self.load_input_audio(audio_source, spectrogram.RIFFUSION.sample_rate)
        mask_settings.validate()
        chunks, _ = windows.split_windows(sound.samples, spectrogram.RIFFUSION)
        images = [spectrogram.audio_to_image(chunk, spectrogram.RIFFUSION) for chunk in chunks]
        masks = [masked_img2img.make_mask(image, mask_settings) for image in images]
        return spectrogram.side_by_side(images), spectrogram.side_by_side(masks)

    def sound_to_music(
        self,
        audio_source: Any,
        settings,
        model: str = "mask_model",
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Everyday sound -> music in the prompt's style (masked img2img on Riffusion spectrograms)."""
        from . import masked_img2img

        if model not in SOUND_TO_MUSIC_MODELS:
            raise InputError(f"Unknown model {model!r}: use one of {', '.join(SOUND_TO_MUSIC_MODELS)}.")
        settings.validate()
        sound = self.load_input_audio(audio_source, spectrogram.RIFFUSION.sample_rate)
        return self.manager.run(
            model,
            lambda pipe: masked_img2img.sound_to_music(
                pipe, sound.samples, settings, device=self.device, on_progress=on_progress, should_stop=should_stop
            ),
        )

    def describe_music(self, audio_source: Any):
        """Genre, emotion and tempo of a whole track, and the sentence that prompts the image (CPU side)."""
        from . import music_to_image

        sound = self.load_input_audio(audio_source, music_to_image.SAMPLE_RATE)
        genre_model, emotion_model = (self.manager.get_cpu(role).model for role in CLASSIFIER_ROLES)
        return music_to_image.describe_music(sound.samples, music_to_image.SAMPLE_RATE, genre_model, emotion_model)

    def music_to_image(
        self,
        audio_source: Any,
        description: str | None = None,
        *,
        steps: int = 50,
        guidance: float = 7.5,
        width: int = 512,
        height: int = 512,
        seed: int = 0,
        lora_scale: float = 1.0,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Sound -> picture. ``description`` replaces the generated sentence when given (non-empty).

        Returns (MusicImageResult, Description or None): the description is None when the caller's
        text was used and no audio was given.
        """
        from . import music_to_image

        text = (description or "").strip()
        # check the settings before the (slow) description, with a stand-in when the text comes later
        music_to_image.validate_generation(text or "-", steps, guidance, width, height, seed, lora_scale)
        described = None
        if not text:
            if audio_source is None:
                raise InputError("Give a piece of music to describe, or write a description.")
            described = self.describe_music(audio_source)
            text = described.sentence
        music_to_image.validate_generation(text, steps, guidance, width, height, seed, lora_scale)
        try:
            lora = self.registry.resolve("m2i_lora") if lora_scale else None
        except ModelUnavailableError as error:
            raise ModelUnavailableError(f"{error} Or set the LoRA scale to 0 for plain Stable Diffusion 1.5.") from error

        def generate(pipe):
            if lora is not None:
                music_to_image.load_lora(pipe, lora.location)
            return music_to_image.generate_image(pipe, described or text, steps=steps, guidance=guidance, width=width,
                                                 height=height, seed=seed, lora_scale=lora_scale,
                                                 should_stop=should_stop)

        return self.manager.run("sd15", generate), described

    def caption(self, image: Any) -> str:
        from . import image_to_music

        picture = image_to_music.load_image(image)
        return self.manager.run("blip", lambda blip: image_to_music.caption_image(blip.model, blip.processor, picture))

    def image_to_music(
        self,
        image: Any,
        prompt: str | None = None,
        *,
        seconds: float = 10.0,
        guidance: float = 3.0,
        temperature: float = 1.0,
        top_k: int = 250,
        top_p: float = 0.0,
        seed: int = 0,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Picture -> caption (BLIP) -> music (MusicGen). ``prompt`` replaces the caption when given.

        Returns (caption or prompt used, MusicResult).
        """
        from . import image_to_music

        text = (prompt or "").strip()
        image_to_music.validate_music(text or "-", seconds, guidance, temperature, top_k, top_p, seed)
        if not text:
            if image is None:
                raise InputError("Give a picture to caption, or write a music prompt.")
            text = self.caption(image)
        result = self.manager.run(
            "musicgen",
            lambda gen: image_to_music.generate_music(gen.model, gen.processor, text, seconds=seconds, guidance=guidance,
                                                      temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                                                      should_stop=should_stop),
        )
        return text, result

    def recommend_songs(self, image: Any = None, caption: str | None = None, k: int = 10):
        """(caption used, top-k songs whose lyric lines are closest in meaning to the caption)."""
        from . import image_to_music

        limits.check_number("number of songs", k, 1, 20, integer=True)
        text = (caption or "").strip()
        if not text:
            if image is None:
                raise InputError("Give a picture to caption, or write a caption.")
            text = self.caption(image)
        matches = self.manager.run(
            "sentence_embedder", lambda emb: image_to_music.recommend(emb.model, emb.processor, None, text, k=int(k))
        )
        return text, matches

    def style_names(self) -> list[str]:
        """Names of the MusicTI styles in the styles folder (builds the tiny ones on the tiny profile)."""
        return self._style_library().names()

    def _style_library(self):
        from .style_interpolation import StyleLibrary

        with self._styles_lock:
            if self._styles is None:
                self._styles = StyleLibrary(self.registry.resolve("music_styles").location)
            return self._styles

    def style_interpolation(
        self,
        audio_source: Any,
        style_names: list[str],
        weights: list[float] | None = None,
        *,
        strength: float = 0.7,
        steps: int = 50,
        guidance: float = 5.0,
        seed: int = 23,
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Content audio rendered in a weighted mix of learned styles, on the shared Riffusion model."""
        from . import style_interpolation

        if not isinstance(style_names, (list, tuple)) or not all(isinstance(n, str) for n in style_names):
            raise InputError("Pick one to four styles by name.")
        style_interpolation.validate_settings(len(style_names), weights, strength, steps, guidance, seed)
        styles = self._style_library().get(list(style_names))
        sound = self.load_input_audio(audio_source, spectrogram.RIFFUSION.sample_rate)
        return self.manager.run(
            "riffusion",
            lambda pipe: style_interpolation.apply_styles(pipe, sound.samples, styles, weights, strength, steps,
                                                          guidance, seed, should_stop=should_stop,
                                                          device=self.device, on_progress=on_progress),
        )

    def playlist_to_music(
        self,
        tracks: Any,
        *,
        steps: int = 50,
        guidance: float = 7.5,
        seed: int = 0,
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """A playlist's taste (AMUSE VAE) conditions a spectrogram diffusion model: new music at 22.05 kHz."""
        from . import playlist_to_music

        playlist_to_music.validate_generation(steps, guidance, seed)
        tracks = playlist_to_music.load_tracks(tracks)  # all checked before any model loads
        return self.manager.run(
            "amuse",
            lambda m: playlist_to_music.playlist_to_music(m.unet, m.vae, m.scheduler, tracks, steps=steps,
                                                          guidance=guidance, seed=seed, should_stop=should_stop,
                                                          on_progress=on_progress),
        )

    # -- what the About panel shows ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "profile": self.info.profile,
            "device": self.info.device,
            "dtype": self.info.dtype,
            "zero_gpu": ZERO_GPU,
            "models": self.manager.status(),
            "roles": self.registry.describe(),
        }
