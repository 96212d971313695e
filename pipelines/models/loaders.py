"""Loaders: one function per model family, from a registry location to a model on the CPU.

Every loader takes ``(location, revision=None, dtype=None)`` where ``location`` is a Hub repo id or
a local folder (what ``ModelRegistry.resolve`` gives), and is called through ``models.load_or_explain``
so a missing model becomes one clear message. ``dtype`` is the device's (the Studio passes
``torch.float16`` on CUDA): weights load in it directly, so host memory holds half, and where a repo
publishes fp16 files (SD 1.5's ``variant="fp16"``) only those are downloaded. The same loaders serve
every profile: the tiny and fullsize models are saved in the real repositories' layouts, so these
calls are the ones a Space runs. The real layouts they must read (``../shared/reference/hub/README.md``):
``.bin``-only folders (riffusion, CLAP, the mask model's UNet: never ``use_safetensors=True``),
riffusion's VAE config without ``scaling_factor`` (diffusers' 0.18215 default applies), each repo's
own scheduler config (PNDM in both SD repos, SD 1.5's with ``clip_sample: false`` appended; the
pipelines build DDIM/DPM++ from that config when asked), AMUSE's ``DDPMPipeline`` index around a
conditional UNet, MusicGen's audiocraft files beside the transformers ones.

``ModelBundle`` is the one wrapper that makes several parts (a model and its processor; AMUSE's UNet,
VAE and scheduler; a Keras classifier) a single unit the DeviceManager can move and measure.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.models.memory import model_nbytes

log = logging.getLogger(__name__)
_IMPORT_LOCK = threading.Lock()
_imported = False


# Every name any module of pipelines/ imports from the top of diffusers or transformers, resolved here
# once under the lock (tests/test_layering.py checks that the lists cover them all).
DIFFUSERS_NAMES = ("AutoencoderKL", "ConfigMixin", "DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler",
                   "ModelMixin", "StableDiffusionImg2ImgPipeline", "StableDiffusionPipeline", "UNet2DConditionModel")
TRANSFORMERS_NAMES = ("AutoModel", "AutoProcessor", "AutoTokenizer", "BlipForConditionalGeneration", "BlipProcessor",
                      "ClapModel", "ClapProcessor", "DynamicCache", "EncoderDecoderCache",
                      "MusicgenForConditionalGeneration", "MusicgenMelodyForConditionalGeneration", "StaticCache",
                      "StoppingCriteria", "StoppingCriteriaList")


def import_model_libraries() -> None:
    """Import the diffusers and transformers classes the pipelines use, once, under a lock.

    Both libraries resolve their names lazily, and that is not thread-safe on first use: two threads
    importing different names from diffusers at once get ImportError ("cannot import name ...").
    Runs overlap (a cancelled run's thread can still be importing when the next starts), so every
    Studio method that runs a model calls this first. Takes a few seconds, once per process.
    """
    global _imported
    if _imported:
        return
    with _IMPORT_LOCK:
        if _imported:
            return
        import diffusers
        import transformers

        for library in ("transformers", "diffusers"):  # each prints through its own stderr handler
            for handler in logging.getLogger(library).handlers:
                handler.addFilter(UNACTIONABLE)
        transformers.utils.logging.set_tqdm_hook(no_bar_for_saving)
        for name in DIFFUSERS_NAMES:
            getattr(diffusers, name)
        for name in TRANSFORMERS_NAMES:
            getattr(transformers, name)

        _imported = True


class Unactionable(logging.Filter):
    """Drops the libraries' warnings that no user or operator can act on; every other line stays.

    * transformers' image processors "require torchvision (not installed); falling back to ...Pil":
      the PIL fallback is what we use, on purpose (torchvision would pin its own torch);
    * MusicGen's published config has ``pad_token_id``/``bos_token_id`` 2048 beside a vocabulary of 2048:
      the delay pattern's special token, by design, which transformers 5 flags as outside the vocabulary;
    * diffusers' "No LoRA keys associated to CLIPTextModel": TechJam's LoRA is UNet-only, as trained.
    """

    NOTES = ("requires torchvision (not installed)", "must be `None` or an integer within the vocabulary",
             "No LoRA keys associated to CLIPTextModel")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(note in message for note in self.NOTES)


UNACTIONABLE = Unactionable()
SAVING_BAR = "Writing model shards"


def no_bar_for_saving(factory, args: tuple, kwargs: dict):
    """transformers' tqdm hook: no bar for ``save_pretrained``'s shards, every other bar as it was.

    Only the studio's own builders and training recipes save, one small shard at a time: the bar
    opens and closes at once and fills the console at start-up (one per tiny model). Loading bars stay.
    """
    if kwargs.get("desc") == SAVING_BAR:
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)


class ModelBundle:
    """Named parts that move and count together; ``bundle.unet`` is the part named ``unet``.

    Parts with parameters (torch modules) move with ``to``; the others (processors, schedulers,
    tokenizers) stay as they are. ``cpu_only`` bundles never move: Keras places its own tensors, so
    the classifiers run on the CPU whatever the device (the manager fetches them with ``get_cpu``).
    """

    def __init__(self, *, cpu_only: bool = False, **parts: Any):
        if not parts:
            raise ValueError("A bundle needs at least one part.")
        self.cpu_only = cpu_only
        self.parts = parts

    def __getattr__(self, name: str) -> Any:
        parts = self.__dict__.get("parts", {})
        if name in parts:
            return parts[name]
        raise AttributeError(name)

    @property
    def nbytes(self) -> int:
        """Bytes of every part's weights (torch parameters and buffers, or a part's own ``nbytes``)."""
        return sum(model_nbytes(part) for part in self.parts.values()
                   if hasattr(part, "parameters") or hasattr(part, "nbytes"))

    def to(self, *args: Any, **kwargs: Any) -> ModelBundle:
        if not self.cpu_only:
            for part in self.parts.values():
                if hasattr(part, "parameters"):
                    part.to(*args, **kwargs)
        return self


def _dtype_kwargs(dtype: Any) -> dict[str, Any]:
    """``from_pretrained`` arguments for a target dtype (None: the files' own, fp32 for every repo here).
    diffusers >= 0.40 and transformers 5 both take ``dtype=`` (``torch_dtype=`` is deprecated)."""
    return {} if dtype is None else {"dtype": dtype}


def has_variant(location: str, variant: str) -> bool:
    """Whether a local folder holds ``*.{variant}.*`` weight files; a Hub repo is trusted to (the
    registry only asks for a variant where the manifest lists its files)."""
    local = Path(location).expanduser()
    if not local.is_dir():
        return True
    return any(local.glob(f"*/*.{variant}.safetensors")) or any(local.glob(f"*/*.{variant}.bin"))


# -- Stable Diffusion (riffusion, the mask paper's fine-tune, SD 1.5) -----------------------------------
def load_sd_img2img(location: str, revision: str | None = None, dtype: Any = None, variant: str | None = None) -> Any:
    """A diffusers ``StableDiffusionImg2ImgPipeline`` on the CPU (the manager moves it), no safety checker.

    dtype: load the weights in this dtype (None: fp32). variant: e.g. "fp16" for SD 1.5's
    ``*.fp16.safetensors``, used only with a 16-bit ``dtype`` and where the files exist (riffusion
    and the mask model publish fp32 ``.bin`` only: those are cast while loading).
    The safety checker is never loaded: riffusion's spectrograms would trip it and it weighs 1.2 GB.
    """
    from diffusers import StableDiffusionImg2ImgPipeline

    kwargs = _dtype_kwargs(dtype)
    if variant and dtype is not None and getattr(dtype, "itemsize", 4) == 2 and has_variant(location, variant):
        kwargs["variant"] = variant
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
        location, revision=revision, safety_checker=None, requires_safety_checker=False, **kwargs
    )
    pipe.set_progress_bar_config(leave=False)
    return pipe


def compile_wanted(device: str) -> bool:
    """Whether the SD UNets are compiled on ``device``: ``unet_compile.compile_choice`` (the one home of the rule)."""
    from pipelines.models.unet_compile import compile_choice

    return compile_choice(device).on


def tune_sd(pipe: Any, device: str) -> Any:
    """GPU speed switches on a loaded SD pipeline (in place; returns it), recorded in ``pipe.tuning``.

    - SDPA attention: every UNet and VAE attention processor must be diffusers' ``AttnProcessor2_0``
      (torch's fused ``scaled_dot_product_attention``); any other is replaced and the count recorded.
    - ``channels_last`` for the UNet and VAE on CUDA (convolutions in NHWC: tensor-core friendly;
      the layout survives the manager's moves).
    - regional ``torch.compile`` of the UNet's repeated blocks when ``unet_compile.compile_choice`` says so
      (``unet_compile.compile_unet``: fixed shapes, compiled once per process); the reason is recorded in
      ``pipe.tuning["compile"]``. The first call of each new shape pays the compile.
    """
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    from pipelines.models.unet_compile import compile_choice, compile_unet

    tuning: dict[str, Any] = {"replaced_attention": 0, "channels_last": False, "compiled": False}
    for module in (pipe.unet, pipe.vae):
        slow = [name for name, proc in module.attn_processors.items() if not isinstance(proc, AttnProcessor2_0)]
        if slow:
            module.set_attn_processor(AttnProcessor2_0())
            tuning["replaced_attention"] += len(slow)
    if device.startswith("cuda"):
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        tuning["channels_last"] = True
    choice = compile_choice(device)
    tuning["compile"] = choice.reason
    if choice.on:
        tuning["compiled_blocks"] = compile_unet(pipe.unet)
        tuning["compiled"] = tuning["compiled_blocks"] > 0
        log.info("torch.compile: %d UNet blocks (%s); each new shape compiles on its first call",
                 tuning["compiled_blocks"], choice.reason)
    pipe.tuning = tuning
    return pipe


# -- transformers models with their processors ----------------------------------------------------------
def load_blip(location: str, revision: str | None = None, dtype: Any = None) -> ModelBundle:
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = BlipProcessor.from_pretrained(location, revision=revision)
    model = BlipForConditionalGeneration.from_pretrained(location, revision=revision, **_dtype_kwargs(dtype)).eval()
    return ModelBundle(model=model, processor=processor)


def load_musicgen(location: str, revision: str | None = None, dtype: Any = None) -> ModelBundle:
    """MusicGen from the transformers files (``model.safetensors``); audiocraft's ``state_dict.bin``
    and ``compression_state_dict.bin`` in the same repo are a different format and never read."""
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    processor = AutoProcessor.from_pretrained(location, revision=revision)
    model = MusicgenForConditionalGeneration.from_pretrained(location, revision=revision,
                                                             **_dtype_kwargs(dtype)).eval()
    return ModelBundle(model=model, processor=processor)


def load_musicgen_melody(location: str, revision: str | None = None, dtype: Any = None) -> ModelBundle:
    """MusicGen-melody: the model, its T5 tokenizer (as ``processor``), and the chroma extractor's settings from
    ``preprocessor_config.json`` as ``melody.MelodyParams`` (transformers' extractor class needs
    torchaudio; ``pipelines.systems.melody`` computes the same chroma without it)."""
    from transformers import AutoTokenizer, MusicgenMelodyForConditionalGeneration
    from transformers.feature_extraction_utils import FeatureExtractionMixin

    from pipelines.systems.melody import MelodyParams

    tokenizer = AutoTokenizer.from_pretrained(location, revision=revision)
    extractor_config, _ = FeatureExtractionMixin.get_feature_extractor_dict(location, revision=revision)
    model = MusicgenMelodyForConditionalGeneration.from_pretrained(location, revision=revision,
                                                                   **_dtype_kwargs(dtype)).eval()
    # the tokenizer is the whole processor for text (the melody goes in as chroma, see melody.py)
    return ModelBundle(model=model, processor=tokenizer, melody=MelodyParams.from_config(extractor_config))


def load_clap(location: str, revision: str | None = None, dtype: Any = None) -> ModelBundle:
    """CLAP (laion/clap-htsat-unfused ships ``pytorch_model.bin`` only: transformers falls back to it;
    forcing ``use_safetensors=True`` would fail). Needs torch >= 2.6 to read a ``.bin``."""
    from transformers import ClapModel, ClapProcessor

    processor = ClapProcessor.from_pretrained(location, revision=revision)
    model = ClapModel.from_pretrained(location, revision=revision, **_dtype_kwargs(dtype)).eval()
    return ModelBundle(model=model, processor=processor)


def load_sentence_embedder(location: str, revision: str | None = None, dtype: Any = None) -> ModelBundle:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location, revision=revision)
    # sentence-transformers uses the token vectors only; the pooler would be dead weight
    model = AutoModel.from_pretrained(location, revision=revision, add_pooling_layer=False,
                                      **_dtype_kwargs(dtype)).eval()
    return ModelBundle(model=model, processor=tokenizer)


# -- TechJam's Keras classifiers --------------------------------------------------------------------------
def classifier_loader(role: str) -> Callable[..., ModelBundle]:
    """The loader of a TechJam Keras classifier (``genre_classifier`` or ``emotion_classifier``):
    a local folder holding its .h5, or a Hub repo from which that one file is downloaded."""
    from classifiers import emotion, genre

    module = {"genre_classifier": genre, "emotion_classifier": emotion}[role]

    def load(location: str, revision: str | None = None) -> ModelBundle:
        if not Path(location).expanduser().exists():
            from huggingface_hub import hf_hub_download

            location = hf_hub_download(location, module.WEIGHTS_FILE, revision=revision)
        return ModelBundle(cpu_only=True, model=module.load(location))

    return load


# -- AMUSE (playlist to music) ------------------------------------------------------------------------------
def _subfolder_first(load: Callable[..., Any], location: str, subfolder: str, revision: str | None, **kwargs):
    """Pipeline layout (``<subfolder>/``) first, then the model at the repo's root.

    The AMUSE notebook follows diffusers' training recipe (DDPMPipeline(unet, scheduler) saved and
    uploaded with upload_folder), which gives ``unet/`` and ``scheduler/``; a bare ``unet.save_pretrained``
    puts the model at the root. Both are read.
    """
    local = Path(location).expanduser()
    if local.is_dir():
        inside = (local / subfolder).is_dir()
        return load(str(local), subfolder=subfolder if inside else None, **kwargs)
    try:
        return load(location, subfolder=subfolder, revision=revision, **kwargs)
    except OSError:  # diffusers raises EnvironmentError when the files are not there
        return load(location, revision=revision, **kwargs)


def load_amuse_unet(location: str, revision: str | None = None, dtype: Any = None):
    """AMUSE's ``UNet2DConditionModel`` (its model_index.json names a DDPMPipeline, which cannot call it)."""
    from diffusers import UNet2DConditionModel

    return _subfolder_first(UNet2DConditionModel.from_pretrained, location, "unet", revision,
                            **_dtype_kwargs(dtype)).eval()


def load_amuse_scheduler(location: str, revision: str | None = None):
    """The UNet repo's scheduler config if it has one, else DDPMScheduler(1000) (the training recipe's)."""
    from diffusers import DDPMScheduler

    from pipelines.models.playlist_vae import TRAIN_TIMESTEPS

    try:
        return _subfolder_first(DDPMScheduler.from_pretrained, location, "scheduler", revision)
    except (OSError, ValueError):
        return DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS)


def load_amuse_vae(location: str, revision: str | None = None):
    """The playlist VAE (not published: in practice a local folder made by training)."""
    from pipelines.models.playlist_vae import PlaylistVAE

    if Path(location).expanduser().is_dir():
        return PlaylistVAE.from_pretrained(str(Path(location).expanduser())).eval()
    return PlaylistVAE.from_pretrained(location, revision=revision).eval()


# -- the device manager's entries, from the role table ---------------------------------------------------
def _load_amuse(registry: Any, dtype: Any) -> ModelBundle:
    """AMUSE's UNet (Hub) and playlist VAE (not published: a local folder) as one unit."""
    from pipelines.models.registry import load_or_explain

    vae = load_or_explain(registry.resolve("amuse_vae"), load_amuse_vae)  # the VAE explains itself first
    unet_source = registry.resolve("amuse_unet")
    return ModelBundle(unet=load_or_explain(unet_source, load_amuse_unet, dtype=dtype), vae=vae,
                       scheduler=load_or_explain(unet_source, load_amuse_scheduler))


# ``Role.loader`` -> the loader of a single role (``(location, revision=None, **kwargs)``)
LOADERS: dict[str, Callable[..., Any]] = {
    "sd_img2img": load_sd_img2img, "blip": load_blip, "musicgen": load_musicgen,
    "musicgen_melody": load_musicgen_melody, "clap": load_clap, "sentence_embedder": load_sentence_embedder,
}


def entry_loaders(registry: Any, dtype: Any, device: str) -> dict[str, Callable[[], Any]]:
    """One zero-argument loader per device-manager entry, for every role with a ``loader`` in the
    role table (``roles.ROLES``); nothing loads until one is called.

    Torch models load in ``dtype`` (fp16 on CUDA; None keeps fp32), SD pipelines from their fp16
    variant files when the dtype is 16-bit and with ``tune_sd``'s GPU switches for ``device``; the
    Keras classifiers on the CPU; AMUSE's UNet, VAE and scheduler as one bundle. Each failure comes
    back as ``models.load_or_explain``'s message. KeyError for a ``Role.loader`` no loader has.
    """
    from pipelines.models.registry import load_or_explain
    from pipelines.models.roles import loaded_roles

    made: dict[str, Callable[[], Any]] = {}
    for role in loaded_roles():
        name, kind = role.name, role.loader
        if kind == "amuse":
            made[role.manager_entry] = lambda: _load_amuse(registry, dtype)
        elif kind == "keras_classifier":
            made[role.manager_entry] = lambda name=name: load_or_explain(registry.resolve(name), classifier_loader(name))
        elif kind == "sd_img2img":  # SDPA check, channels_last, STUDIO_COMPILE
            variant = (role.variants or (None,))[0]
            made[role.manager_entry] = lambda name=name, variant=variant: tune_sd(load_or_explain(
                registry.resolve(name), load_sd_img2img, dtype=dtype, variant=variant), device)
        else:
            load = LOADERS[kind]
            made[role.manager_entry] = lambda name=name, load=load: load_or_explain(registry.resolve(name), load,
                                                                                    dtype=dtype)
    return made
