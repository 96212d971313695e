"""Every pipeline's settings: one frozen dataclass each, holding defaults, limits and ``validate()``.

The UI builds its controls from these classes (``Settings.default`` and ``RANGES``), the Studio passes
them through, and the pipeline validates them once, before any model work; API callers get the same
checks. Each class also estimates its own GPU time for ZeroGPU (``gpu_seconds``), since the cost
depends on the settings. This module imports no torch, so the app starts fast.

Field names follow the papers and diffusers where they exist: ``steps`` is diffusers'
``num_inference_steps``, ``guidance`` its ``guidance_scale``, ``strength`` img2img's ``strength``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.errors import InputError, concerning_parameter

from pipelines.schema import limits

from pipelines.signal import windows

# Sound to music: scheduler choices by name (classes are looked up in diffusers only when a pipeline is built)
SCHEDULERS = {"repo": None, "ddim": "DDIMScheduler", "dpm++": "DPMSolverMultistepScheduler"}
# Sound to music speed presets: the paper's setting, and DPM-Solver++ at 25 steps (20 UNet calls per
# window at strength 0.8 instead of 41: about half the time). The fast preset's price: the change map
# acts at the steps that run, so a window's pixels get 20 kept-step levels instead of 41, and the
# sampler is not the one the paper's outputs and SSIM / CENS figures were made with (README, "Sound to music").
SOUND_TO_MUSIC_PRESETS = {"paper": {"steps": 50, "scheduler": "repo"}, "fast": {"steps": 25, "scheduler": "dpm++"}}
# Playlist to music
SAMPLERS = ("ddpm", "ddim")
SLICE_POSITIONS = ("middle", "first")


def check_img2img_steps(steps: int, strength: float, name: str = "strength") -> None:
    """img2img runs ``int(steps * strength)`` of its steps (diffusers' ``get_timesteps``): refuse a
    pair that leaves none, naming the fewest steps that work at this ``strength`` (``name``: what the
    control is called). Raises InputError."""
    if int(steps * strength) < 1:
        fewest = math.ceil(1 / strength - 1e-9) if strength > 0 else None
        remedy = f"use at least {fewest} steps or a higher {name}" if fewest else f"raise the {name} above 0"
        raise InputError(f"At {name} {strength:g} only {strength:g} of the steps run: {steps} step(s) leave none "
                         f"to run; {remedy}.")


@dataclass(frozen=True)
class MaskSettings(limits.Settings):
    """The four steps that turn a spectrogram into a change map; a negative factor skips its step."""

    invert: float = 1.0  # blend of the image with its inverse (1: fully inverted, loud = bright = kept)
    brightness: float = 0.05  # PIL ImageEnhance.Brightness factor
    contrast: float = 200.0  # PIL ImageEnhance.Contrast factor
    downshift: float = 150.0  # intensity subtracted, 0-255: larger gives the model more freedom
    # "paper": the input image scaled by ceil(max(mel) ** 0.25) ** 4 and the map resized to latent size
    # bilinearly without antialiasing, as the paper's notebooks; "exact": the exact max and an
    # antialiased resize. The default and why: README, "Sound to music".
    preprocessing: str = "paper"

    RANGES = {"invert": limits.MASK_INVERT, "brightness": limits.MASK_BRIGHTNESS,
              "contrast": limits.MASK_CONTRAST, "downshift": limits.MASK_DOWNSHIFT}
    CHOICES = {"preprocessing": ("paper", "exact")}
    LABELS = {"invert": "Invert blend"}


@dataclass(frozen=True)
class SoundToMusicSettings(limits.Settings):
    """Everything a caller controls in sound to music; defaults are the mask paper's notebook values."""

    prompt: str = "instrumental , saxophone , flute"
    negative_prompt: str = ""
    steps: int = 50
    strength: float = 0.8
    guidance: float = 8.0
    seed: int = 1040
    scheduler: str = "repo"
    mask: MaskSettings = field(default_factory=MaskSettings)
    lora_scale: float = 0.0  # the genre LoRA (role s2m_lora, training.riffusion_lora); 0: the model alone
    lora: str = ""  # which genre LoRA: "" the installed one (s2m_lora), else one the session trained (Studio.genre_loras)

    TEXTS = {"prompt": (True, "write one, for example 'instrumental , saxophone , flute'"),
             "negative_prompt": (False, ""), "lora": (False, "")}
    LABELS = {"prompt": "Style prompt", "lora_scale": "Genre LoRA scale", "lora": "Genre LoRA"}
    CHOICES = {"scheduler": tuple(SCHEDULERS)}
    RANGES = {"steps": limits.STEPS, "strength": limits.STRENGTH, "guidance": limits.GUIDANCE, "seed": limits.SEED,
              "lora_scale": limits.LORA_SCALE}

    def check(self) -> None:
        check_img2img_steps(self.steps, self.strength)
        self.mask.validate()

    @classmethod
    def preset(cls, name: str, **changes) -> SoundToMusicSettings:
        """The settings of a speed preset (``SOUND_TO_MUSIC_PRESETS``: "paper" or "fast"), with ``changes``
        on top. Raises InputError for an unknown preset name."""
        if name not in SOUND_TO_MUSIC_PRESETS:
            raise InputError(f"Unknown preset {name!r}: use one of {', '.join(SOUND_TO_MUSIC_PRESETS)}.")
        return cls(**{**SOUND_TO_MUSIC_PRESETS[name], **changes})

    def gpu_seconds(self, audio_seconds: float) -> int:
        """ZeroGPU quota: about 0.1 s per denoising step per 5.12 s window on a shared A100, plus 20 s
        for the codec and the first call's warm-up."""
        return int(20 + riffusion_windows(audio_seconds) * float(self.steps) * float(self.strength) * 0.1)


@dataclass(frozen=True)
class StyleInterpolationSettings(limits.Settings):
    """MusicTI's sampling (README of the seed): 50 DDIM steps, eta 0, guidance 5, strength 0.7, seed 23."""

    strength: float = 0.7  # how far from the content: the DDIM inversion depth
    steps: int = 50
    guidance: float = 5.0
    seed: int = 23

    RANGES = {"strength": limits.STRENGTH, "steps": limits.STEPS, "guidance": limits.GUIDANCE, "seed": limits.SEED}

    def check(self) -> None:
        if self.strength <= 0:
            with concerning_parameter("strength"):
                raise InputError("Strength must be above 0 (0 would keep the content unchanged); MusicTI uses 0.7.")
        check_img2img_steps(self.steps, self.strength)

    def gpu_seconds(self, audio_seconds: float) -> int:
        """ZeroGPU quota: as sound to music per step and window, plus the DDIM inversion pass and 30 s
        of margin for the styles' text-encoder passes at every step."""
        return int(30 + riffusion_windows(audio_seconds) * (float(self.steps) * float(self.strength) + 1) * 0.15)


@dataclass(frozen=True)
class MusicToImageSettings(limits.Settings):
    """Everything a caller controls in music to image; diffusers' text-to-image defaults, as the original."""

    negative_prompt: str = ""
    steps: int = 50
    guidance: float = 7.5
    width: int = 512
    height: int = 512
    seed: int = 0
    lora_scale: float = 1.0  # 0: plain Stable Diffusion 1.5

    TEXTS = {"negative_prompt": (False, "")}
    RANGES = {"steps": limits.STEPS, "guidance": limits.GUIDANCE, "width": limits.IMAGE_SIDE,
              "height": limits.IMAGE_SIDE, "seed": limits.SEED, "lora_scale": limits.LORA_SCALE}
    LABELS = {"lora_scale": "LoRA scale"}

    def check(self) -> None:
        for name in ("width", "height"):
            if int(getattr(self, name)) % 8:
                with concerning_parameter(name):
                    raise InputError(f"{self.label(name)} must be a multiple of 8 (the latent is 1/8 of the image); "
                                     f"got {getattr(self, name)}.")

    def gpu_seconds(self) -> int:
        """ZeroGPU quota: about 0.1 s per step at 512x512 on a shared A100 (growing with the pixel
        count), plus 60 s for the classifiers, the LoRA's first load and margin."""
        area = self.width * self.height / 512**2
        return int(60 + float(self.steps) * 0.1 * max(area, 0.25))


@dataclass(frozen=True)
class ImageToMusicSettings(limits.Settings):
    """MusicGen's sampling, as the MusicGen demo: top-k 250, top-p 0 (off), temperature 1, CFG 3."""

    seconds: float = 10.0
    guidance: float = 3.0  # classifier-free guidance; <= 1 switches it off
    temperature: float = 1.0
    top_k: int = 250  # 0: off
    top_p: float = 0.0  # 0: off
    seed: int = 0

    RANGES = {"seconds": limits.MUSIC_SECONDS, "guidance": limits.GUIDANCE, "temperature": limits.TEMPERATURE,
              "top_k": limits.TOP_K, "top_p": limits.TOP_P, "seed": limits.SEED}
    LABELS = {"seconds": "Duration", "top_k": "Top-k", "top_p": "Top-p"}  # the picture tab's "Duration (s)"

    def gpu_seconds(self) -> int:
        """ZeroGPU quota: musicgen-small makes about 1 s of audio per second on a shared A100 with CFG,
        twice that for margin, plus 30 s for the caption and the codec."""
        return int(30 + 2 * float(self.seconds))


@dataclass(frozen=True)
class PlaylistToMusicSettings(limits.Settings):
    """Sampling of the playlist-conditioned UNet. The original ran all 1000 DDPM steps; 50 keeps a CPU in pace."""

    steps: int = 50
    guidance: float = 7.5  # 1: the conditional branch alone, 0: the unconditional alone
    seed: int = 0
    sampler: str = "ddpm"
    slice_position: str = "middle"  # which 5.9 s of each track the VAE sees

    RANGES = {"steps": limits.PLAYLIST_STEPS, "guidance": limits.GUIDANCE, "seed": limits.SEED}
    CHOICES = {"sampler": SAMPLERS, "slice_position": SLICE_POSITIONS}

    def gpu_seconds(self) -> int:
        """ZeroGPU quota: the 256x256 UNet takes about 0.05 s a step with CFG on a shared A100, plus
        30 s for the VAE, the tracks' spectrograms and the inversion."""
        return int(30 + float(self.steps) * 0.05)


# Riffusion text to music: seconds that each window shares with the previous one (128 px, 16 latent columns)
CONTINUATION_TAIL_SECONDS = 1.28
RIFFUSION_SAMPLE_RATE = 44100
RIFFUSION_WINDOW_SAMPLES = 512 * 441 - 1  # one 512 px spectrogram image (spectrogram.RIFFUSION.window_samples)
RIFFUSION_WINDOW = (RIFFUSION_WINDOW_SAMPLES, RIFFUSION_SAMPLE_RATE)  # (samples, rate) for windows.plan_windows


def riffusion_windows(seconds: float, overlap_seconds: float = windows.OVERLAP_SECONDS) -> int:
    """5.12 s windows that ``seconds`` of audio need with ``overlap_seconds`` shared by neighbours
    (``windows.plan_windows``, the one count formula): sound to music and style interpolation with
    riffusion's 0.2 s, text to music with its continuation tail. At least 1."""
    return windows.windows_for_seconds(seconds, RIFFUSION_WINDOW, overlap_seconds)


def riffusion_gpu_seconds(windows: int, steps: float) -> int:
    """ZeroGPU quota of Riffusion windows from noise: about 0.1 s per denoising step per 5.12 s window
    on a shared A100, plus 20 s for the codec and the first call's warm-up."""
    return int(20 + int(windows) * float(steps) * 0.1)


@dataclass(frozen=True)
class TextToMusicSettings(limits.Settings):
    """Riffusion text to music. Defaults are riffusion's app's (50 steps, guidance 7, seed 42); 8 s is
    two windows, the second continuing the first.

    ``continuation_strength`` is the img2img strength of every window after the first (how much of
    the previous window, rolled so its tail comes first, is repainted); the tail itself is kept.
    """

    prompt: str = "funk bassline with a jazzy saxophone solo"
    negative_prompt: str = ""
    seconds: float = 8.0
    steps: int = 50
    guidance: float = 7.0
    seed: int = 42
    continuation_strength: float = 0.8

    TEXTS = {"prompt": (True, "describe the music, for example 'funk bassline with a jazzy saxophone solo'"),
             "negative_prompt": (False, "")}
    RANGES = {"seconds": limits.RIFFUSION_SECONDS, "steps": limits.STEPS, "guidance": limits.GUIDANCE,
              "seed": limits.SEED, "continuation_strength": limits.STRENGTH}
    LABELS = {"seconds": "Length"}

    def check(self) -> None:
        if self.windows() > 1:
            check_img2img_steps(self.steps, self.continuation_strength, "continuation strength")

    def plan(self) -> windows.WindowPlan:
        """The windows of ``seconds`` of audio, each continuing the previous one's tail (mono)."""
        n_samples = int(round(float(self.seconds) * RIFFUSION_SAMPLE_RATE))
        return windows.plan_windows(n_samples, RIFFUSION_WINDOW, overlap_s=CONTINUATION_TAIL_SECONDS, channels=1)

    def windows(self) -> int:
        return self.plan().count

    def gpu_seconds(self) -> int:
        return riffusion_gpu_seconds(self.windows(), self.steps)


@dataclass(frozen=True)
class PromptInterpolationSettings(limits.Settings):
    """Riffusion's interpolation between two prompts over ``windows`` windows of 5.12 s: window i has
    alpha = i / (windows - 1), text embeddings lerped and start noise slerped between the two seeds'."""

    prompt_a: str = "church bells on sunday"
    prompt_b: str = "jazz with piano"
    seed_a: int = 42
    seed_b: int = 123
    windows: int = 3
    steps: int = 50
    guidance: float = 7.0

    TEXTS = {"prompt_a": (True, "write the prompt the music starts from"),
             "prompt_b": (True, "write the prompt the music ends at")}
    RANGES = {"seed_a": limits.SEED, "seed_b": limits.SEED, "windows": limits.INTERPOLATION_WINDOWS,
              "steps": limits.STEPS, "guidance": limits.GUIDANCE}
    LABELS = {"prompt_a": "First prompt", "prompt_b": "Second prompt", "seed_a": "First seed", "seed_b": "Second seed"}

    def alphas(self) -> list[float]:
        """alpha of each window, 0 (prompt A, seed A) to 1 (prompt B, seed B), evenly spaced."""
        n = int(self.windows)
        return [i / (n - 1) for i in range(n)]

    def gpu_seconds(self) -> int:
        return riffusion_gpu_seconds(self.windows, self.steps)
