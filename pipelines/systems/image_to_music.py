"""Image to music (MusicGenAI): a picture's caption becomes music.

1. ``caption_image``: BLIP (Salesforce/blip-image-captioning-large) writes an unconditional caption,
   greedy, so the same picture always gives the same sentence.
2. ``generate_music``: MusicGen (facebook/musicgen-small) turns the caption, used verbatim, into
   audio. The duration becomes a number of codec frames (50 per second for musicgen-small); the
   original asked for 2000 tokens (about 40 s), here the default is 10 s and the limit 120 s: past
   30 s the music continues in windows prompted by its own last 12 s, as the MusicGen Space does.
   With a melody (``melody.melody_chroma`` of an uploaded tune), facebook/musicgen-melody makes it
   instead, following the tune's pitch classes, in one window of at most 30 s.

Song suggestions for the same caption live in ``song_recommendation``. Models come in as
(model, processor) pairs; ``loaders.load_blip`` and ``loaders.load_musicgen`` make them.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import Cancelled, InputError

from pipelines.signal import audio as audio_io
from pipelines.signal import images
from pipelines.schema import limits, streaming
from pipelines.schema.results import Result
from pipelines.schema.settings import ImageToMusicSettings

log = logging.getLogger(__name__)

WINDOW_SECONDS = 30.0  # musicgen-small was trained on 30 s clips: longer music continues window by window
OVERLAP_SECONDS = 12.0  # each continuation is prompted with the last 12 s and adds 18 (the MusicGen Space's stride)
SEAM_SECONDS = 0.05  # crossfade where a continuation's new audio starts
CAPTION_MAX_LENGTH = 20  # BLIP's default max_length, start token included, which the original's generate() used


# -- captioning ---------------------------------------------------------------------------------------
def load_image(image: Any):
    """A PIL RGB image from a path (an upload: see ``pipelines.signal.images.open_image``), a PIL image or an
    (h, w[, c]) uint8/float array; any mode and bit depth scaled, alpha composited on white.
    InputError otherwise, or when a side is outside ``MIN_INPUT_IMAGE_SIDE`` .. ``MAX_INPUT_IMAGE_SIDE``."""
    from PIL import Image

    low, high = limits.MIN_INPUT_IMAGE_SIDE, limits.MAX_INPUT_IMAGE_SIDE
    if isinstance(image, (str, os.PathLike)):
        image = images.open_image(image, what="picture", min_side=low, max_width=high, max_height=high)
    elif isinstance(image, np.ndarray):
        image = _array_to_image(image)
    elif not isinstance(image, Image.Image):
        raise InputError(f"Give a picture (an image file or a PIL image); got {type(image).__name__}.")
    width, height = image.size
    if not (low <= width <= high and low <= height <= high) or width * height > limits.MAX_IMAGE_PIXELS:
        raise InputError(f"The picture is {width}x{height} px; accepted: {images.sizes_accepted(low, high, high)}.")
    return images.to_8bit(image).convert("RGB")


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


def caption_image(blip_model, blip_processor, image: Any, max_length: int = CAPTION_MAX_LENGTH) -> str:
    """BLIP's unconditional caption of ``image`` (greedy: deterministic). ``image``: see ``load_image``.

    ``max_length`` counts the start token, as BLIP's own default of 20 does (so at most 19 word
    pieces follow it), what the original's plain ``generate()`` gave. InputError outside 2..MAX_CAPTION_TOKENS.
    """
    import torch

    limits.check_number("caption length (max_length)", max_length, 2, limits.MAX_CAPTION_TOKENS, integer=True)
    picture = load_image(image)
    inputs = blip_processor(images=picture, return_tensors="pt")
    pixel_values = inputs["pixel_values"].to(blip_model.device, blip_model.dtype)
    with torch.inference_mode():
        tokens = blip_model.generate(pixel_values=pixel_values, max_length=int(max_length),
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


class _FrameWatch:
    """A transformers StoppingCriteria called after every generated step: polls ``should_stop`` (True
    ends every sequence) and reports progress once per whole generated second of the run."""

    def __init__(self, should_stop, on_progress, total_frames: int, frame_rate: int, delay: int):
        self.should_stop, self.on_progress = should_stop, on_progress
        self.total, self.rate, self.delay = total_frames, frame_rate, delay
        self.base = self.step = self.reported = 0
        self.stopped = False

    def window(self, frames_before: int) -> None:
        self.base, self.step = frames_before, 0

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.step += 1
        done = self.base + max(0, self.step - self.delay)  # the first ``delay`` steps only start frames
        if self.on_progress is not None and done // self.rate > self.reported:
            self.reported = done // self.rate
            self.on_progress(min(done / self.total, 1.0), f"{self.reported} of {math.ceil(self.total / self.rate)} s")
        self.stopped = self.stopped or bool(self.should_stop is not None and self.should_stop())
        return torch.full((input_ids.shape[0],), self.stopped, dtype=torch.bool, device=input_ids.device)


def _join(audio: np.ndarray, continued: np.ndarray, prompt_samples: int, fade_samples: int) -> np.ndarray:
    """``audio`` followed by what ``continued`` (the re-decoded prompt, then new audio) adds after its
    prompt; the last ``fade_samples`` of the prompt are crossfaded (amplitude-complementary: the two
    sides are the same music decoded twice) so the seam does not click."""
    from pipelines.signal.windows import crossfade_curves

    fade_out, fade_in = (curve**2 for curve in crossfade_curves(fade_samples))
    seam = audio[-fade_samples:] * fade_out + continued[prompt_samples - fade_samples : prompt_samples] * fade_in
    return np.concatenate([audio[:-fade_samples], seam, continued[prompt_samples:]])


def generate_audio(model: Any, inputs: Any, max_new_tokens: int, sampling: dict, watch: Any,
                   static_cache_length: int | None = None) -> np.ndarray:
    """MusicGen's ``generate``, stopped by ``watch`` (its ``stopped`` raises ``Cancelled``): the first
    item's mono audio, float32, shape (samples,).

    ``static_cache_length``: None decodes with transformers' dynamic KV cache; a number of positions
    decodes with a static one that long (see ``_StaticDecoding``), which on CUDA is what lets
    transformers compile the decoder step with CUDA graphs. The same seed gives the same tokens either way."""
    try:
        if static_cache_length is not None and model not in _static_failed:
            try:
                with _StaticDecoding(model, inputs, max_new_tokens, sampling, static_cache_length) as cache:
                    values = model.generate(**inputs, max_new_tokens=max_new_tokens, past_key_values=cache,
                                            **sampling)
            except Exception as error:
                if watch.stopped:
                    raise
                # an unmeasured path (a compile failing on this card, a transformers change): the music
                # still comes, from the dynamic cache, for this and every later call of this model; the
                # random draws already taken make this one differ from a dynamic-only run with its seed
                _static_failed.add(model)
                log.warning("MusicGen's static KV cache failed (%s: %s); decoding with the dynamic cache from now on.",
                            type(error).__name__, str(error)[:200])
                values = model.generate(**inputs, max_new_tokens=max_new_tokens, **sampling)
        else:
            values = model.generate(**inputs, max_new_tokens=max_new_tokens, **sampling)
    except Exception:
        if watch.stopped:  # a cut-short delay pattern may not decode
            raise Cancelled() from None
        raise
    if watch.stopped:
        raise Cancelled()
    return values[0, 0].float().cpu().numpy()


# -- static KV cache ----------------------------------------------------------------------------------
STATIC_CACHE_BLOCK = 256  # a static cache's length is rounded up to this many positions
_static_caches: "weakref.WeakKeyDictionary[Any, tuple[tuple, Any]]" = weakref.WeakKeyDictionary()
_static_lock = threading.Lock()
_static_failed: "weakref.WeakSet[Any]" = weakref.WeakSet()  # models whose static decoding raised once


STATIC_CACHE_ENV = "STUDIO_MUSICGEN_STATIC_CACHE"


def static_cache_wanted(device: Any) -> bool:
    """Whether MusicGen decodes with a static KV cache on ``device``.

    Off unless ``STUDIO_MUSICGEN_STATIC_CACHE=1``: its speed on a GPU (and transformers' compile of the
    decoder step with CUDA graphs) has not been measured yet (``benchmarks/gpu.py``'s ``image_to_music``
    stage times both caches), and a public Space should not run an unmeasured path by default. With
    ``1``, on where the SD UNets are compiled (``unet_compile.compile_choice``: CUDA cards from compute
    capability 8.0, ``STUDIO_COMPILE``, never on ZeroGPU), since a static cache pays only where the
    decoder step is compiled. Raises StudioError for a value other than 0 or 1."""
    from core.errors import StudioError
    from pipelines.models.unet_compile import compile_choice

    value = os.environ.get(STATIC_CACHE_ENV, "0").strip() or "0"
    if value not in ("0", "1"):
        raise StudioError(f"{STATIC_CACHE_ENV} must be 0 or 1, not {value[:20]!r}.")
    return value == "1" and compile_choice(str(device)).on


def static_cache_length(window_frames: int, delay: int) -> int:
    """Positions of a static cache that holds any window: the start token, then prompt and new frames
    (together at most ``window_frames``) and the ``delay`` steps that finish the last frame, rounded up
    to ``STATIC_CACHE_BLOCK`` (musicgen-small: 1 + 1500 + 3 -> 1536), so one compiled step serves all."""
    return -(-(1 + window_frames + delay) // STATIC_CACHE_BLOCK) * STATIC_CACHE_BLOCK


class _StaticDecoding:
    """A static self-attention KV cache for one ``generate`` call, and the two fixes it needs there.

    Why a plain ``StaticCache`` changed the tokens (transformers 5.23): ``MusicgenForConditionalGeneration
    .generate`` runs a prefill (step "10b") whose output it never reads, then ``_sample`` runs its own.
    A dynamic cache made inside the forward is thrown away with the first; a cache passed in keeps the
    start token of both, at positions 0 and 1, so every logit differs from step 0 (up to 0.15 on the
    tiny model). Here each prefill first empties the self-attention cache (``reset``), so the cache
    holds what the dynamic one holds. A bare ``StaticCache`` (not in an ``EncoderDecoderCache``) is worse:
    the cross-attention keys go into the same layers, and the first step fails on a shape mismatch.

    The static cache gives the same tokens as the dynamic one (checked bit for bit in fp32 on the CPU,
    tests/test_image_to_music_static.py); the logits are not bit-identical: attention runs over all
    ``length`` positions, the unused ones masked out, and SDPA sums them in another order: differences
    of at most 1e-7 (a rounding step of fp32 logits), which a sample would follow only if its random
    draw fell within that of a token boundary.

    MusicGen's sinusoidal positions read the cache length on the host every step (``if seq_len +
    past_key_values_length > self.weights.size(0)``, a tensor with a static cache: one sync and a graph
    break per token); for the call their ``forward`` is one without that test, its table already
    ``length`` long. The cache (``length`` x hidden x layers x 2 x the batch, fp16 musicgen-small with
    guidance: 0.3 GB) is kept per model and reused, so compiled steps keep their buffers; a lock keeps
    two calls from sharing it at once.
    """

    def __init__(self, model: Any, inputs: Any, max_new_tokens: int, sampling: dict, length: int):
        self.model, self.length = model, length
        hop = model.config.audio_encoder.sampling_rate // model.config.audio_encoder.frame_rate
        prompt = inputs.get("input_values")
        needed = 1 + (0 if prompt is None else math.ceil(prompt.shape[-1] / hop)) + max_new_tokens
        if needed > length:
            raise ValueError(f"A static cache of {length} positions cannot hold {needed}.")
        guided = (sampling.get("guidance_scale") or 0) > 1
        self.batch = inputs["input_ids"].shape[0] * (2 if guided else 1)
        self.positions = model.decoder.model.decoder.embed_positions

    def __enter__(self):
        _static_lock.acquire()
        try:
            return self._enter()
        except BaseException:
            self._restore()
            raise

    def _enter(self):
        import torch
        from transformers import DynamicCache, EncoderDecoderCache, StaticCache

        model = self.model
        key = (self.batch, self.length, model.device, model.dtype)
        held = _static_caches.get(model)
        if held is None or held[0] != key:
            _static_caches.pop(model, None)  # the old one's memory goes before the new one is made
            held = key, StaticCache(config=model.decoder.config, max_cache_len=self.length)
            _static_caches[model] = held
        self.static = held[1]
        self.static.reset()
        prefill = model._prefill

        def prefill_from_empty(input_ids, generation_config, model_kwargs, *args, **kwargs):
            self.static.reset()  # generate() runs an unused prefill first: it must not stay in the cache
            return prefill(input_ids, generation_config, model_kwargs, *args, **kwargs)

        model._prefill = prefill_from_empty
        if self.positions.weights.size(0) < self.length:
            self.positions.make_weights(self.length, self.positions.embedding_dim)
        table = self.positions.weights

        def positions(input_ids, past_key_values_length=0):  # MusicgenSinusoidalPositionalEmbedding's, no host read
            position_ids = torch.arange(input_ids.shape[-1], device=input_ids.device) + past_key_values_length
            return table.index_select(0, position_ids.view(-1)).detach()

        self.positions.forward = positions
        return EncoderDecoderCache(self.static, DynamicCache())

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        for owner, name in ((self.model, "_prefill"), (self.positions, "forward")):
            owner.__dict__.pop(name, None)  # the class's method again
        _static_lock.release()


def check_melody_length(settings: ImageToMusicSettings) -> None:
    """InputError when music longer than one window is asked to follow a melody."""
    if float(settings.seconds) > WINDOW_SECONDS:
        raise InputError(f"With a melody, music is at most {WINDOW_SECONDS:g} s long (MusicGen-melody follows up to "
                         f"30 s of a tune); {float(settings.seconds):g} s was asked. Shorten it, or remove the melody.")


def generate_music(
    musicgen_model,
    musicgen_processor,
    prompt: str,
    settings: ImageToMusicSettings = ImageToMusicSettings(),
    *,
    melody: np.ndarray | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    static_cache: bool | None = None,
) -> MusicResult:
    """MusicGen text-to-music: ``settings.seconds`` of audio at the audio encoder's rate (32 kHz for
    musicgen-small), shaped (1, n) float32, peak-normalised.

    ``melody``: a one-hot chroma ``(frames, 12)`` from ``melody.melody_chroma``, for
    MusicgenMelodyForConditionalGeneration (``musicgen_processor`` is then its tokenizer): the music
    follows the tune's pitch classes. MusicGen-melody reads at most 30 s of melody, so with one the
    music is one window of at most ``WINDOW_SECONDS`` (InputError beyond).

    Up to ``WINDOW_SECONDS`` (30, what MusicGen was trained on) it is one generation. Longer runs
    continue in windows as the MusicGen Space does: each next window is prompted with the last
    ``OVERLAP_SECONDS`` of the music so far (audio prompt plus the text) and adds
    ``WINDOW_SECONDS - OVERLAP_SECONDS``; the seam is crossfaded over ``SEAM_SECONDS``.

    Speed: transformers (5.23) already runs both guidance branches in one decoder forward per step
    (the batch doubled, ``ClassifierFreeGuidanceLogitsProcessor`` splits the logits).
    ``static_cache`` (None: ``static_cache_wanted(device)``, opt-in until measured on a GPU) decodes with
    a static KV cache (``_StaticDecoding``: same tokens), with which transformers' ``generate``
    compiles the decoder step (``CompileConfig``'s default: ``mode="reduce-overhead"``, CUDA graphs);
    melody runs keep the dynamic cache. Nothing of ours reads a device value per token (the frame
    watch answers with a device tensor); transformers' loop still reads its stopping flag each step.

    The seed makes it repeatable without touching the global RNG. ``should_stop`` is polled after
    every frame (a cancelled run raises Cancelled); ``on_progress(fraction, "12 of 60 s")`` is
    called once per generated second.
    """
    import torch
    from transformers import StoppingCriteriaList

    prompt = check_prompt(prompt)
    settings.validate()
    seconds, top_p = float(settings.seconds), float(settings.top_p)
    if melody is not None:
        check_melody_length(settings)
    codec = musicgen_model.config.audio_encoder
    sample_rate, frame_rate = int(codec.sampling_rate), int(codec.frame_rate)
    hop = sample_rate // frame_rate  # samples per codec frame
    total_frames = math.ceil(seconds * frame_rate)
    window_frames = round(WINDOW_SECONDS * frame_rate)
    overlap_frames = round(OVERLAP_SECONDS * frame_rate)
    # the delay pattern staggers codebook k by k steps: the last (num_codebooks - 1) steps only finish frames
    delay = musicgen_model.decoder.num_codebooks - 1
    watch = _FrameWatch(should_stop, on_progress, total_frames, frame_rate, delay)
    sampling = dict(
        do_sample=True,
        # at or below 1 there is no classifier-free guidance: None tells the library so (a value
        # between 0 and 1 would build its guidance processor, which refuses it)
        guidance_scale=float(settings.guidance) if settings.guidance > 1 else None,
        temperature=float(settings.temperature),
        top_k=int(settings.top_k),
        top_p=top_p if top_p else 1.0,  # 0 means "off" in MusicGen's demo
        stopping_criteria=StoppingCriteriaList([watch]),
    )

    def window(frames: int, audio_prompt: np.ndarray | None) -> np.ndarray:
        extra = {} if audio_prompt is None else {"audio": [audio_prompt], "sampling_rate": sample_rate}
        inputs = musicgen_processor(text=[prompt], padding=True, return_tensors="pt", **extra).to(musicgen_model.device)
        if melody is not None:
            inputs["input_features"] = torch.as_tensor(melody[None], device=musicgen_model.device,
                                                       dtype=musicgen_model.dtype)
        return generate_audio(musicgen_model, inputs, frames + delay, sampling, watch, cache_length)

    device = musicgen_model.device
    if static_cache is None:
        static_cache = static_cache_wanted(device)
    cache_length = static_cache_length(window_frames, delay) if static_cache and melody is None else None
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices), torch.inference_mode():
        torch.manual_seed(int(settings.seed))
        made = min(total_frames, window_frames)
        audio = window(made, None)
        windows = 1
        live, fade = streaming.Progressive(sample_rate), round(SEAM_SECONDS * sample_rate)
        while made < total_frames:
            live.update(audio[None, :-fade])  # listen while it is made: all but what the next seam changes
            watch.window(made)
            new = min(total_frames - made, window_frames - overlap_frames)
            prompt_samples = overlap_frames * hop
            continued = window(new, audio[-prompt_samples:])
            audio = _join(audio, continued, prompt_samples, fade)
            made, windows = made + new, windows + 1
    samples = audio[None, : round(seconds * sample_rate)]
    live.update(samples)
    parameters = {
        "pipeline": "image_to_music",
        "prompt": prompt,
        **settings.as_dict(),
        "windows": windows,
        "sample_rate": sample_rate,
        "melody_frames": None if melody is None else int(melody.shape[0]),
    }
    return MusicResult(audio=audio_io.peak_normalize(samples, headroom_db=1.0), sample_rate=sample_rate, prompt=prompt,
                       parameters=parameters)
