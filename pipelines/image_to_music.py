"""Image to music (MusicGenAI): a picture's caption becomes music.

1. ``caption_image``: BLIP (Salesforce/blip-image-captioning-large) writes an unconditional caption,
   greedy, so the same picture always gives the same sentence.
2. ``generate_music``: MusicGen (facebook/musicgen-small) turns the caption, used verbatim, into
   audio. The duration becomes a number of codec frames (50 per second for musicgen-small); the
   original asked for 2000 tokens (about 40 s), here the default is 10 s and the limit 30 s.

The third step, songs whose lyrics match the caption, is song_recommendation.py.

Models come in as (model, processor) pairs from the ``load_*`` functions below, which take a
registry location (local folder or Hub repo id) and return them on the CPU.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import audio as audio_io
from . import limits
from core.errors import Cancelled, InputError

DEFAULT_SECONDS = 10.0
DEFAULT_SEED = 0
CAPTION_MAX_NEW_TOKENS = 20  # BLIP's default max_length, which the original's plain generate() used
MAX_CAPTION_TOKENS = 100
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 5.0
MAX_TOP_K = 2048  # musicgen's codebook size; 0 switches top-k off


# -- loaders (registry location -> (model, processor) on the CPU) ---------------------------------------
def load_blip(location: str, revision: str | None = None):
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = BlipProcessor.from_pretrained(location, revision=revision)
    model = BlipForConditionalGeneration.from_pretrained(location, revision=revision).eval()
    return model, processor


def load_musicgen(location: str, revision: str | None = None):
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    processor = AutoProcessor.from_pretrained(location, revision=revision)
    model = MusicgenForConditionalGeneration.from_pretrained(location, revision=revision).eval()
    return model, processor


def load_sentence_embedder(location: str, revision: str | None = None):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location, revision=revision)
    # sentence-transformers uses the token vectors only; the pooler would be dead weight
    model = AutoModel.from_pretrained(location, revision=revision, add_pooling_layer=False).eval()
    return model, tokenizer


class WithProcessor:
    """A (model, processor) pair the DeviceManager can hold: it moves the model and counts its bytes."""

    def __init__(self, model: Any, processor: Any):
        self.model = model
        self.processor = processor

    @property
    def nbytes(self) -> int:
        from .device import model_nbytes

        return model_nbytes(self.model)

    def to(self, *args, **kwargs) -> WithProcessor:
        self.model.to(*args, **kwargs)
        return self


# -- captioning ---------------------------------------------------------------------------------------
def load_image(image: Any):
    """A PIL RGB image from a PIL image, a path or an (h, w[, c]) uint8/float array; InputError otherwise."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        if not path.is_file():
            raise InputError(f"The image file {path.name or image!s} does not exist.")
        if path.stat().st_size > limits.MAX_UPLOAD_BYTES:
            raise InputError(f"The image file is larger than {limits.MAX_UPLOAD_BYTES // 2**20} MB.")
        try:
            with Image.open(path) as opened:
                opened.load()
                image = opened.copy()
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
            raise InputError(f"{path.name} is not an image that can be read (PNG, JPEG, WebP...): {error}") from error
    elif isinstance(image, np.ndarray):
        image = _array_to_image(image)
    elif not isinstance(image, Image.Image):
        raise InputError(f"Give a picture (an image file or a PIL image); got {type(image).__name__}.")
    width, height = image.size
    low, high = limits.MIN_INPUT_IMAGE_SIDE, limits.MAX_INPUT_IMAGE_SIDE
    if not (low <= width <= high and low <= height <= high):
        raise InputError(f"The picture must be {low} to {high} pixels on each side; it is {width}x{height}.")
    if image.mode != "RGB":
        # transparent pixels over white, not black: what a viewer shows
        if image.mode in ("RGBA", "LA", "P", "PA"):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        image = image.convert("RGB")
    return image


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


def caption_image(blip_model, blip_processor, image: Any, max_new_tokens: int = CAPTION_MAX_NEW_TOKENS) -> str:
    """BLIP's unconditional caption of ``image`` (greedy: deterministic). ``image``: see ``load_image``."""
    import torch

    limits.check_number("caption length (max_new_tokens)", max_new_tokens, 1, MAX_CAPTION_TOKENS, integer=True)
    picture = load_image(image)
    inputs = blip_processor(images=picture, return_tensors="pt")
    pixel_values = inputs["pixel_values"].to(blip_model.device, blip_model.dtype)
    with torch.inference_mode():
        tokens = blip_model.generate(pixel_values=pixel_values, max_new_tokens=int(max_new_tokens),
                                     do_sample=False, num_beams=1)
    return blip_processor.decode(tokens[0], skip_special_tokens=True).strip()


# -- text to music ------------------------------------------------------------------------------------
@dataclass
class MusicResult:
    audio: np.ndarray  # float32 (1, n), peak-normalised
    sample_rate: int
    prompt: str
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def as_audio(self) -> audio_io.Audio:
        return audio_io.Audio(self.audio, self.sample_rate)


def validate_music(prompt: str, seconds: float, guidance: float, temperature: float, top_k: int, top_p: float,
                   seed: int) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("The music prompt is empty: caption a picture first, or write a prompt.")
    if len(prompt) > limits.MAX_PROMPT_CHARS:
        raise InputError(f"The music prompt must be at most {limits.MAX_PROMPT_CHARS} characters; it has {len(prompt)}.")
    limits.check_number("duration (seconds)", seconds, limits.MIN_MUSIC_SECONDS, limits.MAX_MUSIC_SECONDS)
    limits.check_number("guidance", guidance, limits.MIN_GUIDANCE, limits.MAX_GUIDANCE)
    limits.check_number("temperature", temperature, MIN_TEMPERATURE, MAX_TEMPERATURE)
    limits.check_number("top-k", top_k, 0, MAX_TOP_K, integer=True)
    limits.check_number("top-p", top_p, 0.0, 1.0)
    limits.check_number("seed", seed, 0, limits.MAX_SEED, integer=True)


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
    seconds: float = DEFAULT_SECONDS,
    guidance: float = 3.0,
    temperature: float = 1.0,
    top_k: int = 250,
    top_p: float = 0.0,
    seed: int = DEFAULT_SEED,
    should_stop: Callable[[], bool] | None = None,
) -> MusicResult:
    """MusicGen text-to-music: ``seconds`` of audio at the audio encoder's rate (32 kHz for musicgen-small).

    Sampling as the MusicGen demo (top-k 250, top-p 0 = off, temperature 1, classifier-free guidance
    3; guidance <= 1 switches it off). The seed makes it repeatable without touching the global RNG.
    ``should_stop`` is polled after every frame; a cancelled run raises Cancelled.
    """
    import torch
    from transformers import StoppingCriteriaList

    validate_music(prompt, seconds, guidance, temperature, top_k, top_p, seed)
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
        torch.manual_seed(int(seed))
        try:
            values = musicgen_model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=True,
                guidance_scale=float(guidance),
                temperature=float(temperature),
                top_k=int(top_k),
                top_p=float(top_p) if top_p else 1.0,  # 0 means "off" in MusicGen's demo
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
        "seconds": float(seconds),
        "guidance": float(guidance),
        "temperature": float(temperature),
        "top_k": int(top_k),
        "top_p": float(top_p),
        "seed": int(seed),
        "max_new_tokens": max_new_tokens,
        "sample_rate": sample_rate,
    }
    return MusicResult(audio_io.peak_normalize(samples, headroom_db=1.0), sample_rate, prompt, parameters)
