"""Full-size benchmark: what every model weighs, what each tab costs, and what swaps on which GPU.

    python benchmarks/fullsize.py                          # everything, on the CPU (tabs take minutes)
    python benchmarks/fullsize.py --only roles,manager     # the cheap parts: no model is built or loaded
    python benchmarks/fullsize.py --only tabs --tabs sound_to_music
    python benchmarks/fullsize.py --device cuda            # the same on a GPU (builds the cache there)

Three tables:
1. roles: parameters of every role's full-size model (counted on the meta device from the real
   configs, ``pipelines/fullsize.py``), bytes in fp32 and fp16, and the real repository's weight
   files (``fullsize.REAL_SIZES``, from ``../shared/reference/hub``'s manifests).
2. manager: the DeviceManager fed fake models of the real fp16 (GPU) or fp32 (CPU/MPS) sizes, with
   the Studio's budget of 75% of the card, through the tab sequence sound-to-music, music-to-image,
   style, image-to-music, playlist, sound-to-music, music-to-image: offloads and reloads per card.
3. tabs: one call per tab at full size (``--profile fullsize``: random weights, real shapes) with 2
   denoising steps at strength 1.0 (UNet calls are CFG batches of 2; the SD repos' PNDM scheduler
   makes 3 calls for 2 steps), time per stage (text
   encoder, VAE encode, UNet per step, VAE decode, spectrogram codec, classifiers, caption, MusicGen
   per generated second), peak memory, and the stock diffusers pipeline on the same components,
   steps and size timed in the same run (img2img for the spectrogram tabs, text-to-image for
   music-to-image), so our overhead is a ratio. On a GPU each call (ours and stock) runs once
   untimed first. The first run builds the fullsize cache (~16 GB; only the tabs' families).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

TAB_SEQUENCE = ("sound_to_music", "music_to_image", "style", "image_to_music", "playlist",
                "sound_to_music", "music_to_image")
# the manager entries each tab puts on the device (the classifiers run on the CPU: not counted)
TAB_ENTRIES = {"sound_to_music": ("mask_model",), "music_to_image": ("sd15",), "style": ("riffusion",),
               "image_to_music": ("blip", "musicgen"), "playlist": ("amuse",)}
# fullsize families each tab needs built
TAB_FAMILIES = {"sound_to_music": ("riffusion",), "music_to_image": ("sd15", "lora", "keras_genre", "keras_emotion"),
                "style": ("riffusion", "music_styles"), "image_to_music": ("blip", "musicgen"),
                "playlist": ("amuse_unet", "amuse_vae")}
CARDS_GB = (16, 24, 40, 80)  # T4 / A10G, L4-class 24 GB, A100 40 GB, A100/H100 80 GB
GB = 1e9


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


# -- 1. roles ------------------------------------------------------------------------------------------
def keras_parameters(module_name: str) -> int:
    import importlib

    return importlib.import_module(f"classifiers.{module_name}").build_model().count_params()


def lora_parameters() -> int:
    """128 rank-4 pairs over SD 1.5's attention projections, counted from the UNet on the meta device."""
    import torch
    from diffusers.models.attention_processor import Attention

    from pipelines import fullsize

    with torch.device("meta"):
        unet = fullsize.sd_unet()
    total = 0
    for module in unet.modules():
        if isinstance(module, Attention):
            for linear in (module.to_q, module.to_k, module.to_v, module.to_out[0]):
                total += 4 * (linear.in_features + linear.out_features)
    return total


def role_parameters() -> dict[str, int]:
    """Parameters (and buffers) of each role's model, as the loaders hold them."""
    from pipelines import fullsize

    counts = {}
    for role, family in (("riffusion", "riffusion"), ("mask_model", "riffusion"), ("sd15", "sd15"),
                         ("blip", "blip"), ("musicgen", "musicgen"), ("clap", "clap"),
                         ("sentence_embedder", "sentence"), ("amuse_unet", "amuse_unet"),
                         ("amuse_vae", "amuse_vae"), ("music_styles", "music_styles")):
        counts[role] = sum(fullsize.parameter_counts(family).values())
    counts["music_styles"] *= 3  # the fullsize library holds three styles
    counts["m2i_lora"] = lora_parameters()
    counts["genre_classifier"] = keras_parameters("genre")
    counts["emotion_classifier"] = keras_parameters("emotion")
    return counts


def roles_table(counts: dict[str, int]) -> str:
    from pipelines import fullsize

    rows = []
    for role, params in counts.items():
        real = sum(fullsize.REAL_SIZES.get(role, {}).values())
        ours = 4 * params * (3 if role.endswith("_classifier") else 1)  # .h5 files hold Adam's 2 slots too
        if role == "mask_model":
            real_text, ratio = f"{real / GB:.3f} (unet only)", "-"
        elif real:
            real_text, ratio = f"{real / GB:.3f}", f"{ours / real:.3f}"
        else:
            real_text, ratio = "not published", "-"
        rows.append([role, f"{params / 1e6:.1f}", f"{4 * params / GB:.3f}", f"{2 * params / GB:.3f}", real_text, ratio])
    return table(["role", "params (M)", "fp32 GB", "fp16 GB", "real files GB", "ours/real"], rows)


# -- 2. the DeviceManager with the real sizes ------------------------------------------------------------
class SizedModel:
    """A stand-in the manager can load, move and measure: only its byte size is real."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes

    def to(self, *args, **kwargs):
        return self


def entry_bytes(counts: dict[str, int], bytes_per_param: int) -> dict[str, int]:
    sizes = {entry: counts[entry] for entry in ("mask_model", "sd15", "riffusion", "blip", "musicgen")}
    sizes["amuse"] = counts["amuse_unet"] + counts["amuse_vae"]
    return {entry: n * bytes_per_param for entry, n in sizes.items()}


def replay_tabs(sizes: dict[str, int], budget: int) -> dict[str, object]:
    from pipelines.device import DeviceManager

    manager = DeviceManager(device="accelerator", budget_bytes=budget, eviction="offload")
    for entry, nbytes in sizes.items():
        manager.register(entry, lambda nbytes=nbytes: SizedModel(nbytes))
    peak = 0
    for tab in TAB_SEQUENCE:
        for entry in TAB_ENTRIES[tab]:
            manager.run(entry, lambda model: None)
            peak = max(peak, manager.resident_bytes())
    events = Counter(kind for kind, _ in manager.events)
    first_placements = len({name for kind, name in manager.events if kind == "to_device"})
    return {"offloads": events["offload"], "reloads": events["to_device"] - first_placements, "peak": peak,
            "evicted": sorted({name for kind, name in manager.events if kind == "offload"})}


def manager_table(counts: dict[str, int]) -> str:
    rows = []
    for dtype, per_param in (("fp16", 2), ("fp32", 4)):
        sizes = entry_bytes(counts, per_param)
        for card in CARDS_GB:
            budget = int(0.75 * card * 2**30)
            result = replay_tabs(sizes, budget)
            rows.append([f"{card} GB", dtype, f"{budget / 2**30:.1f}", f"{sum(sizes.values()) / GB:.2f}",
                         f"{result['peak'] / GB:.2f}", result["offloads"], result["reloads"],
                         ", ".join(result["evicted"]) or "-"])
    return table(["card", "weights", "budget GiB", "all tabs GB", "peak resident GB", "offloads", "reloads",
                  "models swapped out"], rows)


# -- 3. one call per tab at full size --------------------------------------------------------------------
class Stages:
    """Seconds and calls per stage, by wrapping the callables that do each stage's work."""

    def __init__(self, synchronize):
        self.synchronize = synchronize
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter = Counter()
        self._undo: list = []

    def wrap(self, owner, name: str, stage: str) -> None:
        if owner is None or not hasattr(owner, name):
            return
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            self.synchronize()
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.synchronize()
                self.seconds[stage] += time.perf_counter() - start
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


def run_tab(studio, tab: str, steps: int, folder: Path) -> dict:
    """One call of ``tab`` through the Studio; returns its stage times, total, peak memory and stock time."""
    import torch

    from pipelines import spectrogram
    from pipelines.settings import (ImageToMusicSettings, MusicToImageSettings, PlaylistToMusicSettings,
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
        from pipelines.settings import SoundToMusicSettings

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
        seconds = 2.0
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
        call()
        sync()
        result["total_s"] = time.perf_counter() - start
    stages.restore()
    result["stages"] = {stage: (stages.seconds[stage], stages.calls[stage]) for stage in stages.seconds}
    result["peak_rss"] = memory.peak_rss
    result["peak_device"] = memory.peak_device
    if stock_args is not None:
        pipe, image, text, n, strength, guidance, size = stock_args
        if image == "spectrogram":
            from pipelines import spectrogram as spec

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


def build_cache(tabs: list[str], device: str) -> float:
    """Build the fullsize families the tabs need (on the GPU's RNG when benchmarking there)."""
    from pipelines import fullsize

    if device.startswith("cuda"):
        os.environ.setdefault("STUDIO_FULLSIZE_DEVICE", device)  # random init on the GPU: seconds, not minutes
    families = sorted({f for tab in tabs for f in TAB_FAMILIES[tab]})
    start = time.perf_counter()
    built = fullsize.build_all(families, log=log)
    seconds = time.perf_counter() - start
    if built:
        log(f"fullsize cache: built {', '.join(built)} in {seconds:.0f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (tabs run there; the tables are the same)")
    parser.add_argument("--only", default="roles,manager,tabs", help="comma-separated parts: roles, manager, tabs")
    parser.add_argument("--tabs", default=",".join(TAB_ENTRIES), help="comma-separated tabs to run")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    tabs = [t.strip() for t in args.tabs.split(",") if t.strip()]
    if unknown := (parts - {"roles", "manager", "tabs"}) | (set(tabs) - set(TAB_ENTRIES)):
        parser.error(f"unknown part or tab: {', '.join(sorted(unknown))}")

    if parts & {"roles", "manager"}:
        log("counting parameters from the real configs (meta device) ...")
        counts = role_parameters()
        if "roles" in parts:
            print("\n## Roles: parameters, bytes, and the real repositories' weight files\n")
            print(roles_table(counts))
        if "manager" in parts:
            print("\n## DeviceManager with the real sizes (budget = 75% of the card), tab sequence:")
            print("   " + " -> ".join(TAB_SEQUENCE) + "\n")
            print(manager_table(counts))

    if "tabs" in parts:
        os.environ.setdefault("STUDIO_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "studio"))
        build_cache(tabs, args.device)
        from pipelines.studio import Studio

        studio = Studio(profile="fullsize", device=args.device)
        results = []
        with tempfile.TemporaryDirectory() as folder:
            for tab in tabs:
                log(f"tab {tab}: loading and one call with {args.steps} steps on {studio.device} ({studio.info.dtype}) ...")
                result = run_tab(studio, tab, args.steps, Path(folder))
                log(f"tab {tab}: {result['total_s']:.1f} s ({stage_text(result)})")
                results.append(result)
                studio.manager.evict_all()  # one tab's models at a time: the peaks are per tab
        print(f"\n## Tabs at full size, {args.steps} steps, device {studio.device} ({studio.info.dtype})\n")
        print(tabs_table(results))


if __name__ == "__main__":
    main()
