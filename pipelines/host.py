"""What the Studio stands on: the model registry, the device manager and the loaders that connect
them, ZeroGPU's preload, the warm-up, the style library, and CLAP metrics on the device.

``Studio`` (studio.py) adds the actions, each routing one request to the pipeline that owns it;
everything here is shared by the actions and knows no pipeline. Nothing is loaded when a host is
created (except on ZeroGPU, see ``preload``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import ModelUnavailableError

from pipelines.signal import audio as audio_io
from pipelines.schema import limits
from pipelines.models import loaders, roles
from pipelines.models.device import ZERO_GPU, DeviceManager, choose_device
from pipelines.models.memory import default_budget
from pipelines.models.loaders import import_model_libraries
from pipelines.models.registry import ModelRegistry
from pipelines.schema.results import Result
from pipelines.models.trained import LORAS, STYLES, TrainedStore, default_root

log = logging.getLogger(__name__)

# The device manager's entries each tab runs on (the About tab names the tabs a missing one stops).
TAB_MODELS = roles.tab_entries()


@dataclass
class StudioInfo:
    profile: str
    device: str
    dtype: str


class ModelHost:
    """Owns the registry and the device manager; registers the role table's loaders (nothing loads)."""

    def __init__(self, profile: str = "hub", device: str | None = None, budget_bytes: int | None = None):
        choice = choose_device(device)
        self.registry = ModelRegistry(profile)
        self.manager = DeviceManager(
            device=choice.device,
            dtype=None if choice.device == "cpu" else choice.dtype,
            budget_bytes=budget_bytes if budget_bytes is not None else default_budget(choice.device),
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
        self._trained: TrainedStore | None = None  # the visitors' trained styles and LoRAs, opened on first use
        self._register_loaders()

    @property
    def device(self) -> str:
        return self.manager.device

    @property
    def signal_device(self) -> str:
        """Where the spectrogram tab's transforms run: the model device, except on ZeroGPU, where
        CUDA exists only inside ``spaces.GPU`` calls and those are kept for the models."""
        return "cpu" if ZERO_GPU else self.manager.device

    def _register_loaders(self) -> None:
        """Name every model the pipelines ask the manager for (the role table's loaders; nothing loads yet)."""
        for name, load in loaders.entry_loaders(self.registry, self.manager.dtype, self.device).items():
            self.manager.register(name, load)

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
            for role in roles.ROLES:
                if self.registry.builder.has(self.registry.family(role)):
                    self.registry.resolve(role)  # builds the role's folder once

    def audio_seconds(self, audio_source: Any) -> float:
        """Seconds of an audio file from its header, at most the input limit; the limit itself when it
        cannot be read (a broken file fails properly when the pipeline runs). For ZeroGPU estimates."""
        try:
            return min(float(audio_io.probe_duration(audio_source)), limits.MAX_INPUT_SECONDS)
        except Exception:  # noqa: BLE001
            return limits.MAX_INPUT_SECONDS

    def load_input_audio(self, source: Any, sample_rate: int, channels: int = 1) -> audio_io.Audio:
        """An input sound as ``Audio`` at ``sample_rate`` (``audio.load_audio``'s checks and messages)."""
        return audio_io.load_audio(source, sample_rate, channels=channels)

    def optional_location(self, role: str, wanted: bool, remedy: str) -> str | None:
        """Where ``role``'s files are when ``wanted`` (an add-on such as a LoRA), else None; resolved
        before any model loads. ModelUnavailableError names the role and ends with ``remedy``."""
        if not wanted:
            return None
        try:
            return self.registry.resolve(role).location
        except ModelUnavailableError as error:
            raise ModelUnavailableError(f"{error} {remedy}") from error

    def style_names(self, session: str | None = None) -> list[str]:
        """Names of the MusicTI styles in the styles folder (builds the tiny ones on the tiny profile),
        then those ``session`` trained (``trained.TrainedStore``: no other session sees them)."""
        built_in = self._style_library().names()
        return built_in + [name for name in self.trained.own(session, STYLES) if name not in built_in]

    def styles(self, names: list[str], session: str | None = None) -> list:
        """The ``style_embedding.Style`` of each name, built-in or ``session``'s own (InputError for
        any other name, listing those available)."""
        return self._style_library().get(names, own=self.trained.own(session, STYLES))

    def genre_loras(self, session: str | None = None) -> dict[str, str]:
        """The genre LoRAs sound to music offers ``session``: name -> folder; the shared ones (shared
        mode), then the session's own. The installed one (role ``s2m_lora``) is the name ""."""
        return {name: str(folder) for name, folder in
                {**self.trained.shared_lora_folders(), **self.trained.own(session, LORAS)}.items()}

    @property
    def trained(self) -> TrainedStore:
        """The visitors' trained styles and LoRAs (``$STUDIO_CACHE/trained``), opened on first use."""
        with self._styles_lock:
            if self._trained is None:
                self._trained = TrainedStore(default_root())
            return self._trained

    def _style_library(self):
        from pipelines.models.style_embedding import StyleLibrary

        with self._styles_lock:
            if self._styles is None:
                self._styles = StyleLibrary(self.registry.resolve("music_styles").location)
            return self._styles

    def with_clap(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(embedder)`` with a ``clap.ClapEmbedder`` on the studio's device (the ``clap`` role), under
        the GPU lock: CLAP score, content preservation, style fit and FAD embeddings all go through it."""
        import_model_libraries()
        from pipelines.models.clap import ClapEmbedder

        return self.manager.run("clap", lambda bundle: fn(ClapEmbedder(bundle, self.device)))

    def add_clap_metrics(self, result: Result, *, content: Any = None, prompt: str | None = None,
                         styles: list[str] | None = None, playlist: Any = None) -> Result:
        """Add the CLAP values that fit ``result`` (``clap.result_scores``) to ``result.metrics``, so the
        saved files carry them. ``content``: the input sound, an ``Audio`` the request already decoded
        (resampled to 48 kHz, not read again) or a path; ``playlist``: the tracks, the same way. The
        result keeps its other metrics; it is returned. The actions call it themselves (``clap=True``)."""
        from pipelines.models.clap import CLAP_SAMPLE_RATE, result_scores

        def pair(sound: Any) -> tuple[Any, int]:
            if not isinstance(sound, audio_io.Audio):
                sound = self.load_input_audio(sound, CLAP_SAMPLE_RATE)
            return sound.samples, sound.sample_rate

        content_pair = pair(content) if content is not None else None
        tracks = [pair(t) for t in playlist] if playlist else None
        scores = self.with_clap(lambda embedder: result_scores(
            embedder, result.audio, result.sample_rate, prompt=prompt, styles=styles, content=content_pair,
            playlist=tracks))
        result.metrics.update(scores)
        return result

    def _clap_metrics(self, result: Result, clap: bool | None, **sources: Any) -> Result:
        """``add_clap_metrics`` when ``clap`` asks for it (None: ``metrics_by_default``)."""
        if self.metrics_by_default() if clap is None else bool(clap):
            self.add_clap_metrics(result, **sources)
        return result

    def metrics_by_default(self) -> bool:
        """Whether the UI computes CLAP metrics unless told: on a GPU yes, on a CPU no (seconds per result)."""
        return self.info.device != "cpu"

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
