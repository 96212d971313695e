"""Image to music (MusicGenAI): a picture's caption becomes music.

1. ``caption_image``: BLIP (Salesforce/blip-image-captioning-large) writes an unconditional caption,
   greedy, so the same picture always gives the same sentence.
2. ``generate_music``: MusicGen (facebook/musicgen-small) turns the caption, used verbatim, into
   audio. The duration becomes a number of codec frames (50 per second for musicgen-small); the
   original asked for 2000 tokens (about 40 s), here the default is 10 s and the limit 30 s.

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

from . import audio as audio_io
from . import images, limits
from .results import Result
from .settings import ImageToMusicSettings

CAPTION_MAX_LENGTH = 20  # BLIP's default max_length, start token included, which the original's generate() used


# -- captioning ---------------------------------------------------------------------------------------
def load_image(image: Any):
    """A PIL RGB image from a path (an upload: see ``pipelines.images.open_image``), a PIL image or an
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
    if not (low <= width <= high and low <= height <= high):
        raise InputError(f"The picture must be {low} to {high} pixels on each side; it is {width}x{height}.")
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


def _stopper(should_stop: Callable[[], bool]):
    import torch
    from transformers import StoppingCriteria

    class PollStop(StoppingCriteria):
        """Asks ``should_stop`` after every generated frame; True ends every sequence of the batch."""

        def __init__(self):
            self.stopped = False

        def __call__(self, input_ids, scores, **kwargs):
            self.stopped = self.stopped or bool(should_stop())
            return torch.full((input_ids.shape[0],), self.stopped, dtype=torch.bool, device=input_ids.device)

    return PollStop()


def generate_music(
    musicgen_model,
    musicgen_processor,
    prompt: str,
    settings: ImageToMusicSettings = ImageToMusicSettings(),
    *,
    should_stop: Callable[[], bool] | None = None,
) -> MusicResult:
    """MusicGen text-to-music: ``settings.seconds`` of audio at the audio encoder's rate (32 kHz for
    musicgen-small), shaped (1, n) float32, peak-normalised.

    The seed makes it repeatable without touching the global RNG. ``should_stop`` is polled after
    every frame; a cancelled run raises Cancelled.
    """
    import torch
    from transformers import StoppingCriteriaList

    prompt = check_prompt(prompt)
    settings.validate()
    seconds, top_p = float(settings.seconds), float(settings.top_p)
    codec = musicgen_model.config.audio_encoder
    sample_rate, frame_rate = int(codec.sampling_rate), int(codec.frame_rate)
    frames = math.ceil(float(seconds) * frame_rate)
    # the delay pattern staggers codebook k by k steps: the last (num_codebooks - 1) steps only finish frames
    max_new_tokens = frames + musicgen_model.decoder.num_codebooks - 1
    inputs = musicgen_processor(text=[prompt], padding=True, return_tensors="pt").to(musicgen_model.device)
    stopper = _stopper(should_stop) if should_stop is not None else None
    device = musicgen_model.device
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices), torch.inference_mode():
        torch.manual_seed(int(settings.seed))
        try:
            values = musicgen_model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=True,
                # at or below 1 there is no classifier-free guidance: None tells the library so (a value
                # between 0 and 1 would build its guidance processor, which refuses it)
                guidance_scale=float(settings.guidance) if settings.guidance > 1 else None,
                temperature=float(settings.temperature),
                top_k=int(settings.top_k),
                top_p=top_p if top_p else 1.0,  # 0 means "off" in MusicGen's demo
                stopping_criteria=StoppingCriteriaList([stopper]) if stopper else None,
            )
        except Exception:
            if stopper is not None and stopper.stopped:  # a cut-short delay pattern may not decode
                raise Cancelled() from None
            raise
    if stopper is not None and stopper.stopped:
        raise Cancelled()
    samples = values[0, :1].float().cpu().numpy()[:, : round(float(seconds) * sample_rate)]
    parameters = {
        "pipeline": "image_to_music",
        "prompt": prompt,
        **settings.as_dict(),
        "max_new_tokens": max_new_tokens,
        "sample_rate": sample_rate,
    }
    return MusicResult(audio=audio_io.peak_normalize(samples, headroom_db=1.0), sample_rate=sample_rate, prompt=prompt,
                       parameters=parameters)
