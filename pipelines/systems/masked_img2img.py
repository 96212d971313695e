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
plus a ``change_map`` argument), imported only when a model runs; the settings live in settings.py
(``SoundToMusicSettings``, ``MaskSettings``). This module holds the change map and the audio-to-audio
path in two halves: ``render_with_model`` (windows, masks, diffusion, inversion: under the GPU lock)
and ``finish`` (normalising, image strips, SSIM and chroma CENS: CPU side).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from core.errors import Cancelled, InputError

from pipelines.signal import audio as audio_io
from pipelines.signal import metrics, spectrogram, windows
from pipelines.schema.results import MaskPreviewResult, Result
from pipelines.schema.settings import SCHEDULERS, MaskSettings, SoundToMusicSettings

# -- the change map ----------------------------------------------------------------------------------


def make_mask(spectrogram_image: Image.Image, settings: MaskSettings = MaskSettings()) -> Image.Image:
    """The change map (grayscale, same size) made from the sound's own spectrogram image.

    Raises InputError for mask settings out of range (checked once per settings object: a request's
    later windows pass for free, ``limits.Settings.validate``).
    """
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
    """The mask paper's image scale, ``max_volume = ceil(max(mel) ** 0.25)`` (SSIM_CENS_Ablation.ipynb),
    as a riffusion max value (the level-255 mel value) at least ``peak``.

    ``peak`` is the window's mel peak at the codec's int16 scale; the notebook took the maximum of the
    mel of librosa's float audio (``librosa.load``, no int16 scaling), so the ceiling is taken there:
    ``ceil((peak / INT16_SCALE) ** 0.25) ** 4 * INT16_SCALE``. (Taken at the int16 scale, the ceiling
    moves the level-255 value by a few percent instead of up to 2x, and the images differ from the
    notebook's by up to 49 levels on the paper's own sounds.)
    """
    scale = spectrogram.INT16_SCALE
    return float(math.ceil((max(peak, 0.0) / scale) ** 0.25) ** 4 * scale)


def _max_value(settings: MaskSettings):
    """What ``windows.render_windows`` scales each window's image by: the paper's, or None (exact)."""
    return paper_max_value if settings.preprocessing == "paper" else None


def with_scheduler(pipe, scheduler: str = "repo"):
    """A DifferentialImg2ImgPipeline sharing ``pipe``'s weights, with its own scheduler (schedulers hold state)."""
    import diffusers

    from pipelines.systems.differential_img2img import DifferentialImg2ImgPipeline

    if scheduler not in SCHEDULERS:
        raise InputError(f"Unknown scheduler {scheduler!r}: use one of {', '.join(SCHEDULERS)}.")
    components = dict(pipe.components)
    cls = getattr(diffusers, SCHEDULERS[scheduler]) if SCHEDULERS[scheduler] else type(pipe.scheduler)
    components["scheduler"] = cls.from_config(pipe.scheduler.config)
    masked = DifferentialImg2ImgPipeline(**components, requires_safety_checker=False)
    masked.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))
    return masked


def steps_that_run(pipe, settings: SoundToMusicSettings) -> int:
    """Denoising steps (UNet calls, each a CFG batch of 2) one window runs with these settings.

    Not ``steps * strength``: img2img runs the last ``int(steps * strength)`` of the scheduler's
    timesteps, and PNDM (both SD repos' own scheduler) has one extra, its PLMS warm-up repeating a
    timestep, so 50 steps at strength 0.8 run 41 (DDIM and DPM-Solver++: 40). Computed with
    diffusers' own ``get_timesteps`` on a fresh scheduler; no model runs.
    """
    masked = with_scheduler(pipe, settings.scheduler)
    masked.scheduler.set_timesteps(int(settings.steps))
    timesteps, _ = masked.get_timesteps(int(settings.steps), float(settings.strength), "cpu")
    return len(timesteps)


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


@dataclass
class RenderedSound:
    """What the model part of sound to music made (``render_with_model``, under the GPU lock);
    ``finish`` turns it into the result (CPU only). ``finish(render_with_model(pipe, audio, settings))``
    is the whole path, as the Studio runs it."""

    samples: np.ndarray  # (1, n) the input, float32 at 44.1 kHz
    windows: windows.RenderedWindows  # stitched audio (not normalised), input and output images
    masks: list  # the change map of every window, in order
    steps_run: int  # denoising steps (UNet calls, each a CFG batch) every window ran


def render_with_model(
    pipe,
    audio: np.ndarray,
    settings: SoundToMusicSettings = SoundToMusicSettings(),
    *,
    device: str = "cpu",
    plan: windows.WindowPlan | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_size: int = 1,
) -> RenderedSound:
    """Sound to music's model part: windows, masks, diffusion, inversion (``finish`` does the rest).

    Args:
        pipe: a loaded Stable Diffusion img2img pipeline on a Riffusion-style model (already on
            ``device``; the device manager puts it there).
        audio: mono samples at 44.1 kHz, shaped (n,) or (1, n); any length, processed in 5.12 s
            windows with the same seed schedule and crossfaded back together.
        settings: prompt, steps, strength, guidance, seed, scheduler and the mask settings.
        on_progress: called with (fraction done, message) per window and per denoising step.
        should_stop: polled after every denoising step; True cancels.
        batch_size: windows denoised together in one UNet batch (1: one at a time). Each window
            keeps its own generator seeded with ``settings.seed``, so the output does not depend on
            it beyond floating-point rounding.

    ``plan``: the request's ``windows.plan_windows`` for ``audio`` (the Studio makes it once and
    sizes ``batch_size`` from it); None plans riffusion's 0.2 s overlap here. ``settings`` are
    validated (a no-op when the Studio already did, see ``limits.Settings.validate``).
    Raises InputError for empty audio or settings out of range, Cancelled when ``should_stop``
    says so (within one denoising step).
    """
    import torch

    settings.validate()
    params = spectrogram.RIFFUSION
    samples = np.asarray(audio, dtype=np.float32).reshape(1, -1)
    if samples.shape[1] == 0:
        raise InputError("The audio is empty.")
    masked = with_scheduler(pipe, settings.scheduler)
    masks: list = []
    steps_run: list[int] = []
    plan = plan or windows.plan_windows(samples.shape[1], params)
    count = plan.count

    def render(indices: list[int], source_images: list[Image.Image]) -> list[Image.Image]:
        change_maps = [make_mask(image, settings.mask) for image in source_images]
        masks.extend(change_maps)
        # one generator per window, each seeded alike: every window gets the same noise as when it
        # runs alone, so batching changes the speed, not the music
        generators = [torch.Generator(device="cpu").manual_seed(int(settings.seed)) for _ in indices]
        label = f"window {indices[0] + 1}" if len(indices) == 1 else f"windows {indices[0] + 1}-{indices[-1] + 1}"

        def on_step(done: int, total: int) -> None:
            if on_progress is not None:
                on_progress((indices[0] + len(indices) * done / total) / count,
                            f"{label} of {count}: step {done} of {total}")

        result = masked(
            prompt=[settings.prompt] * len(indices),
            negative_prompt=[settings.negative_prompt] * len(indices) if settings.negative_prompt else None,
            image=[image.convert("RGB") for image in source_images],
            strength=float(settings.strength),
            num_inference_steps=int(settings.steps),
            guidance_scale=float(settings.guidance),
            generator=generators,
            change_map=change_maps,
            change_map_resize="paper" if settings.mask.preprocessing == "paper" else "antialias",
            should_stop=should_stop,
            on_step=on_step,
        )
        if masked.interrupt:
            raise Cancelled()
        steps_run.append(len(masked._run_timesteps))
        return list(result.images)

    done = windows.render_windows(samples, params, render, device=device, plan=plan, on_progress=on_progress, max_value=_max_value(settings.mask),
                                  batch_size=int(batch_size))
    return RenderedSound(samples=samples, windows=done, masks=masks, steps_run=steps_run[0])


def finish(rendered: RenderedSound, settings: SoundToMusicSettings) -> SoundToMusicResult:
    """CPU-side end of sound to music: normalised audio, the image strips and the similarity scores."""
    params = spectrogram.RIFFUSION
    done, samples = rendered.windows, rendered.samples
    inputs, outputs = done.inputs, done.outputs
    music = audio_io.peak_normalize(done.audio, headroom_db=1.0)
    input_strip, mask_strip, output_strip = (spectrogram.side_by_side(images)
                                             for images in (inputs, rendered.masks, outputs))
    scores = {
        "ssim": float(np.mean([metrics.ssim(a, b) for a, b in zip(inputs, outputs)])),
        "chroma_cens_similarity": metrics.chroma_cens_similarity(samples[0], music[0], params.sample_rate),
    }
    # steps_run: what ran, not steps x strength (PNDM, the repos' scheduler, runs 41 for 50 x 0.8)
    parameters = {"pipeline": "masked_img2img", **settings.as_dict(), "windows": len(inputs),
                  "steps_run": rendered.steps_run}
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
