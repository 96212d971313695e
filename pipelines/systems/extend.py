"""Extend a track: any audio continued by N seconds after its end, or led into for N seconds before its start.

Two engines, each continuing from the track's own sound:

* **Riffusion** (the text-to-music continuation of ``text_to_music``): the track's last 5.12 s
  become a spectrogram image; each new window is differential img2img of the previous one rolled
  so its last 1.28 s (``CONTINUATION_TAIL_SECONDS``) come first and are kept, so the first new
  window starts with the track's own end and goes on under the prompt; each later window continues
  the one before (seed + k for window k). Before the start, the same in mirror image: the window
  keeps the track's first 1.28 s at its end and paints what leads into them.
* **MusicGen** (its audio-prompted continuation, as the MusicGen Space extends a clip): the last
  ``image_to_music.OVERLAP_SECONDS`` (12 s) of the track, or all of a shorter one, prompt the
  model together with the text; it re-decodes the prompt and writes what follows, up to 30 s per
  generation, then prompts itself with its own last 12 s. MusicGen only writes forwards: before the
  start it continues the time-reversed track and the new part is reversed back (a lead-in that
  meets the track's first sound, though as music it was learned backwards).

Joining: the track is kept sample for sample up to the seam (at its own rate and channels), the new
part (resampled to the track's rate, mono spread over the channels) is matched to the track's level
over the seconds both engines re-render (RMS, limited so nothing clips), and the two are crossfaded
over the last ``fade`` seconds before the seam (Riffusion 0.2 s as its audio-to-audio windows,
MusicGen 0.05 s as its own windows) with ``windows``' correlation-aware law. So an input of n
seconds extended by s gives exactly n + s seconds, whose first n - fade seconds (after) or last
n - fade seconds (before) are the input. The same settings and seed give the same audio.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError, concerning_parameter

from pipelines.schema import limits
from pipelines.schema.results import Result
from pipelines.schema.settings import (CONTINUATION_TAIL_SECONDS, ImageToMusicSettings, TextToMusicSettings,
                                       check_img2img_steps, riffusion_gpu_seconds,
                                       riffusion_windows)

ENGINES = ("riffusion", "musicgen")
SIDES = ("after", "before")
ENGINE_ROLES = {"riffusion": "riffusion", "musicgen": "musicgen"}  # the model registry role each engine runs on
RIFFUSION_FADE_SECONDS = 0.2  # windows.OVERLAP_SECONDS: riffusion's audio-to-audio crossfade
MIN_INPUT_SECONDS = CONTINUATION_TAIL_SECONDS  # Riffusion keeps the track's last (first) 1.28 s
MUSICGEN_LEVEL_SECONDS = 1.0  # s of MusicGen's re-decoded prompt kept, to match the new part's level to the track


@dataclass(frozen=True)
class ExtendSettings(limits.Settings):
    """What a caller controls when extending a track. ``guidance`` None is the engine's own default
    (Riffusion's 7, MusicGen's 3); ``steps`` and ``continuation_strength`` are Riffusion's only,
    ``negative_prompt`` too (MusicGen has none)."""

    prompt: str = "the same music, continued"
    seconds: float = 8.0  # added, at most limits.EXTEND_SECONDS.high
    engine: str = "riffusion"
    side: str = "after"
    seed: int = 0
    negative_prompt: str = ""
    steps: int = 50
    guidance: float | None = None
    continuation_strength: float = TextToMusicSettings.continuation_strength

    TEXTS = {"prompt": (True, "describe how the music goes on, for example 'jazzy saxophone solo'"),
             "negative_prompt": (False, "")}
    LABELS = {"seconds": "Seconds to add", "side": "Where"}
    CHOICES = {"engine": ENGINES, "side": SIDES}
    RANGES = {"seconds": limits.EXTEND_SECONDS, "seed": limits.SEED, "steps": limits.STEPS,
              "continuation_strength": limits.STRENGTH}

    def check(self) -> None:
        if self.guidance is not None:
            with concerning_parameter("guidance"):
                limits.GUIDANCE.check(self.label("guidance"), self.guidance)
        if self.engine == "riffusion":
            check_img2img_steps(self.steps, self.continuation_strength, "continuation strength")

    def engine_guidance(self) -> float:
        if self.guidance is not None:
            return float(self.guidance)
        defaults = TextToMusicSettings if self.engine == "riffusion" else ImageToMusicSettings
        return float(defaults.default("guidance"))

    def riffusion_windows(self) -> int:
        """New 5.12 s windows, cut as text to music cuts the tail and the new seconds: 3.84 s new each."""
        return riffusion_windows(CONTINUATION_TAIL_SECONDS + float(self.seconds), CONTINUATION_TAIL_SECONDS)

    def text_to_music(self) -> TextToMusicSettings:
        """The Riffusion continuation's settings (``text_to_music.continue_window`` reads them)."""
        return TextToMusicSettings(prompt=self.prompt, negative_prompt=self.negative_prompt, steps=self.steps,
                                   guidance=self.engine_guidance(), seed=self.seed,
                                   continuation_strength=self.continuation_strength)

    def musicgen(self) -> ImageToMusicSettings:
        """MusicGen's sampling (its demo's top-k 250, temperature 1) with this guidance and seed."""
        return ImageToMusicSettings(seconds=float(self.seconds), guidance=self.engine_guidance(), seed=self.seed)

    def gpu_seconds(self) -> int:
        """ZeroGPU quota: Riffusion's per window and step, MusicGen's per second (the settings' own)."""
        if self.engine == "riffusion":
            steps = float(self.steps) * float(self.continuation_strength)
            return riffusion_gpu_seconds(self.riffusion_windows(), steps)
        return self.musicgen().gpu_seconds()


@dataclass
class ExtendResult(Result):
    audio: np.ndarray  # (channels, input + added samples) float32 at the input's own rate
    sample_rate: int
    spectrogram: Any = None  # Riffusion: the new windows side by side, in time order; MusicGen: None

    def image_outputs(self) -> dict[str, Any]:
        return {} if self.spectrogram is None else {"spectrogram": self.spectrogram}


# -- the track ----------------------------------------------------------------------------------------------


def _own_rate(source: Any) -> int | None:
    """The source's sample rate without decoding it (None when it cannot be read cheaply)."""
    from pipelines.signal import audio as audio_io

    if isinstance(source, audio_io.Audio):
        return source.sample_rate
    if isinstance(source, (tuple, list)) and len(source) == 2:
        return audio_io.clip.as_int(source[0])
    if not isinstance(source, (str, os.PathLike)):
        return None
    from pipelines.signal import sandbox

    try:  # headers are read in a decode worker, as every upload's (``pipelines.signal.sandbox``)
        return sandbox.run(_header_rate, os.fspath(source), name=f"The audio file '{Path(source).name}'")
    except InputError:
        return None  # load_audio then says what is wrong with the file


def _header_rate(path: str) -> int | None:
    """The sample rate in a file's header (None for formats libsndfile cannot read: the engine's rate)."""
    import soundfile

    try:
        return int(soundfile.info(path).samplerate)
    except Exception:  # noqa: BLE001
        return None


def load_track(source: Any, fallback_rate: int):
    """The track at its own sample rate and channels (``fallback_rate`` when the rate cannot be read
    from the file's header), with the app's input checks; at least ``MIN_INPUT_SECONDS`` long."""
    from pipelines.signal import audio as audio_io

    rate = _own_rate(source) or fallback_rate
    if not limits.MIN_SAMPLE_RATE <= rate <= limits.MAX_SAMPLE_RATE:
        rate = fallback_rate
    track = audio_io.load_audio(source, rate, mono=False)
    if track.duration < MIN_INPUT_SECONDS:
        raise InputError(f"The track must be at least {MIN_INPUT_SECONDS:g} s long to be continued (the engines "
                         f"start from its last {MIN_INPUT_SECONDS:g} s); it is {track.duration:.2f} s.")
    return track


# -- joining ------------------------------------------------------------------------------------------------


def join(original: np.ndarray, continuation: np.ndarray, overlap: int, fade: int) -> np.ndarray:
    """``original`` (channels, n) followed by ``continuation`` (1 or channels, m), whose first ``overlap``
    samples re-render the original's last ``overlap``: the original is kept up to ``n - fade``, the
    continuation's level is matched to the original's over the overlap (RMS ratio, lowered so the new
    part peaks at most at 0.99 or at the original's peak, whichever is higher), and the ``fade`` samples
    before the seam are crossfaded (cos/sin, divided by sqrt(1 + 2 r cos sin) for correlation r, as
    ``windows.stitch_windows``). Returns (channels, n + m - overlap) float32.
    Raises ValueError unless 0 < fade <= overlap <= m and fade <= n."""
    from pipelines.signal.windows import _correlation, crossfade_curves

    channels, n = original.shape
    m = continuation.shape[-1]
    if not 0 < fade <= overlap <= m or fade > n:
        raise ValueError(f"join needs 0 < fade ({fade}) <= overlap ({overlap}) <= continuation ({m}), fade <= {n}")
    new = np.broadcast_to(continuation, (channels, m)).astype(np.float64)
    take = min(overlap, n)
    reference = original[:, n - take:].mean(axis=0)
    rendered = new[:, overlap - take:overlap].mean(axis=0)
    power = float(np.sqrt(np.mean(rendered**2)))
    gain = float(np.sqrt(np.mean(reference**2))) / power if power > 1e-9 else 1.0
    peak = float(np.abs(new).max()) * gain
    ceiling = max(0.99, float(np.abs(original).max(initial=0.0)))
    if peak > ceiling:
        gain *= ceiling / peak
    new *= gain
    fade_out, fade_in = crossfade_curves(fade)
    a, b = original[:, n - fade:], new[:, overlap - fade:overlap]
    r = _correlation(a.mean(axis=0), b.mean(axis=0))
    seam = (a * fade_out + b * fade_in) / np.sqrt(1.0 + 2.0 * r * fade_out * fade_in)
    return np.concatenate([original[:, : n - fade], seam, new[:, overlap:]], axis=1).astype(np.float32)


# -- Riffusion ----------------------------------------------------------------------------------------------


def riffusion_continuation(pipe, mono: np.ndarray, settings: ExtendSettings, *, device: str = "cpu",
                           on_progress: Callable[[float, str], None] | None = None,
                           should_stop: Callable[[], bool] | None = None):
    """(continuation, images): (1, tail + seconds * 44100) float32 at 44.1 kHz and the new windows'
    spectrograms in time order, from the (1, n) 44.1 kHz mono track. The continuation is in the
    working orientation: its first tail samples re-render the track's last 1.28 s (after) or, for
    ``side="before"``, it is time-reversed and its first tail samples re-render the track's first 1.28 s."""
    import torch

    from pipelines.signal import spectrogram, windows

    from pipelines.systems import text_to_music

    params = text_to_music.PARAMS
    before = settings.side == "before"
    width = params.window_samples
    edge = mono[:, :width] if before else mono[:, -width:]
    pad = [(0, 0), (0, width - edge.shape[-1]) if before else (width - edge.shape[-1], 0)]
    previous = spectrogram.audio_to_image(np.pad(edge, pad), params, device=device)
    tail = int(round(CONTINUATION_TAIL_SECONDS * params.sample_rate))
    plan = windows.plan_windows(tail + int(round(float(settings.seconds) * params.sample_rate)), params,
                                overlap_s=CONTINUATION_TAIL_SECONDS, channels=1)
    count, t2m = len(plan.starts), settings.text_to_music()
    images, rendered = [], []
    with torch.no_grad():
        for index in range(count):
            if on_progress:
                on_progress(index / count, f"window {index + 1} of {count}")
            previous = text_to_music.continue_window(pipe, previous, t2m, settings.seed + index, should_stop,
                                                     before=before)
            images.append(previous)
            sound = spectrogram.image_to_audio(previous, params, device=device)[:1]
            rendered.append(sound[:, ::-1] if before else sound)  # the working orientation: seam first
    continuation = windows.stitch_windows(rendered, plan)
    return continuation, spectrogram.side_by_side(images[::-1] if before else images)


# -- MusicGen -----------------------------------------------------------------------------------------------


def musicgen_continuation(model, processor, context: np.ndarray, settings: ExtendSettings, *,
                          on_progress: Callable[[float, str], None] | None = None,
                          should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """(1, level + seconds * rate) float32 at MusicGen's rate (32 kHz for musicgen-small): what follows
    the (1, n) mono ``context`` (at least ``MUSICGEN_LEVEL_SECONDS`` long) at that rate, its first
    ``MUSICGEN_LEVEL_SECONDS`` re-decoding the context's last.
    Each generation is prompted with the last ``OVERLAP_SECONDS`` so far (whole codec frames) and the
    text, and makes at most ``WINDOW_SECONDS`` in all; seams are crossfaded as ``image_to_music`` does."""
    import torch
    from transformers import StoppingCriteriaList

    from pipelines.systems import image_to_music as i2m

    sampling_settings = settings.musicgen()
    codec = model.config.audio_encoder
    rate, frame_rate = int(codec.sampling_rate), int(codec.frame_rate)
    hop = rate // frame_rate
    total = math.ceil(float(settings.seconds) * frame_rate)
    window_frames, overlap_frames = round(i2m.WINDOW_SECONDS * frame_rate), round(i2m.OVERLAP_SECONDS * frame_rate)
    fade, level = round(i2m.SEAM_SECONDS * rate), round(MUSICGEN_LEVEL_SECONDS * rate)
    delay = model.decoder.num_codebooks - 1
    watch = i2m._FrameWatch(should_stop, on_progress, total, frame_rate, delay)
    guidance = sampling_settings.guidance
    sampling = dict(do_sample=True, guidance_scale=float(guidance) if guidance > 1 else None,
                    temperature=float(sampling_settings.temperature), top_k=int(sampling_settings.top_k),
                    top_p=float(sampling_settings.top_p) or 1.0, stopping_criteria=StoppingCriteriaList([watch]))
    context = np.asarray(context, dtype=np.float32)[0]

    def generate(frames: int, prompt: np.ndarray) -> np.ndarray:
        inputs = processor(text=[settings.prompt], audio=[prompt], sampling_rate=rate, padding=True,
                           return_tensors="pt").to(model.device)
        return i2m.generate_audio(model, inputs, frames + delay, sampling, watch)

    device = model.device
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []), torch.inference_mode():
        torch.manual_seed(int(settings.seed))
        made, continuation = 0, None
        while made < total:
            watch.window(made)
            track = context if continuation is None else np.concatenate([context[:-level], continuation])
            prompt_frames = min(overlap_frames, track.shape[-1] // hop)
            prompt_samples = prompt_frames * hop
            new = min(total - made, window_frames - prompt_frames)
            continued = generate(new, track[-prompt_samples:])
            if continuation is None:
                continuation = continued[prompt_samples - level:]
            else:
                continuation = i2m._join(continuation, continued, prompt_samples, fade)
            made += new
    wanted = level + round(float(settings.seconds) * rate)
    continuation = np.pad(continuation[:wanted], (0, max(0, wanted - continuation.shape[-1])))
    return continuation[None].astype(np.float32)


# -- the whole path -----------------------------------------------------------------------------------------


def extend_music(studio, audio_source: Any, settings: ExtendSettings | None = None, *,
                 on_progress: Callable[[float, str], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> ExtendResult:
    """The track with ``settings.seconds`` more after its end or before its start (module doc).

    Args:
        studio: the ``pipelines.studio.Studio`` whose device manager holds the engine's model.
        audio_source: a path, gradio tuple or ``Audio``; any rate and channels, 1.28 to 60 s.
        settings: ``ExtendSettings`` (None: its defaults), checked before the audio is decoded.

    Returns (channels, n + seconds * rate) float32 at the track's own rate and channels; the input's
    samples are unchanged outside the crossfade. Raises InputError for bad settings or audio.
    """
    from pipelines.signal import audio as audio_io
    from pipelines.models.loaders import import_model_libraries

    settings = (settings or ExtendSettings()).validate()
    import_model_libraries()
    role = ENGINE_ROLES[settings.engine]
    before = settings.side == "before"
    spectrogram_image = None
    if settings.engine == "riffusion":
        from pipelines.systems.text_to_music import PARAMS

        engine_rate, fade_seconds = PARAMS.sample_rate, RIFFUSION_FADE_SECONDS
        overlap_seconds = CONTINUATION_TAIL_SECONDS
        track = load_track(audio_source, engine_rate)
        mono = audio_io.resample(audio_io.Audio(track.samples.mean(axis=0), track.sample_rate), engine_rate).samples
        continuation, spectrogram_image = studio.manager.run(role, lambda pipe: riffusion_continuation(
            pipe, mono, settings, device=studio.device, on_progress=on_progress, should_stop=should_stop))
    else:
        from pipelines.systems.image_to_music import SEAM_SECONDS

        engine_rate, fade_seconds = 32000, SEAM_SECONDS  # musicgen-small's EnCodec rate (checked below)
        track = load_track(audio_source, engine_rate)

        def run(bundle):
            rate = int(bundle.model.config.audio_encoder.sampling_rate)
            mono = audio_io.resample(audio_io.Audio(track.samples.mean(axis=0), track.sample_rate), rate).samples
            context = mono[:, ::-1] if before else mono
            made = musicgen_continuation(bundle.model, bundle.processor, context, settings, on_progress=on_progress,
                                         should_stop=should_stop)
            return made, rate

        continuation, engine_rate = studio.manager.run(role, run)
        overlap_seconds = MUSICGEN_LEVEL_SECONDS
    rate = track.sample_rate
    new = audio_io.resample(audio_io.Audio(continuation, engine_rate), rate).samples
    overlap, fade = int(round(overlap_seconds * rate)), int(round(fade_seconds * rate))
    wanted = overlap + int(round(float(settings.seconds) * rate))
    new = np.pad(new[:, :wanted], [(0, 0), (0, max(0, wanted - new.shape[-1]))])
    original = track.samples[:, ::-1] if before else track.samples
    joined = join(original, new, overlap, fade)
    audio = np.ascontiguousarray(joined[:, ::-1] if before else joined)
    parameters = {"pipeline": "extend_music", **settings.as_dict(), "guidance": settings.engine_guidance(),
                  "input_seconds": track.duration, "added_seconds": float(settings.seconds),
                  "crossfade_seconds": fade / rate, "sample_rate": rate, "model": role}
    if settings.engine == "riffusion":
        parameters.update(windows=settings.riffusion_windows(), tail_seconds=CONTINUATION_TAIL_SECONDS)
    return ExtendResult(audio=audio, sample_rate=rate, spectrogram=spectrogram_image, parameters=parameters)
