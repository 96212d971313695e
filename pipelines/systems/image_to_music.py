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

import math
import os
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


def generate_audio(model: Any, inputs: Any, max_new_tokens: int, sampling: dict, watch: Any) -> np.ndarray:
    """MusicGen's ``generate``, stopped by ``watch`` (its ``stopped`` raises ``Cancelled``): the first
    item's mono audio, float32, shape (samples,)."""
    try:
        values = model.generate(**inputs, max_new_tokens=max_new_tokens, **sampling)
    except Exception:
        if watch.stopped:  # a cut-short delay pattern may not decode
            raise Cancelled() from None
        raise
    if watch.stopped:
        raise Cancelled()
    return values[0, 0].float().cpu().numpy()


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
    (the batch doubled, ``ClassifierFreeGuidanceLogitsProcessor`` splits the logits). A static KV
    cache, the way to ``torch.compile``/CUDA graphs for the decoder, is not offered there: MusicGen's
    own ``generate`` ignores ``cache_implementation="static"``, and a ``StaticCache`` passed in by
    hand changes the tokens, so the dynamic cache stays. The frame watch reads no device value (no
    per-token sync of ours; transformers' loop syncs once per step on its own stopping check).

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
        return generate_audio(musicgen_model, inputs, frames + delay, sampling, watch)

    device = musicgen_model.device
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
