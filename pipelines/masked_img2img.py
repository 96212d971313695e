"""Sound to music: mask-based (differential) img2img on Riffusion spectrograms.

The system of "Mask-Based Diffusion for Music Generation From Everyday Sounds" (ECAI'25):

1. the input sound becomes a Riffusion spectrogram image (5.12 s per 512 px window);
2. a *change map* is made from that same image: invert blend, brightness, contrast, downshift
   (``MaskSettings.preprocessing``: "paper" scales the image by ``paper_max_value`` and resizes the
   map to latent size without antialiasing, as the paper's notebooks; "exact" uses the window's
   exact peak and an antialiased resize);
3. differential img2img: the source latent is noised to every timestep with one shared noise, and
   before step i every latent pixel whose map value exceeds i/N is reset to the noised source, so
   a pixel with value v stays tied to the source for about the first v*N steps (bright = kept);
4. the output image becomes audio again; long inputs go window by window and are crossfaded.

The diffusion step lives in differential_img2img.py (diffusers' ``StableDiffusionImg2ImgPipeline``
plus a ``change_map`` argument), imported only when a model runs; this module holds the mask, the
settings and ``sound_to_music``, the whole audio-to-audio path with its images and metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from core.errors import Cancelled, InputError

from . import audio as audio_io
from . import metrics, spectrogram, windows
from .results import MaskPreviewResult, Result
from .settings import SCHEDULERS, MaskSettings, SoundToMusicSettings

# -- the change map ----------------------------------------------------------------------------------


def make_mask(spectrogram_image: Image.Image, settings: MaskSettings = MaskSettings()) -> Image.Image:
    """The change map (grayscale, same size) made from the sound's own spectrogram image."""
    settings.validate()
    gray = spectrogram_image.convert("L")
    if settings.invert >= 0:
        gray = Image.blend(gray, ImageOps.invert(gray), settings.invert)
    if settings.brightness >= 0:
        gray = ImageEnhance.Brightness(gray).enhance(settings.brightness)
    if settings.contrast >= 0:
        gray = ImageEnhance.Contrast(gray).enhance(settings.contrast)
    if settings.downshift >= 0:
        d = int(round(settings.downshift))
        values = np.asarray(gray, dtype=np.int16)
        gray = Image.fromarray(np.where(values > d, values - d, 0).astype(np.uint8), mode="L")
    return gray


def paper_max_value(peak: float) -> float:
    """The mask paper's image scale: ``max_volume = ceil(peak ** 0.25)`` (SSIM_CENS_Ablation.ipynb),
    as a riffusion max value (the level-255 mel value): ``max_volume ** 4``, at least ``peak``."""
    return float(math.ceil(max(peak, 0.0) ** 0.25) ** 4)


def _max_value(settings: MaskSettings):
    """What ``windows.render_windows`` scales each window's image by: the paper's, or None (exact)."""
    return paper_max_value if settings.preprocessing == "paper" else None


def with_scheduler(pipe, scheduler: str = "repo"):
    """A DifferentialImg2ImgPipeline sharing ``pipe``'s weights, with its own scheduler (schedulers hold state)."""
    import diffusers

    from .differential_img2img import DifferentialImg2ImgPipeline

    if scheduler not in SCHEDULERS:
        raise InputError(f"Unknown scheduler {scheduler!r}: use one of {', '.join(SCHEDULERS)}.")
    components = dict(pipe.components)
    cls = getattr(diffusers, SCHEDULERS[scheduler]) if SCHEDULERS[scheduler] else type(pipe.scheduler)
    components["scheduler"] = cls.from_config(pipe.scheduler.config)
    masked = DifferentialImg2ImgPipeline(**components, requires_safety_checker=False)
    masked.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))
    return masked


# -- the whole sound-to-music path ---------------------------------------------------------------------


@dataclass
class SoundToMusicResult(Result):
    audio: np.ndarray  # (1, n) float32 at sample_rate, the input's length
    sample_rate: int
    input_spectrogram: Image.Image  # whole input, windows side by side
    mask: Image.Image
    output_spectrogram: Image.Image

    def image_outputs(self) -> dict[str, Image.Image]:
        return {"input-spectrogram": self.input_spectrogram, "mask": self.mask,
                "output-spectrogram": self.output_spectrogram}


def sound_to_music(
    pipe,
    audio: np.ndarray,
    settings: SoundToMusicSettings = SoundToMusicSettings(),
    *,
    device: str = "cpu",
    overlap_seconds: float = windows.OVERLAP_SECONDS,
    on_progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SoundToMusicResult:
    """Turn a sound into music in the style of the prompt.

    Args:
        pipe: a loaded Stable Diffusion img2img pipeline on a Riffusion-style model (already on
            ``device``; the device manager puts it there).
        audio: mono samples at 44.1 kHz, shaped (n,) or (1, n); any length, processed in 5.12 s
            windows with the same seed schedule and crossfaded back together.
        settings: prompt, steps, strength, guidance, seed, scheduler and the mask settings.
        on_progress: called with (fraction done, message) per window.
        should_stop: polled after every denoising step; True cancels.
    """
    import torch

    settings.validate()
    params = spectrogram.RIFFUSION
    samples = np.asarray(audio, dtype=np.float32).reshape(1, -1)
    if samples.shape[1] == 0:
        raise InputError("The audio is empty.")
    masked = with_scheduler(pipe, settings.scheduler)
    masks = []

    def render(index: int, source_image: Image.Image) -> Image.Image:
        change_map = make_mask(source_image, settings.mask)
        masks.append(change_map)
        generator = torch.Generator(device="cpu").manual_seed(int(settings.seed))  # same schedule per window
        result = masked(
            prompt=settings.prompt,
            negative_prompt=settings.negative_prompt or None,
            image=source_image.convert("RGB"),
            strength=float(settings.strength),
            num_inference_steps=int(settings.steps),
            guidance_scale=float(settings.guidance),
            generator=generator,
            change_map=change_map,
            change_map_resize="paper" if settings.mask.preprocessing == "paper" else "antialias",
            should_stop=should_stop,
        )
        if masked.interrupt:
            raise Cancelled()
        return result.images[0]

    done = windows.render_windows(samples, params, render, device=device, overlap_s=overlap_seconds,
                                  on_progress=on_progress, max_value=_max_value(settings.mask))
    inputs, outputs = done.inputs, done.outputs
    music = audio_io.peak_normalize(done.audio, headroom_db=1.0)
    input_strip, mask_strip, output_strip = (spectrogram.side_by_side(images) for images in (inputs, masks, outputs))
    scores = {
        "ssim": float(np.mean([metrics.ssim(a, b) for a, b in zip(inputs, outputs)])),
        "chroma_cens_similarity": metrics.chroma_cens_similarity(samples[0], music[0], params.sample_rate),
    }
    parameters = {"pipeline": "masked_img2img", **settings.as_dict(), "windows": len(inputs)}
    return SoundToMusicResult(audio=music, sample_rate=params.sample_rate, input_spectrogram=input_strip,
                              mask=mask_strip, output_spectrogram=output_strip, metrics=scores, parameters=parameters)


def preview_mask(samples: np.ndarray, settings: MaskSettings = MaskSettings()) -> MaskPreviewResult:
    """The spectrogram and change map of a whole mono sound at 44.1 kHz (windows side by side).

    No model and no inversion: what sound_to_music would feed the model, shown before it runs.
    Raises InputError for mask settings out of range.
    """
    settings.validate()
    done = windows.render_windows(samples, spectrogram.RIFFUSION, lambda _, image: make_mask(image, settings),
                                  to_audio=False, max_value=_max_value(settings))
    return MaskPreviewResult(input_spectrogram=spectrogram.side_by_side(done.inputs),
                             mask=spectrogram.side_by_side(done.outputs),
                             parameters={"pipeline": "preview_mask", **settings.as_dict()})
