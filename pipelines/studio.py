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


class CpuModel:
    """A model that stays on the CPU whatever the device (Keras places its own tensors): the manager
    loads it once and lists it; it is only ever fetched with ``get_cpu``, so it is never moved and
    takes none of the GPU budget."""

    def __init__(self, model: Any):
        self.model = model
        # Keras weights: what the About panel shows as the model's size
        self.nbytes = sum(int(w.numpy().nbytes) for w in getattr(getattr(model, "model", None), "weights", []))

    def to(self, *args, **kwargs) -> CpuModel:
        return self


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
        self.registry = ModelRegistry(profile)
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
        for role in ("riffusion", "mask_model", "sd15"):
            self.manager.register(role, lambda role=role: self.load_sd_img2img(role))
        for role in CLASSIFIER_ROLES:
            self.manager.register(role, lambda role=role: CpuModel(self.load_classifier(role)))
        self.manager.register("amuse", self.load_amuse)
        for role, loader in (("blip", "load_blip"), ("musicgen", "load_musicgen"),
                             ("sentence_embedder", "load_sentence_embedder")):
            self.manager.register(role, lambda role=role, loader=loader: self.load_with_processor(role, loader))

    def load_amuse(self) -> Any:
        """AMUSE's UNet (Hub) and playlist VAE (not published: a local folder) as one unit."""
        from . import playlist_to_music

        vae = self.registry.resolve("amuse_vae")  # explains first when the VAE is missing
        vae_model = load_or_explain(vae, playlist_to_music.load_vae)
        unet_source = self.registry.resolve("amuse_unet")
        unet = load_or_explain(unet_source, playlist_to_music.load_unet)
        scheduler = load_or_explain(unet_source, playlist_to_music.load_scheduler)
        return playlist_to_music.AmuseModels(unet, vae_model, scheduler)

    def load_with_processor(self, role: str, loader: str) -> Any:
        """A transformers model and its processor (image to music), as one unit the manager can move."""
        from . import image_to_music

        model, processor = load_or_explain(self.registry.resolve(role), getattr(image_to_music, loader))
        return image_to_music.WithProcessor(model, processor)

    def load_classifier(self, role: str) -> Any:
        """A TechJam Keras classifier (genre or emotion) from a local folder or a Hub repo holding its .h5."""
        from classifiers import emotion, genre

        module = {"genre_classifier": genre, "emotion_classifier": emotion}[role]
        source = self.registry.resolve(role)
        if source.is_local:
            return load_or_explain(source, module.load)

        def download_and_load(repo: str, revision: str):
            from huggingface_hub import hf_hub_download

            return module.load(hf_hub_download(repo, module.WEIGHTS_FILE, revision=revision))

        return load_or_explain(source, download_and_load)

    def load_sd_img2img(self, role: str) -> Any:
        """A Stable Diffusion img2img pipeline for ``role``, on the CPU, fp32 (moved by the manager)."""
        from diffusers import StableDiffusionImg2ImgPipeline

        source = self.registry.resolve(role)
        pipe = load_or_explain(
            source,
            StableDiffusionImg2ImgPipeline.from_pretrained,
            safety_checker=None,
            requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(leave=False)
        return pipe

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
        from . import masked_img2img

        sound = self.load_input_audio(audio_source, spectrogram.RIFFUSION.sample_rate)
        return masked_img2img.preview_mask(sound.samples, mask_settings)

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
        from . import song_recommendation

        limits.check_number("number of songs", k, 1, 20, integer=True)
        text = (caption or "").strip()
        if not text:
            if image is None:
                raise InputError("Give a picture to caption, or write a caption.")
            text = self.caption(image)
        matches = self.manager.run(
            "sentence_embedder",
            lambda emb: song_recommendation.recommend(emb.model, emb.processor, None, text, k=int(k)),
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
