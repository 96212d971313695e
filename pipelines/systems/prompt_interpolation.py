"""Prompt interpolation: Riffusion's walk from one prompt and seed to another, one 5.12 s window per step.

Riffusion (riffusion/riffusion-hobby, ``RiffusionPipeline.interpolate_img2img``) makes each clip of its
endless playback at an ``alpha`` between a start and an end (prompt, seed):

- the text conditioning is the linear interpolation of the two prompts' CLIP text-encoder outputs,
  ``c = c_A + alpha * (c_B - c_A)`` (the unconditional "" is shared);
- the start noise is the spherical linear interpolation (slerp, Shoemake 1985, as riffusion's
  ``slerp``) of the two seeds' Gaussian noises, ``z = sin((1 - alpha) theta) / sin(theta) * z_A +
  sin(alpha theta) / sin(theta) * z_B`` with ``cos(theta) = <z_A, z_B> / (|z_A| |z_B|)``, falling back
  to the linear mix when the two are almost parallel (|cos theta| > 0.9995). Slerp keeps the noise's
  norm where a plain mix would shrink it and wash the picture out.

Riffusion noises a seed image with that noise (img2img); here each window is text-to-image from it
(``text_to_music.generate_window``, riffusion's img2img at strength 1 without a seed image), so
window 0 (alpha 0) is exactly text to music's first window for prompt A at seed A, and the last
(alpha 1) the one for prompt B at seed B. Window i of N has alpha = i / (N - 1); the windows are
inverted one by one and crossfaded over ``windows.OVERLAP_SECONDS`` (0.2 s, riffusion's
audio-to-audio overlap): N windows last 5.12 + (N - 1) * 4.92 s. Guidance and steps are the same in
every window (riffusion also interpolates its guidance and denoising strength; one value each here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from pipelines.signal import audio as audio_io
from pipelines.signal import spectrogram, windows
from pipelines.schema.results import Result
from pipelines.schema.settings import PromptInterpolationSettings
from pipelines.systems.text_to_music import PARAMS, encode_prompts, generate_window, start_noise

DOT_THRESHOLD = 0.9995  # riffusion's: above it the two noises are treated as parallel (linear mix)


@dataclass
class PromptInterpolationResult(Result):
    audio: np.ndarray  # (1, n) float32 at sample_rate, n = 5.12 s + (windows - 1) * 4.92 s of samples
    sample_rate: int
    spectrogram: Image.Image  # the windows side by side, alpha 0 on the left
    alphas: list[float] = field(default_factory=list)

    def image_outputs(self) -> dict[str, Image.Image]:
        return {"spectrogram": self.spectrogram}


def lerp(alpha: float, start, end):
    """start + alpha * (end - start): the text embeddings' interpolation (any same-shaped tensors)."""
    return start + alpha * (end - start)


def slerp(alpha: float, v0, v1, dot_threshold: float = DOT_THRESHOLD):
    """Spherical linear interpolation of two same-shaped tensors (riffusion's formula, see module doc):
    v0 at alpha 0, v1 at alpha 1, the norm kept in between for equal-norm inputs; computed in float64."""
    import torch

    a, b = v0.double(), v1.double()
    dot = float(torch.sum(a * b) / (torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b)))
    if abs(dot) > dot_threshold:
        mixed = (1 - alpha) * a + alpha * b
    else:
        theta = float(np.arccos(dot))
        mixed = (np.sin((1 - alpha) * theta) * a + np.sin(alpha * theta) * b) / np.sin(theta)
    return mixed.to(v0.dtype)


def interpolate_prompts(
    pipe,
    settings: PromptInterpolationSettings = PromptInterpolationSettings(),
    *,
    device: str = "cpu",
    on_progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PromptInterpolationResult:
    """``settings.windows`` windows walking from (prompt A, seed A) to (prompt B, seed B).

    Args:
        pipe: a loaded Stable Diffusion pipeline on a Riffusion model, already on its device.
        settings: the two prompts and seeds, number of windows (2-12), steps, guidance.
        device: where the spectrogram inversion runs.
        on_progress: called with (fraction done, message) before each window and before stitching.
        should_stop: polled after every denoising step; True raises Cancelled.

    Returns the stitched audio (1, n) float32 peak-normalised to -1 dBFS, the windows' spectrograms
    side by side and each window's alpha. Raises InputError for settings out of range, before any model work.
    """
    import torch

    settings.validate()
    alphas = settings.alphas()
    with torch.no_grad():
        cond_a, uncond = encode_prompts(pipe, settings.prompt_a)
        cond_b, _ = encode_prompts(pipe, settings.prompt_b)
        noise_a, noise_b = start_noise(pipe, settings.seed_a), start_noise(pipe, settings.seed_b)
        images, rendered = [], []
        for index, alpha in enumerate(alphas):
            if on_progress:
                on_progress(index / len(alphas), f"window {index + 1} of {len(alphas)} (alpha {alpha:.2f})")
            image = generate_window(pipe, lerp(alpha, cond_a, cond_b), uncond, slerp(alpha, noise_a, noise_b),
                                    settings.steps, settings.guidance, should_stop)
            images.append(image)
            rendered.append(spectrogram.image_to_audio(image, PARAMS, device=device)[:1])
    if on_progress:
        on_progress(1.0, "stitching")
    step = PARAMS.window_samples - int(round(windows.OVERLAP_SECONDS * PARAMS.sample_rate))
    n_samples = PARAMS.window_samples + (len(alphas) - 1) * step
    plan = windows.plan_windows(n_samples, PARAMS, overlap_s=windows.OVERLAP_SECONDS, channels=1)
    music = audio_io.peak_normalize(windows.stitch_windows(rendered, plan), headroom_db=1.0)
    parameters = {"pipeline": "prompt_interpolation", **settings.as_dict(), "alphas": alphas,
                  "overlap_seconds": windows.OVERLAP_SECONDS}
    return PromptInterpolationResult(audio=music, sample_rate=PARAMS.sample_rate,
                                     spectrogram=spectrogram.side_by_side(images), alphas=alphas,
                                     parameters=parameters)
