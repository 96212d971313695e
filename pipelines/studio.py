"""The studio: one registry, one device manager, and the loaders that connect them.

app.py builds one ``Studio`` and calls its pipelines with plain Python values; it never sees a
torch device. Nothing is loaded when a Studio is created (except on ZeroGPU, see ``preload``).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from core.errors import InputError, ModelUnavailableError, StudioError

from . import audio as audio_io
from . import limits, spectrogram, windows
from .device import ZERO_GPU, DeviceManager, choose_device
from .loaders import import_model_libraries
from .models import ModelRegistry, load_or_explain
from .results import Result, SongRecommendationResult, SpectrogramResult

log = logging.getLogger(__name__)

# Models the sound-to-music tab can run on: the paper's fine-tune first, plain Riffusion second.
SOUND_TO_MUSIC_MODELS = ("mask_model", "riffusion")
CLASSIFIER_ROLES = ("genre_classifier", "emotion_classifier")
# Models Riffusion's text to music can run on (both are SD 1.x fine-tunes on riffusion spectrograms)
TEXT_TO_MUSIC_MODELS = ("riffusion", "mask_model")
# The device manager's entries each tab runs on (the About tab names the tabs a missing one stops).
TAB_MODELS = {
    "Sound to music": SOUND_TO_MUSIC_MODELS,
    "Music to image": ("sd15", *CLASSIFIER_ROLES),
    "Style interpolation": ("riffusion",),
    "Text to music": TEXT_TO_MUSIC_MODELS,
    "Image to music": ("blip", "musicgen", "musicgen_melody", "sentence_embedder"),
    "Playlist to music": ("amuse",),
    "CLAP metrics (every tab that makes sound; the tabs work without them)": ("clap",),
}


def _preset(name: str):
    if name not in spectrogram.PRESETS:
        raise InputError(f"Unknown spectrogram preset {name!r}: use one of {', '.join(spectrogram.PRESETS)}.")
    return spectrogram.PRESETS[name]


def _made_by(result: Result, model: str | None) -> Result:
    """Record the registry role(s) that made ``result`` next to its parameters."""
    result.parameters["model"] = model
    return result


def _builder(profile: str):
    """The module that builds a built profile's models on this machine (None for the hub profile)."""
    if profile == "tiny":
        from . import tiny

        return tiny
    if profile == "fullsize":
        from . import fullsize

        return fullsize
    return None


def available_memory_bytes() -> int | None:
    """Host memory available for new allocations now (Linux ``MemAvailable``: free memory plus the
    page cache that can be dropped), else the free pages the OS reports; None when neither is known."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kiB
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _default_budget(device: str) -> int | None:
    """Bytes of weights the manager keeps loaded on ``device``: STUDIO_MEMORY_BUDGET_GB when set; on
    CUDA 75% of the card (activations, the CUDA context and the allocator's cache need the rest);
    on the CPU and MPS (which shares host memory) 75% of the host memory available when the Studio
    starts (the rest for activations, audio and the app), so a CPU Space drops the least recently
    used model instead of running out of memory (every tab once holds ~17.6 GB in fp32); on ZeroGPU
    none (the platform places the models)."""
    value = os.environ.get("STUDIO_MEMORY_BUDGET_GB")
    if value:
        try:
            gigabytes = float(value)
        except ValueError:
            gigabytes = -1.0
        if not gigabytes > 0:
            raise StudioError(f"STUDIO_MEMORY_BUDGET_GB must be a positive number of GiB, not {value!r}.")
        return int(gigabytes * 2**30)
    if ZERO_GPU:
        return None
    if device.startswith("cuda"):
        import torch

        return int(0.75 * torch.cuda.get_device_properties(torch.device(device)).total_memory)
    available = available_memory_bytes()
    return None if available is None else int(0.75 * available)


# Windows of sound to music denoised in one UNet batch, on CUDA only. Each window adds about 0.7 GB
# of fp16 activations at 512x512 with CFG (README GPU table: 2.84 GB peak for 2.13 GB of weights):
# 1 GiB is asked free per window. Public img2img figures show ~2x throughput at 4 images on
# A100-class cards and nothing on a T4, so smaller cards keep one window at a time (as the CPU).
WINDOW_BATCH_MAX = 4
WINDOW_ACTIVATION_BYTES = 2**30
WINDOW_BATCH_MIN_CARD_BYTES = 40 * 2**30


def window_batch_size(device: str, windows: int) -> int:
    """Windows of a sound to denoise at once on ``device`` (1 <= result <= windows).

    STUDIO_WINDOW_BATCH=N forces N (1 turns batching off). Otherwise 1 on the CPU and MPS (one
    window already keeps every core busy: batching only delays the first result) and on cards under
    40 GiB; on larger CUDA cards as many as the free memory holds at 1 GiB a window, at most 4.
    Raises StudioError for a forced value that is not a whole number >= 1.
    """
    value = os.environ.get("STUDIO_WINDOW_BATCH")
    if value:
        if not value.strip().isdigit() or int(value) < 1:
            raise StudioError(f"STUDIO_WINDOW_BATCH must be a whole number >= 1, not {value!r}.")
        return max(1, min(int(value), windows))
    if not device.startswith("cuda"):
        return 1
    import torch

    free, total = torch.cuda.mem_get_info(torch.device(device))
    if total < WINDOW_BATCH_MIN_CARD_BYTES:
        return 1
    return max(1, min(WINDOW_BATCH_MAX, windows, free // WINDOW_ACTIVATION_BYTES))


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
        if profile == "tiny" and choice.device == "cpu":
            import torch

            # tiny models' ops are too small to split across threads, and on a busy CPU the threads
            # wait on each other: one thread made a tiny click 7x faster on a loaded 2-core machine
            torch.set_num_threads(1)
        self.unavailable: dict[str, str] = {}  # manager entry -> why it could not be preloaded
        self._styles = None  # the MusicTI style library, opened on first use
        self._styles_lock = threading.Lock()
        self._register_loaders()

    @property
    def device(self) -> str:
        return self.manager.device

    @property
    def signal_device(self) -> str:
        """Where the spectrogram tab's transforms run: the model device, except on ZeroGPU, where
        CUDA exists only inside ``spaces.GPU`` calls and those are kept for the models."""
        return "cpu" if ZERO_GPU else self.manager.device

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
                       "musicgen_melody": partial(loaders.load_musicgen_melody, dtype=dtype),
                       "sentence_embedder": partial(loaders.load_sentence_embedder, dtype=dtype),
                       "clap": partial(loaders.load_clap, dtype=dtype)})
        simple.update({role: loaders.classifier_loader(role) for role in CLASSIFIER_ROLES})
        for role, load in simple.items():
            self.manager.register(role, lambda role=role, load=load: load_or_explain(self.registry.resolve(role), load))
        for role in ("riffusion", "mask_model", "sd15"):  # SDPA check, channels_last, STUDIO_COMPILE
            load = simple[role]
            self.manager.register(role, lambda role=role, load=load: loaders.tune_sd(
                load_or_explain(self.registry.resolve(role), load), self.device), replace=True)
        self.manager.register("amuse", self._load_amuse)

    def _load_amuse(self) -> Any:
        """AMUSE's UNet (Hub) and playlist VAE (not published: a local folder) as one unit."""
        from . import loaders

        vae = load_or_explain(self.registry.resolve("amuse_vae"), loaders.load_amuse_vae)  # explains first
        unet_source = self.registry.resolve("amuse_unet")
        return loaders.ModelBundle(unet=load_or_explain(unet_source, loaders.load_amuse_unet, dtype=self.manager.dtype),
                                   vae=vae,
                                   scheduler=load_or_explain(unet_source, loaders.load_amuse_scheduler))

    def gpu_task(self, fn: Callable, duration: int | Callable = 60) -> Callable:
        """``fn`` wrapped to hold the GPU on ZeroGPU (``spaces.GPU`` with that duration), else ``fn`` itself."""
        return self.manager.gpu_task(fn, duration=duration)

    def preload(self) -> None:
        """On ZeroGPU the platform wants models on "cuda" before requests arrive: place every model
        that can be loaded. One that cannot (the unpublished classifiers or AMUSE VAE not provided,
        a repo not cached offline) is recorded in ``unavailable`` with its message, for the About
        tab, and the app keeps serving: its tabs give the same message when used. Elsewhere nothing
        loads until first use."""
        if not ZERO_GPU:
            return
        for name in self.manager.names():
            try:
                self.manager.preload([name])
            except ModelUnavailableError as error:
                tabs = self.tabs_needing(name)
                self.unavailable[name] = str(error)
                log.warning("not loaded at start: %s (needed by %s): %s", name, ", ".join(tabs) or "no tab", error)

    @staticmethod
    def tabs_needing(name: str) -> list[str]:
        """The tabs that run on the manager entry ``name`` (TAB_MODELS)."""
        return [tab for tab, names in TAB_MODELS.items() if name in names]

    def warm_up(self) -> None:
        """Pay now what every tab's first click would: import diffusers, transformers, Keras and librosa's
        beat tracker and, on the tiny profile, build every tiny model (a few seconds each, once per
        cache). Loads no model into memory. ``app.start`` runs it in a background thread."""
        import_model_libraries()
        import librosa.beat  # noqa: F401  (music to image's tempo: numba compiles on first import)

        import classifiers  # noqa: F401  (sets KERAS_BACKEND=torch before keras loads)
        import keras  # noqa: F401
        if self.registry.profile == "tiny":
            from .models import ROLES

            for role in ROLES:
                if self.registry.builder.has(self.registry.family(role)):
                    self.registry.resolve(role)  # builds the role's folder once

    # -- pipelines ----------------------------------------------------------------------------------
    # Each method takes the inputs (audio, pictures, text) and the pipeline's settings dataclass,
    # leaves validation to the pipeline (called before any model loads), and returns the pipeline's
    # result with the registry role that made it in ``parameters["model"]``.

    def audio_seconds(self, audio_source: Any) -> float:
        """Seconds of an audio file from its header, at most the input limit; the limit itself when it
        cannot be read (a broken file fails properly when the pipeline runs). For ZeroGPU estimates."""
        try:
            return min(float(audio_io.probe_duration(audio_source)), limits.MAX_INPUT_SECONDS)
        except Exception:  # noqa: BLE001
            return limits.MAX_INPUT_SECONDS

    def load_input_audio(self, source: Any, sample_rate: int, channels: int = 1) -> audio_io.Audio:
        return audio_io.load_audio(source, sample_rate, channels=channels)

    def audio_to_spectrogram(self, audio_source: Any, preset: str, stereo: bool = False) -> SpectrogramResult:
        """A whole sound as one spectrogram image (with its metadata), on the studio's device."""
        params = _preset(preset)
        if stereo and params.name != "riffusion":  # the RGB stereo layout is riffusion's
            raise InputError(f"Stereo spectrograms exist only in the riffusion preset, not {preset}.")
        sound = self.load_input_audio(audio_source, params.sample_rate, channels=2 if stereo else 1)
        image = spectrogram.audio_to_image(sound.samples, params, device=self.signal_device)
        return SpectrogramResult(image=image, params=params,
                                 parameters={"pipeline": "audio_to_spectrogram", "model": None, "preset": params.name,
                                             "stereo": bool(stereo)})

    def spectrogram_to_audio(self, image: Any, preset: str | None = None) -> SpectrogramResult:
        """Peak-normalised sound (channels, n) of a spectrogram image; preset None reads the image's metadata."""
        params = None if preset is None else _preset(preset)
        samples = spectrogram.image_to_audio(image, params, device=self.signal_device)
        params = params or spectrogram.read_metadata(image)["params"]
        return SpectrogramResult(image=image, params=params, audio=audio_io.peak_normalize(samples, headroom_db=1.0),
                                 sample_rate=params.sample_rate,
                                 parameters={"pipeline": "spectrogram_to_audio", "model": None, "preset": params.name})

    def preview_mask(self, audio_source: Any, mask_settings) -> Result:
        """The input's spectrogram and its change map, without any diffusion (fast, CPU side)."""
        from . import masked_img2img

        sound = self.load_input_audio(audio_source, spectrogram.RIFFUSION.sample_rate)
        return _made_by(masked_img2img.preview_mask(sound.samples, mask_settings), None)

    def sound_to_music(
        self,
        audio_source: Any,
        settings,
        model: str = "mask_model",
        *,
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Everyday sound -> music in the prompt's style (masked img2img on Riffusion spectrograms).

        ``settings``: ``masked_img2img.SoundToMusicSettings``; ``model``: one of SOUND_TO_MUSIC_MODELS.
        """
        import_model_libraries()
        from . import masked_img2img

        if model not in SOUND_TO_MUSIC_MODELS:
            raise InputError(f"Unknown model {model!r}: use one of {', '.join(SOUND_TO_MUSIC_MODELS)}.")
        settings.validate()  # before the (slow) audio decode and model load
        try:
            lora = self.registry.resolve("s2m_lora") if settings.lora_scale else None
        except ModelUnavailableError as error:
            raise ModelUnavailableError(f"{error} Or set the genre LoRA scale to 0.") from error
        sound = self.load_input_audio(audio_source, spectrogram.RIFFUSION.sample_rate)
        count = len(windows.plan_windows(sound.samples.shape[-1], spectrogram.RIFFUSION).starts)

        def render_plain(pipe):
            return masked_img2img.render_with_model(
                pipe, sound.samples, settings, device=self.device, on_progress=on_progress, should_stop=should_stop,
                batch_size=window_batch_size(self.device, count))

        def render(pipe):
            if lora is None:
                return render_plain(pipe)
            from .music_to_image import fused_lora, load_lora

            name = load_lora(pipe, lora.location, adapter_name="genre")  # loaded once, left switched off
            with fused_lora(pipe, name, float(settings.lora_scale)):  # in the weights for this call, then exact base
                return render_plain(pipe)

        rendered = self.manager.run(model, render)
        # metrics, image strips and normalising need no GPU: outside its lock, the next request runs
        result = masked_img2img.finish(rendered, settings)
        if lora is not None:
            result.parameters["lora"] = lora.location
        return _made_by(result, model)

    def describe_music(self, audio_source: Any):
        """Genre, emotion and tempo of a whole track, and the sentence that prompts the image (CPU side)."""
        import_model_libraries()
        from . import music_to_image

        sound = self.load_input_audio(audio_source, music_to_image.SAMPLE_RATE)
        genre_model, emotion_model = (self.manager.get_cpu(role).model for role in CLASSIFIER_ROLES)
        described = music_to_image.describe_music(sound.samples, music_to_image.SAMPLE_RATE, genre_model, emotion_model)
        return _made_by(described, "+".join(CLASSIFIER_ROLES))

    def music_to_image(
        self,
        audio_source: Any,
        description: str | None = None,
        settings=None,
        *,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Sound -> picture. ``description`` replaces the generated sentence when given (non-empty).

        ``settings``: ``music_to_image.MusicToImageSettings`` (None: its defaults). The result's
        ``description`` is the ``Description`` made from the audio, or None when the caller's text was used.
        """
        import_model_libraries()
        from . import music_to_image

        settings = (settings or music_to_image.MusicToImageSettings()).validate()  # before the slow description
        text = limits.optional_text("image prompt", description)
        if not text and audio_source is None:
            raise InputError("Give a piece of music to describe, or write a description.")
        try:
            lora = self.registry.resolve("m2i_lora") if settings.lora_scale else None
        except ModelUnavailableError as error:
            raise ModelUnavailableError(f"{error} Or set the LoRA scale to 0 for plain Stable Diffusion 1.5.") from error
        prompt = text or self.describe_music(audio_source)

        def generate(pipe):
            if lora is not None:
                music_to_image.load_lora(pipe, lora.location)
            return music_to_image.generate_image(pipe, prompt, settings, should_stop=should_stop)

        return _made_by(self.manager.run("sd15", generate), "sd15")

    def _caption(self, image: Any) -> str:
        import_model_libraries()
        from . import image_to_music

        picture = image_to_music.load_image(image)
        return self.manager.run("blip", lambda blip: image_to_music.caption_image(blip.model, blip.processor, picture))

    def image_to_music(
        self,
        image: Any,
        prompt: str | None = None,
        settings=None,
        melody: Any = None,
        *,
        should_stop: Callable[[], bool] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
    ):
        """Picture -> caption (BLIP) -> music (MusicGen). ``prompt`` replaces the caption when given.

        ``settings``: ``image_to_music.ImageToMusicSettings`` (None: its defaults). ``melody``: a tune
        (path, gradio audio tuple or ``Audio``; any rate, at most ``MAX_INPUT_SECONDS``, its first 30 s
        are used) that MusicGen-melody follows instead of musicgen-small making its own. The result's
        ``prompt`` is the caption or the caller's prompt.
        """
        import_model_libraries()
        from . import image_to_music

        settings = (settings or image_to_music.ImageToMusicSettings()).validate()  # before the caption
        text = limits.optional_text("music prompt", prompt)
        chroma = None
        if melody is not None:  # the tune is checked before any model loads
            from .melody import melody_chroma

            chroma = melody_chroma(audio_io.load_audio(melody, 32000, min_seconds=None, allow_silence=True))
            image_to_music.check_melody_length(settings)
        if not text:
            if image is None:
                raise InputError("Give a picture to caption, or write a music prompt.")
            text = self._caption(image)
        role = "musicgen" if chroma is None else "musicgen_melody"
        result = self.manager.run(
            role,
            lambda gen: image_to_music.generate_music(gen.model, gen.processor, text, settings, melody=chroma,
                                                      should_stop=should_stop, on_progress=on_progress),
        )
        return _made_by(result, role)

    def recommend_songs(self, image: Any = None, caption: str | None = None, k: int = 10) -> SongRecommendationResult:
        """The top-k songs whose lyric lines are closest in meaning to the caption (the picture's, or the caller's)."""
        import_model_libraries()
        from . import song_recommendation

        limits.SONG_COUNT.check("number of songs", k)
        text = limits.optional_text("caption", caption)
        if not text:
            if image is None:
                raise InputError("Give a picture to caption, or write a caption.")
            text = self._caption(image)
        matches = self.manager.run(
            "sentence_embedder",
            lambda emb: song_recommendation.recommend(emb.model, emb.processor, None, text, k=int(k)),
        )
        return SongRecommendationResult(caption=text, matches=matches,
                                        parameters={"pipeline": "recommend_songs", "model": "sentence_embedder",
                                                    "caption": text, "k": int(k)})

    def style_names(self) -> list[str]:
        """Names of the MusicTI styles in the styles folder (builds the tiny ones on the tiny profile)."""
        return self._style_library().names()

    def _style_library(self):
        from .style_embedding import StyleLibrary

        with self._styles_lock:
            if self._styles is None:
                self._styles = StyleLibrary(self.registry.resolve("music_styles").location)
            return self._styles

    def style_interpolation(
        self,
        audio_source: Any,
        style_names: list[str],
        weights: list[float] | None = None,
        settings=None,
        *,
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Content audio rendered in a weighted mix of learned styles, on the shared Riffusion model.

        ``settings``: ``style_interpolation.StyleInterpolationSettings`` (None: MusicTI's defaults).
        """
        import_model_libraries()
        from . import style_interpolation

        if not isinstance(style_names, (list, tuple)) or not all(isinstance(n, str) for n in style_names):
            raise InputError("Pick one to four styles by name.")
        style_interpolation.check_style_mix(len(style_names), weights)
        settings = (settings or style_interpolation.StyleInterpolationSettings()).validate()
        styles = self._style_library().get(list(style_names))
        sound = self.load_input_audio(audio_source, spectrogram.RIFFUSION.sample_rate)
        count = len(windows.plan_windows(sound.samples.shape[-1], spectrogram.RIFFUSION).starts)
        result = self.manager.run(
            "riffusion",
            lambda pipe: style_interpolation.apply_styles(pipe, sound.samples, styles, weights, settings,
                                                          should_stop=should_stop, device=self.device,
                                                          on_progress=on_progress,
                                                          batch_size=window_batch_size(self.device, count)),
        )
        return _made_by(result, "riffusion+music_styles")

    def playlist_to_music(
        self,
        tracks: Any,
        settings=None,
        *,
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """A playlist's taste (AMUSE VAE) conditions a spectrogram diffusion model: new music at 22.05 kHz.

        ``settings``: ``playlist_to_music.PlaylistToMusicSettings`` (None: its defaults).
        """
        import_model_libraries()
        from . import playlist_to_music

        settings = (settings or playlist_to_music.PlaylistToMusicSettings()).validate()
        tracks = playlist_to_music.load_tracks(tracks)  # all checked before any model loads
        result = self.manager.run(
            "amuse",
            lambda m: playlist_to_music.playlist_to_music(m.unet, m.vae, m.scheduler, tracks, settings,
                                                          should_stop=should_stop, on_progress=on_progress),
        )
        return _made_by(result, "amuse_unet+amuse_vae")

    # -- metrics ----------------------------------------------------------------------------------------
    def with_clap(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(embedder)`` with a ``clap.ClapEmbedder`` on the studio's device (the ``clap`` role), under
        the GPU lock: CLAP score, content preservation, style fit and FAD embeddings all go through it."""
        import_model_libraries()
        from .clap import ClapEmbedder

        return self.manager.run("clap", lambda bundle: fn(ClapEmbedder(bundle, self.device)))

    def add_clap_metrics(self, result: Result, *, content: Any = None, prompt: str | None = None,
                         styles: list[str] | None = None, playlist: Any = None) -> Result:
        """Add the CLAP values that fit ``result`` (``clap.result_scores``) to ``result.metrics``, so the
        saved files carry them. ``content``: the input sound (path or anything ``load_audio`` reads);
        ``playlist``: the tracks. The result keeps its other metrics; it is returned."""
        from .clap import CLAP_SAMPLE_RATE, result_scores

        sound = self.load_input_audio(content, CLAP_SAMPLE_RATE) if content is not None else None
        tracks = [self.load_input_audio(t, CLAP_SAMPLE_RATE) for t in playlist] if playlist else None
        scores = self.with_clap(lambda embedder: result_scores(
            embedder, result.audio, result.sample_rate, prompt=prompt, styles=styles,
            content=(sound.samples, sound.sample_rate) if sound is not None else None,
            playlist=[(t.samples, t.sample_rate) for t in tracks] if tracks else None))
        result.metrics.update(scores)
        return result

    def metrics_by_default(self) -> bool:
        """Whether the UI computes CLAP metrics unless told: on a GPU yes, on a CPU no (seconds per result)."""
        return self.info.device != "cpu"

    def text_to_music(
        self,
        settings=None,
        model: str = "riffusion",
        *,
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Prompt -> music of any length up to 60 s: Riffusion windows continuing each other.

        ``settings``: ``settings.TextToMusicSettings`` (None: its defaults); ``model``: one of
        TEXT_TO_MUSIC_MODELS. Settings are checked before any model loads.
        """
        import_model_libraries()
        from . import text_to_music

        if model not in TEXT_TO_MUSIC_MODELS:
            raise InputError(f"Unknown model {model!r}: use one of {', '.join(TEXT_TO_MUSIC_MODELS)}.")
        settings = (settings or text_to_music.TextToMusicSettings()).validate()
        result = self.manager.run(
            model,
            lambda pipe: text_to_music.text_to_music(pipe, settings, device=self.device, on_progress=on_progress,
                                                     should_stop=should_stop),
        )
        return _made_by(result, model)

    def interpolate_prompts(
        self,
        settings=None,
        *,
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Riffusion's interpolation from (prompt A, seed A) to (prompt B, seed B) over N windows.

        ``settings``: ``settings.PromptInterpolationSettings`` (None: its defaults), checked before
        any model loads. Runs on the shared ``riffusion`` model.
        """
        import_model_libraries()
        from . import prompt_interpolation

        settings = (settings or prompt_interpolation.PromptInterpolationSettings()).validate()
        result = self.manager.run(
            "riffusion",
            lambda pipe: prompt_interpolation.interpolate_prompts(pipe, settings, device=self.device,
                                                                  on_progress=on_progress, should_stop=should_stop),
        )
        return _made_by(result, "riffusion")

    # -- what the About panel shows ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "profile": self.info.profile,
            "device": self.info.device,
            "dtype": self.info.dtype,
            "zero_gpu": ZERO_GPU,
            "models": self.manager.status(),
            "roles": self.registry.describe(),
            "unavailable": [{"model": name, "tabs": self.tabs_needing(name), "message": message}
                            for name, message in self.unavailable.items()],
        }
