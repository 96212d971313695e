"""Cut long audio into image-sized windows and stitch processed windows back, length preserved.

A window is one spectrogram image wide (``params.window_samples``: 5.12 s for riffusion), so every
window becomes exactly one image and back. Neighbours overlap by ``overlap_s`` (riffusion's
audio-to-audio uses 0.2 s) and are joined with cos/sin crossfades. The last window is zero padded
and the stitched result trimmed, so ``len(output) == len(input)``.

Crossfade law: cos/sin is equal power, right for windows that come back with unrelated phases (as
Griffin-Lim gives them) but it swells by up to 3 dB when both sides carry the same signal. So by
default each join measures the correlation r of the two overlapping parts and divides the pair
by sqrt(cos^2 + sin^2 + 2 r cos sin): plain equal power for r = 0, an exact, gain-free join for
identical windows (r = 1). ``mode="power"`` keeps the plain cos/sin law.

``render_windows`` is the whole loop every windowed pipeline runs (sound to music, style
interpolation, the mask preview): cut, make each window's spectrogram image, let the pipeline
render it, invert each rendered image to audio and stitch.
"""

from __future__ import annotations

import math
import os
import typing as T
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from core import runs
from core.errors import InputError, StudioError


OVERLAP_SECONDS = 0.2  # between 5.12 s windows, as riffusion's own audio-to-audio mode


@dataclass(frozen=True)
class WindowPlan:
    """Where each window sits in the (padded) input."""

    n_samples: int  # input length, the stitched output's length
    window: int  # samples per window
    overlap: int  # samples shared by neighbours
    starts: T.Tuple[int, ...]  # first sample of each window
    channels: T.Optional[int]  # None for 1-D input, else the channel count
    sample_rate: int

    @property
    def step(self) -> int:
        return self.window - self.overlap

    @property
    def count(self) -> int:
        return len(self.starts)

    @property
    def padded_length(self) -> int:
        return self.starts[-1] + self.window


def _window_length(params) -> T.Tuple[int, int]:
    """(samples, sample rate) from SpectrogramParams, or an explicit (samples, sample_rate) pair."""
    if hasattr(params, "window_samples"):
        return int(params.window_samples), int(params.sample_rate)
    window, sample_rate = params
    return int(window), int(sample_rate)


def plan_windows(n_samples: int, params, overlap_s: float = OVERLAP_SECONDS, channels: T.Optional[int] = None) -> WindowPlan:
    """Where the windows of ``n_samples`` sit: the one window-count formula of the project.

    One window up to ``window`` samples, then one more per started ``window - overlap`` samples:
    ``count = 1 + ceil((n - window) / (window - overlap))``. ``params``: SpectrogramParams or
    (window_samples, sample_rate). Raises InputError for n < 1 or an overlap over half a window.
    """
    window, sr = _window_length(params)
    if n_samples < 1:
        raise InputError("Audio is empty: nothing to cut into windows")
    overlap = int(round(overlap_s * sr))
    if overlap < 0 or overlap > window // 2:
        raise InputError(
            f"Overlap must be between 0 and half a window ({window / 2 / sr:.2f} s), got {overlap_s} s"
        )
    step = window - overlap
    count = 1 if n_samples <= window else 1 + math.ceil((n_samples - window) / step)
    starts = tuple(i * step for i in range(count))
    return WindowPlan(n_samples, window, overlap, starts, channels, sr)


def windows_for_seconds(seconds: float, params, overlap_s: float = OVERLAP_SECONDS) -> int:
    """How many windows ``seconds`` of audio (at least one sample) need: ``plan_windows``'s count."""
    _, sr = _window_length(params)
    return plan_windows(max(1, int(round(float(seconds) * sr))), params, overlap_s).count


def split_windows(audio: np.ndarray, params, overlap_s: float = OVERLAP_SECONDS,
                  plan: T.Optional[WindowPlan] = None) -> T.Tuple[np.ndarray, WindowPlan]:
    """(windows, plan): windows is (count, window) for 1-D audio, (count, channels, window) for 2-D.

    ``params`` is a SpectrogramParams (its image width sets the window) or (window_samples, sample_rate).
    ``plan``: the request's plan, made once (``plan_windows``); None plans here. Raises InputError
    for a plan made for another length or layout.
    """
    x = np.asarray(audio)
    if x.ndim not in (1, 2):
        raise InputError(f"Audio must be (samples,) or (channels, samples), got shape {x.shape}")
    channels = None if x.ndim == 1 else x.shape[0]
    if plan is None:
        plan = plan_windows(x.shape[-1], params, overlap_s, channels=channels)
    elif plan.n_samples != x.shape[-1]:
        raise InputError(f"The window plan is for {plan.n_samples} samples, the audio has {x.shape[-1]}.")
    elif plan.channels != channels:
        plan = WindowPlan(plan.n_samples, plan.window, plan.overlap, plan.starts, channels, plan.sample_rate)
    pad = [(0, 0)] * (x.ndim - 1) + [(0, plan.padded_length - x.shape[-1])]
    padded = np.pad(x, pad)
    windows = np.stack([padded[..., s : s + plan.window] for s in plan.starts])
    return windows, plan


def crossfade_curves(overlap: int) -> T.Tuple[np.ndarray, np.ndarray]:
    """(fade_out, fade_in) = (cos, sin) over a quarter period: fade_out**2 + fade_in**2 == 1."""
    # sample centres, so neither curve sits exactly on 0 or 1 and the two are mirror images
    theta = (np.arange(overlap) + 0.5) / overlap * (np.pi / 2)
    return np.cos(theta), np.sin(theta)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two overlapping parts, clipped to [0, 1] (negative would blow up)."""
    num = float(np.sum(a * b))
    den = math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b)))
    return min(max(num / den, 0.0), 1.0) if den > 0 else 0.0


def stitch_windows(windows: T.Sequence[np.ndarray], plan: WindowPlan, mode: str = "adaptive") -> np.ndarray:
    """Overlap-add processed windows with crossfades; output has the input's length and layout.

    Windows longer than ``plan.window`` are trimmed, shorter ones zero padded (a codec may give a
    sample or two less). ``mode``: "adaptive" (default, see module doc) or "power" (plain cos/sin).
    """
    if mode not in ("adaptive", "power"):
        raise InputError(f"mode must be 'adaptive' or 'power', not {mode!r}")
    if len(windows) != len(plan.starts):
        raise InputError(f"Expected {len(plan.starts)} windows, got {len(windows)}")
    lead = () if plan.channels is None else (plan.channels,)
    fixed = []
    for w in windows:
        w = np.asarray(w, dtype=np.float64)
        if w.ndim == 1 and lead:
            w = np.broadcast_to(w, lead + w.shape)  # a mono result for stereo input: both sides
        if w.shape[:-1] != lead:
            raise InputError(f"Window shape {w.shape} does not match the input's channels {lead}")
        n = w.shape[-1]
        if n >= plan.window:
            w = w[..., : plan.window]
        else:
            w = np.pad(w, [(0, 0)] * len(lead) + [(0, plan.window - n)])
        fixed.append(w)

    out = np.zeros(lead + (plan.padded_length,), dtype=np.float64)
    ov = plan.overlap
    fade_out, fade_in = crossfade_curves(ov) if ov else (np.ones(0), np.ones(0))
    for i, (start, w) in enumerate(zip(plan.starts, fixed)):
        w = w.copy()
        if i > 0 and ov:
            w[..., :ov] *= fade_in
        if i + 1 < len(fixed) and ov:
            w[..., -ov:] *= fade_out
        out[..., start : start + plan.window] += w
        if i > 0 and ov and mode == "adaptive":
            # the join just written: rescale by the power the pair actually has
            prev_tail = fixed[i - 1][..., -ov:]
            r = _correlation(prev_tail, fixed[i][..., :ov])
            out[..., start : start + ov] /= np.sqrt(1.0 + 2.0 * r * fade_out * fade_in)
    return out[..., : plan.n_samples].astype(np.float32)


# Windows of sound to music denoised in one UNet batch, on CUDA only. Each window adds about 0.7 GB
# of fp16 activations at 512x512 with CFG (README GPU table: 2.84 GB peak for 2.13 GB of weights):
# 1 GiB is asked free per window. Public img2img figures show ~2x throughput at 4 images on
# A100-class cards and nothing on a T4, so smaller cards keep one window at a time (as the CPU).
WINDOW_BATCH_MAX = 4
WINDOW_ACTIVATION_BYTES = 2**30
WINDOW_BATCH_MIN_CARD_BYTES = 40 * 2**30


def window_batch_size(device: str, windows: int) -> int:
    """Windows of a sound to denoise at once on ``device`` (1 <= result <= windows).

    STUDIO_WINDOW_BATCH=N forces N (1 turns batching off). Otherwise 1 on the CPU and MPS (one
    window already keeps every core busy: batching only delays the first result) and on cards under
    40 GiB; on larger CUDA cards as many as the free memory holds at 1 GiB a window, at most 4.
    Raises StudioError for a forced value that is not a whole number >= 1.
    """
    value = os.environ.get("STUDIO_WINDOW_BATCH")
    if value:
        if not value.strip().isdigit() or int(value) < 1:
            raise StudioError(f"STUDIO_WINDOW_BATCH must be a whole number >= 1, not {value!r}.")
        return max(1, min(int(value), windows))
    if not device.startswith("cuda"):
        return 1
    import torch

    free, total = torch.cuda.mem_get_info(torch.device(device))
    if total < WINDOW_BATCH_MIN_CARD_BYTES:
        return 1
    return max(1, min(WINDOW_BATCH_MAX, windows, free // WINDOW_ACTIVATION_BYTES))


@dataclass
class RenderedWindows:
    """What ``render_windows`` gives back; ``inputs[i]`` and ``outputs[i]`` belong to window i."""

    audio: T.Optional[np.ndarray]  # (1, n) float32, the input's length, not normalised; None if not inverted
    inputs: T.List[Image.Image]  # each window's spectrogram image (params' size)
    outputs: T.List[Image.Image]  # what ``render`` made of each (mono spectrograms when inverted)
    plan: WindowPlan


def render_windows(
    samples: np.ndarray,
    params,
    render: Callable,
    *,
    device: str = "cpu",
    overlap_s: float = OVERLAP_SECONDS,
    to_audio: bool = True,
    on_progress: T.Optional[Callable[[float, str], None]] = None,
    max_value: T.Optional[Callable[[float], float]] = None,
    batch_size: T.Optional[int] = None,
    plan: T.Optional[WindowPlan] = None,
) -> RenderedWindows:
    """Cut mono audio into windows, render each window's spectrogram image, stitch the results.

    Args:
        samples: mono audio at ``params.sample_rate``, (n,) or (1, n), n >= 1.
        params: the SpectrogramParams whose image width sets the window (riffusion: 5.12 s).
        render: with ``batch_size`` None, ``render(index, image) -> image``, called once per window
            in order with the window's spectrogram image; with a ``batch_size``,
            ``render(indices, images) -> images``, called with up to ``batch_size`` consecutive
            windows at once (one model batch). May raise (Cancelled, InputError) to stop the loop.
        device: where the spectrogram transforms run.
        overlap_s: seconds shared by neighbouring windows (crossfaded, see the module doc).
        to_audio: False skips inversion and stitching (previews): ``audio`` is then None and the
            outputs are returned as ``render`` made them.
        on_progress: called with (fraction done, message) before each window (or batch) and before
            stitching.
        max_value: the mel value that maps to full level, as a function of the window's own peak
            (None: the peak itself).
        batch_size: windows per ``render`` call (>= 1), or None for one window per call.
        plan: the request's ``plan_windows`` for these samples (made once by the caller, which
            sizes its batches from it); None plans here with ``overlap_s``.

    When inverting, each output becomes the luminance of what ``render`` painted (a model paints
    RGB) with the input's metadata, and is inverted with ``params``; the stitched audio has the
    input's length. Raises InputError for audio that is not mono or is empty, or a batch size < 1.
    """
    from pipelines.signal import spectrogram  # torch-heavy: only when a pipeline runs, not for plain cutting
    from pipelines.schema import streaming

    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InputError(f"The window batch size must be a whole number >= 1, not {batch_size!r}.")
    mono = np.asarray(samples, dtype=np.float32)
    if mono.ndim == 1:
        mono = mono[None]
    if mono.ndim != 2 or mono.shape[0] != 1:
        raise InputError(f"Audio must be mono, (n,) or (1, n); got shape {np.shape(samples)}")
    chunks, plan = split_windows(mono, params, overlap_s, plan=plan)
    count = len(chunks)
    inputs, outputs, rendered = [], [], []

    def window_image(chunk: np.ndarray) -> Image.Image:
        if max_value is None:
            return spectrogram.audio_to_image(chunk, params, device=device)
        mel = spectrogram.audio_to_mel(chunk, params, device=device)
        return spectrogram.mel_to_image(mel, params, max_value=max_value(float(mel.max())))

    step = 1 if batch_size is None else batch_size
    live = streaming.Progressive(params.sample_rate)  # listen while it is made (no-op without a listener)
    for first in range(0, count, step):
        runs.raise_if_stopped()  # Cancel and the time limit end the run between windows
        indices = list(range(first, min(first + step, count)))
        if on_progress:
            which = f"window {first + 1}" if len(indices) == 1 else f"windows {first + 1}-{indices[-1] + 1}"
            on_progress(first / count, f"{which} of {count}")
        images = [window_image(chunks[i]) for i in indices]
        if batch_size is None:
            made = [render(first, images[0])]
        else:
            made = list(render(indices, images))
            if len(made) != len(images):
                raise ValueError(f"render gave {len(made)} images for {len(images)} windows")
        for image, output in zip(images, made):
            if to_audio:
                output = spectrogram.as_mono_spectrogram(output, image)
                rendered.append(spectrogram.image_to_audio(output, params, device=device)[:1])  # mono in, mono out
            inputs.append(image)
            outputs.append(output)
        if to_audio and live.sink is not None and len(rendered) < count:  # up to the next window's crossfade
            done = replace(plan, n_samples=plan.starts[len(rendered)], starts=plan.starts[: len(rendered)])
            live.update(stitch_windows(rendered, done))
    if not to_audio:
        return RenderedWindows(None, inputs, outputs, plan)
    if on_progress:
        on_progress(1.0, "stitching")
    stitched = stitch_windows(rendered, plan)
    live.update(stitched)
    return RenderedWindows(stitched, inputs, outputs, plan)
