"""One call per tab at full size, timed by stage, beside the stock diffusers pipeline (part 3 of
``benchmarks/fullsize.py``, which runs it).

Each call goes through the Studio on the fullsize profile; the spectrogram codec, text encoder, VAE,
UNet, classifiers, captioner and MusicGen are wrapped so their time is summed per stage, and the
stock ``StableDiffusionImg2ImgPipeline`` (text-to-image for music-to-image) on the same components,
steps and size is timed in the same run, so our overhead is a ratio.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

GB = 1e9
# the manager entries each tab puts on the device (the classifiers run on the CPU: not counted)
TAB_ENTRIES = {"sound_to_music": ("mask_model",), "music_to_image": ("sd15",), "style": ("riffusion",),
               "image_to_music": ("blip", "musicgen"), "playlist": ("amuse",)}


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


class Stages:
    """Seconds and calls per stage, by wrapping the callables that do each stage's work; ``cpu_seconds``:
    this process's CPU seconds in each stage (every thread's; steadier than wall time on a busy machine)."""

    def __init__(self, synchronize):
        self.synchronize = synchronize
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter = Counter()
        self._undo: list = []

    def wrap(self, owner, name: str, stage: str) -> None:
        if owner is None or not hasattr(owner, name):
            return
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            self.synchronize()
            start, start_cpu = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.synchronize()
                self.seconds[stage] += time.perf_counter() - start
                self.cpu_seconds[stage] += time.process_time() - start_cpu
                self.calls[stage] += 1

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            if isinstance(owner, type(sys)):  # a module: put the function back
                setattr(owner, name, original)
            else:  # an instance: drop the wrapper so the class's method shows again
                try:
                    delattr(owner, name)
                except AttributeError:
                    setattr(owner, name, original)
        self._undo.clear()


class PeakMemory:
    """Peak resident set size of this process while inside (sampled every 20 ms), and on CUDA the
    peak allocated device memory."""

    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        self.peak_rss = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
        return self

    @staticmethod
    def _rss() -> int:
        """Resident bytes now, from /proc (Linux; no psutil needed), else the process's peak so far."""
        try:
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak_rss = max(self.peak_rss, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_device = None
        if self.device.startswith("cuda"):
            import torch

            self.peak_device = torch.cuda.max_memory_allocated()


def synthetic_sound(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """An everyday-like sound: a gliding tone with knocks over noise, mono float32 (1, n)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * t) * t)
    knocks = (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(t.size) * 0.5
    return (tone + knocks + 0.05 * rng.standard_normal(t.size)).astype(np.float32)[None]


def write_wav(samples: np.ndarray, rate: int, folder: Path, name: str) -> str:
    import soundfile as sf

    path = folder / name
    sf.write(path, samples[0], rate)
    return str(path)


def wrap_sd(stages: Stages, pipe) -> None:
    stages.wrap(pipe.text_encoder, "forward", "text encoder")
    stages.wrap(pipe.vae, "encode", "VAE encode")
    stages.wrap(pipe.unet, "forward", "UNet")
    stages.wrap(pipe.vae, "decode", "VAE decode")


def stock_sd(pipe, image, prompt: str, steps: int, strength: float, guidance: float, device: str,
             size: tuple[int, int]) -> float:
    """Seconds of the stock diffusers pipeline on the same components (img2img, or text-to-image
    when ``image`` is None)."""
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    generator = torch.Generator(device="cpu").manual_seed(0)
    start = time.perf_counter()
    if image is None:
        stock = StableDiffusionPipeline(**pipe.components)
        stock.set_progress_bar_config(disable=True)
        stock(prompt, num_inference_steps=steps, guidance_scale=guidance, width=size[0], height=size[1],
              generator=generator)
    else:
        stock = StableDiffusionImg2ImgPipeline(**pipe.components)
        stock.set_progress_bar_config(disable=True)
        stock(prompt, image=image.convert("RGB"), strength=strength, num_inference_steps=steps,
              guidance_scale=guidance, generator=generator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run_tab(studio, tab: str, steps: int, folder: Path, music_seconds: float = 2.0) -> dict:
    """One call of ``tab`` through the Studio; returns its stage times and calls, total, peak memory,
    stock time and the result's parameters. ``music_seconds``: what image to music generates."""
    import torch

    from pipelines.signal import spectrogram
    from pipelines.schema.settings import (ImageToMusicSettings, MusicToImageSettings, PlaylistToMusicSettings,
                                    StyleInterpolationSettings)

    device = studio.device
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    manager = studio.manager
    result: dict = {"tab": tab}

    start = time.perf_counter()
    for entry in TAB_ENTRIES[tab]:
        manager.run(entry, lambda model: None)  # load and place first: the call below is timed warm
    if tab == "music_to_image":
        for role in ("genre_classifier", "emotion_classifier"):
            manager.get_cpu(role)
    result["load_s"] = time.perf_counter() - start

    stages = Stages(sync)
    stages.wrap(spectrogram, "audio_to_image", "spectrogram codec")
    stages.wrap(spectrogram, "image_to_audio", "spectrogram codec")
    rate = 44100
    sound = write_wav(synthetic_sound(5.11, rate), rate, folder, "everyday.wav")
    prompt, stock_args = "instrumental , saxophone , flute", None

    if tab == "sound_to_music":
        from pipelines.schema.settings import SoundToMusicSettings

        pipe = manager.get_cpu("mask_model")
        wrap_sd(stages, pipe)
        settings = SoundToMusicSettings(prompt=prompt, steps=steps, strength=1.0)
        call = lambda: studio.sound_to_music(sound, settings)  # noqa: E731
        stock_args = (pipe, "spectrogram", prompt, steps, 1.0, settings.guidance, (512, 512))
    elif tab == "style":
        pipe = manager.get_cpu("riffusion")
        wrap_sd(stages, pipe)
        names = studio.style_names()[:2]
        chosen = StyleInterpolationSettings(steps=steps, strength=1.0)
        call = lambda: studio.style_interpolation(sound, names, settings=chosen)  # noqa: E731
        stock_args = (pipe, "spectrogram", "*", steps, 1.0, 5.0, (512, 512))
    elif tab == "music_to_image":
        pipe = manager.get_cpu("sd15")
        wrap_sd(stages, pipe)
        for role in ("genre_classifier", "emotion_classifier"):
            stages.wrap(manager.get_cpu(role).model, "classify", "classifiers")
        music = write_wav(synthetic_sound(10.0, 22050, seed=1), 22050, folder, "music.wav")
        chosen = MusicToImageSettings(steps=steps, width=512, height=512, lora_scale=1.0)
        call = lambda: studio.music_to_image(music, settings=chosen)  # noqa: E731
        stock_args = (pipe, None, "a calm painting", steps, 1.0, 7.5, (512, 512))
    elif tab == "image_to_music":
        from PIL import Image

        blip, musicgen = manager.get_cpu("blip"), manager.get_cpu("musicgen")
        stages.wrap(blip.model, "generate", "caption")
        stages.wrap(musicgen.model, "generate", "MusicGen")
        picture = Image.fromarray((np.random.default_rng(0).random((384, 384, 3)) * 255).astype(np.uint8))
        seconds = music_seconds
        result["music_seconds"] = seconds
        call = lambda: studio.image_to_music(picture, settings=ImageToMusicSettings(seconds=seconds))  # noqa: E731
    elif tab == "playlist":
        amuse = manager.get_cpu("amuse")
        stages.wrap(amuse.unet, "forward", "UNet")
        stages.wrap(amuse.vae, "encode", "playlist VAE")
        tracks = [write_wav(synthetic_sound(8.0, 22050, seed=s), 22050, folder, f"track{s}.wav") for s in (2, 3)]
        call = lambda: studio.playlist_to_music(tracks, PlaylistToMusicSettings(steps=steps))  # noqa: E731
    else:
        raise ValueError(f"unknown tab {tab}")

    if device != "cpu":  # a GPU's first call pays for kernel selection and allocator growth: warm up once
        call()
        stages.seconds.clear()
        stages.calls.clear()
    with PeakMemory(device) as memory:
        sync()
        start = time.perf_counter()
        made = call()
        sync()
        result["total_s"] = time.perf_counter() - start
    result["parameters"] = dict(getattr(made, "parameters", {}) or {})  # what the call recorded (steps, LoRA, ...)
    stages.restore()
    result["stages"] = {stage: (stages.seconds[stage], stages.calls[stage]) for stage in stages.seconds}
    result["peak_rss"] = memory.peak_rss
    result["peak_device"] = memory.peak_device
    if stock_args is not None:
        pipe, image, text, n, strength, guidance, size = stock_args
        if image == "spectrogram":
            from pipelines.signal import spectrogram as spec

            samples = synthetic_sound(5.11, rate)
            image = spec.audio_to_image(samples[:, : 512 * 441], spec.RIFFUSION)
        if device != "cpu":
            stock_sd(pipe, image, text, n, strength, guidance, device, size)  # warm-up, as ours
        result["stock_s"] = stock_sd(pipe, image, text, n, strength, guidance, device, size)
    return result


def stage_text(result: dict) -> str:
    parts = []
    for stage, (seconds, calls) in result["stages"].items():
        if stage == "UNet":
            parts.append(f"UNet {seconds / max(calls, 1):.2f} s/call x{calls}")
        elif stage == "MusicGen":
            parts.append(f"MusicGen {seconds / result['music_seconds']:.2f} s per generated s")
        else:
            parts.append(f"{stage} {seconds:.2f} s")
    return "; ".join(parts)


def tabs_table(results: list[dict]) -> str:
    rows = []
    for r in results:
        ratio = f"{r['total_s'] / r['stock_s']:.2f}" if r.get("stock_s") else "-"
        codec = r["stages"].get("spectrogram codec", (0.0, 0))[0]
        classify = r["stages"].get("classifiers", (0.0, 0))[0]
        core = f"{(r['total_s'] - codec - classify) / r['stock_s']:.2f}" if r.get("stock_s") else "-"
        device_peak = f"{r['peak_device'] / GB:.2f}" if r.get("peak_device") else "-"
        rows.append([r["tab"], f"{r['load_s']:.1f}", f"{r['total_s']:.1f}", stage_text(r),
                     f"{r['stock_s']:.1f}" if r.get("stock_s") else "-", ratio, core,
                     f"{r['peak_rss'] / GB:.2f}", device_peak])
    return table(["tab", "load s", "call s", "stages", "stock s", "ours/stock", "ours-codec/stock",
                  "peak RSS GB", "peak GPU GB"], rows)
