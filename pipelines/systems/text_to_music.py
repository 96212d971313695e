"""Text to music: Riffusion's text-to-image on spectrograms, window after window, each continuing the last.

What every Riffusion user does first (riffusion/riffusion-hobby: type a prompt, hear music), for any
length up to ``limits.RIFFUSION_SECONDS``:

1. window 0 is text-to-image: the seed's Gaussian noise (1, 4, 64, 64) denoised under the prompt
   (classifier-free guidance against the negative prompt) into one 512x512 spectrogram, 5.12 s;
2. window k > 0 continues window k-1: its source image is window k-1 rolled left so that its last
   ``CONTINUATION_TAIL_SECONDS`` (1.28 s, 128 px, 16 latent columns) come first, followed by the
   start of window k-1. Differential img2img (``differential_img2img``, as sound to music) runs on it
   at ``continuation_strength`` with a change map that is white over the tail (kept for every step)
   and black elsewhere (repainted), resized to latent size without antialiasing so exactly the
   tail's 16 latent columns are kept: the new window starts with the old window's end and goes on in
   the same key and timbre. Its noise comes from seed + k;
3. every window is inverted to audio on its own; neighbours share the tail's seconds, which
   ``windows.stitch_windows`` crossfades (its correlation-aware law: the shared part is nearly the
   same sound, so the join keeps its level); the result is trimmed to the asked length and
   peak-normalised as every other tab's output.

So 12 s is three windows: 5.12 + 3.84 + 3.84 = 12.8 s, trimmed to 12. The same settings and seed
give the same audio (every random draw comes from a seeded CPU generator).

``generate_window`` is the plain text-to-image step on given text embeddings and start noise;
``prompt_interpolation`` runs it with interpolated ones, so its windows at alpha 0 and 1 are this
module's window 0 for prompt A (seed A) and prompt B (seed B).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.errors import Cancelled

from pipelines.signal import audio as audio_io
from pipelines.signal import spectrogram, windows
from pipelines.schema import streaming
from pipelines.schema.results import Result
from pipelines.schema.settings import CONTINUATION_TAIL_SECONDS, TextToMusicSettings

PARAMS = spectrogram.RIFFUSION  # 512 mel bins x 512 columns per window, 44.1 kHz


@dataclass
class TextToMusicResult(Result):
    audio: np.ndarray  # (1, n) float32 at sample_rate, exactly the asked seconds long
    sample_rate: int
    spectrogram: Image.Image  # every window's image, side by side (neighbours share their tail)

    def image_outputs(self) -> dict[str, Image.Image]:
        return {"spectrogram": self.spectrogram}


# -- one text-to-image window ------------------------------------------------------------------------------


def start_noise(pipe, seed: int):
    """Gaussian start latents (1, unet in_channels, 512/8, 512/8) float32 from a CPU generator seeded
    with ``seed`` (the same on every device), unscaled: the scheduler's ``init_noise_sigma`` is applied
    by the pipeline."""
    import torch

    scale = pipe.vae_scale_factor
    shape = (1, pipe.unet.config.in_channels, PARAMS.n_mels // scale, PARAMS.width // scale)
    return torch.randn(shape, generator=torch.Generator(device="cpu").manual_seed(int(seed)), dtype=torch.float32)


def encode_prompts(pipe, prompt: str, negative_prompt: str = ""):
    """(prompt embeddings, negative embeddings), each (1, 77, text width), from the pipe's CLIP text
    encoder; an empty negative prompt is the unconditional "" as diffusers and riffusion use it."""
    return pipe.encode_prompt(prompt, pipe.unet.device, 1, True, negative_prompt or None)


def _text_to_image(pipe):
    """A StableDiffusionPipeline sharing ``pipe``'s weights, with its own scheduler (schedulers hold state)."""
    from diffusers import StableDiffusionPipeline

    components = dict(pipe.components)
    components["scheduler"] = type(pipe.scheduler).from_config(pipe.scheduler.config)
    txt2img = StableDiffusionPipeline(**components, requires_safety_checker=False)
    txt2img.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))
    return txt2img


def generate_window(pipe, prompt_embeds, negative_embeds, noise, steps: int, guidance: float,
                    should_stop: Callable[[], bool] | None = None) -> Image.Image:
    """One window: ``generate_windows`` with one noise (see there)."""
    return generate_windows(pipe, prompt_embeds, negative_embeds, noise, steps, guidance, should_stop)[0]


def generate_windows(pipe, prompt_embeds, negative_embeds, noise, steps: int, guidance: float,
                     should_stop: Callable[[], bool] | None = None) -> list[Image.Image]:
    """512x512 spectrograms by text-to-image from given conditioning and start noises, in one batch.

    Args:
        pipe: a loaded Stable Diffusion pipeline on a Riffusion-style model (any of diffusers' SD
            1.x pipelines: only its components are used, with a fresh copy of its scheduler).
        prompt_embeds, negative_embeds: (1, 77, width) text-encoder outputs (``encode_prompts``).
        noise: (B, 4, 64, 64) start latents from ``start_noise`` (or a slerp of two), B windows in one
            UNet batch (the same conditioning for each: ``pipelines.systems.variations`` batches seeds).
        steps, guidance: diffusers' ``num_inference_steps`` and ``guidance_scale`` (<= 1: no CFG).
        should_stop: polled after every denoising step; True raises Cancelled.

    Returns B mono spectrograms (luminance as RGB) with riffusion's metadata (its default max value).
    """
    txt2img = _text_to_image(pipe)
    count = noise.shape[0]

    def on_step_end(p, i, t, callback_kwargs):
        if should_stop is not None and should_stop():
            p._interrupt = True
        return {}

    device, dtype = pipe.unet.device, pipe.unet.dtype
    images = txt2img(
        prompt_embeds=prompt_embeds.to(device, dtype).expand(count, -1, -1),
        negative_prompt_embeds=negative_embeds.to(device, dtype).expand(count, -1, -1),
        latents=noise.to(device, dtype),
        height=PARAMS.n_mels,
        width=PARAMS.width,
        num_inference_steps=int(steps),
        guidance_scale=float(guidance),
        callback_on_step_end=on_step_end,
    ).images
    if txt2img.interrupt:
        raise Cancelled()
    return [with_spectrogram_metadata(one) for one in images]


def with_spectrogram_metadata(painted: Image.Image) -> Image.Image:
    """The model's RGB painting as a mono riffusion spectrogram carrying riffusion's metadata (max
    value: the preset's default, 30e6, which riffusion assumes for images without one)."""
    silent = spectrogram.mel_to_image(np.zeros((1, PARAMS.n_mels, 1), dtype=np.float32), PARAMS,
                                      max_value=PARAMS.default_max_value)
    return spectrogram.as_mono_spectrogram(painted, silent)


# -- continuing a window ---------------------------------------------------------------------------------


def tail_pixels(tail_seconds: float = CONTINUATION_TAIL_SECONDS) -> int:
    """Image columns of the shared tail (10 ms per column): 128 for 1.28 s."""
    return int(round(tail_seconds * PARAMS.sample_rate / PARAMS.hop_length))


def continuation_source(previous: Image.Image, tail: int) -> tuple[Image.Image, Image.Image]:
    """(source image, change map) for the window after ``previous``: the previous image rolled left so
    its last ``tail`` columns come first, and a map white (kept) over those columns, black elsewhere."""
    pixels = np.asarray(previous.convert("RGB"))
    source = Image.fromarray(np.roll(pixels, -(pixels.shape[1] - tail), axis=1))
    change_map = np.zeros(pixels.shape[:2], dtype=np.uint8)
    change_map[:, :tail] = 255
    return source, Image.fromarray(change_map, mode="L")


def continue_window(pipe, previous: Image.Image, settings: TextToMusicSettings, seed: int,
                    should_stop: Callable[[], bool] | None = None, before: bool = False) -> Image.Image:
    """The window after ``previous``: differential img2img of its rolled copy, the tail kept (see module
    doc). ``before``: the window before it instead, the same in mirror image (``previous``'s first
    1.28 s moved to the end and kept), for extending a track at its start (``pipelines.systems.extend``)."""
    import torch

    from pipelines.systems.masked_img2img import with_scheduler

    if before:
        mirrored = continuation_source(previous.transpose(Image.Transpose.FLIP_LEFT_RIGHT), tail_pixels())
        source, change_map = (image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for image in mirrored)
    else:
        source, change_map = continuation_source(previous, tail_pixels())
    masked = with_scheduler(pipe, "repo")
    painted = masked(
        prompt=settings.prompt,
        negative_prompt=settings.negative_prompt or None,
        image=source,
        strength=float(settings.continuation_strength),
        num_inference_steps=int(settings.steps),
        guidance_scale=float(settings.guidance),
        generator=torch.Generator(device="cpu").manual_seed(int(seed) % 2**32),
        change_map=change_map,
        change_map_resize="paper",  # no antialiasing: the tail's 16 latent columns are exactly 1, the rest 0
        should_stop=should_stop,
    ).images[0]
    if masked.interrupt:
        raise Cancelled()
    return with_spectrogram_metadata(painted)


# -- the whole text-to-music path ------------------------------------------------------------------------


def text_to_music(
    pipe,
    settings: TextToMusicSettings = TextToMusicSettings(),
    *,
    device: str = "cpu",
    on_progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    first_window: Image.Image | None = None,
) -> TextToMusicResult:
    """Music from a prompt: ``settings.seconds`` of audio from successive 5.12 s windows continuing each other.

    Args:
        pipe: a loaded Stable Diffusion pipeline on a Riffusion-style model, already on its device.
        settings: prompt, negative prompt, seconds (1-60), steps, guidance, seed, continuation strength.
        device: where the spectrogram inversion runs.
        on_progress: called with (fraction done, message) before each window and before stitching.
        should_stop: polled after every denoising step; True raises Cancelled.
        first_window: window 0 when already made (``generate_windows`` batching several seeds).

    Returns audio (1, round(seconds * 44100)) float32 peak-normalised to -1 dBFS, and the windows'
    spectrograms side by side. Raises InputError for settings out of range (before any model work).
    """
    import torch

    settings.validate()
    plan = settings.plan()
    count = plan.count
    images: list[Image.Image] = []
    rendered = []
    live = streaming.Progressive(PARAMS.sample_rate)  # listen while it is made (no-op without a listener)
    with torch.no_grad():
        for index in range(count):
            if on_progress:
                on_progress(index / count, f"window {index + 1} of {count}")
            if index == 0 and first_window is not None:
                image = first_window
            elif index == 0:
                cond, uncond = encode_prompts(pipe, settings.prompt, settings.negative_prompt)
                image = generate_window(pipe, cond, uncond, start_noise(pipe, settings.seed), settings.steps,
                                        settings.guidance, should_stop)
            else:
                image = continue_window(pipe, images[-1], settings, settings.seed + index, should_stop)
            images.append(image)
            rendered.append(spectrogram.image_to_audio(image, PARAMS, device=device)[:1])
            if live.sink is not None and index + 1 < count:  # up to where the next window's crossfade starts
                done = dataclasses.replace(plan, n_samples=plan.starts[index + 1], starts=plan.starts[: index + 1])
                live.update(windows.stitch_windows(rendered, done))
    if on_progress:
        on_progress(1.0, "stitching")
    stitched = windows.stitch_windows(rendered, plan)
    live.update(stitched)
    music = audio_io.peak_normalize(stitched, headroom_db=1.0)
    parameters = {"pipeline": "text_to_music", **settings.as_dict(), "windows": count,
                  "tail_seconds": CONTINUATION_TAIL_SECONDS}
    return TextToMusicResult(audio=music, sample_rate=PARAMS.sample_rate,
                             spectrogram=spectrogram.side_by_side(images), parameters=parameters)
