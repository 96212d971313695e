"""Every GPU figure in one command: what a lent GPU runs first (and what CI runs on the CPU, tiny).

    python benchmarks/gpu.py --json                        # full size on the GPU, ~5 min on one H100
    python benchmarks/gpu.py --json --out gpu.json --budget-s 200     # a shorter lease
    python benchmarks/gpu.py --profile tiny --device cpu --json --steps 2 --long-seconds 6 \\
        --text-seconds 6 --music-seconds 1 --image-size 64 --training-recipes style --training-steps 2

It builds only the full-size families its stages need (random weights in the real shapes, on the GPU's
RNG: ``STUDIO_FULLSIZE_DEVICE``), then runs these stages in this order, each under its share of
``--budget-s`` (a stage that would start with too little time left, or that runs past its share, is
reported as "skipped: reason"; the stages that go through the Studio are cancelled by its own
``should_stop``), so a short lease still returns the figures measured so far. ``--out`` is rewritten
after every stage.

1. ``window``: one 5.12 s sound-to-music window at the paper's settings (50 steps, strength 0.8, the
   repo's PNDM: 41 UNet calls) against stock ``StableDiffusionImg2ImgPipeline`` on the same
   components, image and settings, each with a per-stage split (text encoder, VAE, UNet, codec,
   mask, metrics, other) and call counts (``fullsize_window.run_window``).
2. ``sound_to_music_60s``: a 60 s sound (13 windows) through ``Studio.sound_to_music`` as the app calls
   it, at the "paper" and "fast" presets, window batch auto (``windows.window_batch_size``) and 1:
   seconds, real-time factor, UNet and text-encoder calls, peak host and GPU memory.
3. ``style``: ``Studio.style_interpolation`` on one window (2 styles, MusicTI's 50 steps at 0.7) against
   stock img2img with the same DDIM scheduler, steps, strength and guidance; UNet and text-encoder
   calls (one text-encoder call per request).
4. ``music_to_image``: the description (classifiers, tempo) timed apart, then ``Studio.music_to_image``
   from that sentence with the LoRA at scale 1 (fused: every UNet call checked) against stock
   ``StableDiffusionPipeline`` text-to-image without it, same steps, size and seed.
5. ``image_to_music``: ``Studio.image_to_music`` for ``--music-seconds`` (10): caption seconds, MusicGen
   seconds per generated second, decoder forwards.
6. ``text_to_music``: ``Studio.text_to_music`` for ``--text-seconds`` (12): seconds, windows, UNet calls.
7. ``compile``: the UNet's seconds per call (CFG batch 2, 512x512) eager and compiled
   (``unet_compile.compile_unet``), the compile's first-call cost, and the calls it takes to pay it back;
   what ``STUDIO_COMPILE`` changes. CUDA only (skipped elsewhere, with ``unet_compile.compile_choice``'s reason).
8. ``training``: seconds per optimizer step of every training recipe (``training.benchmark_recipes``,
   fp16 mixed precision on CUDA, fp32 elsewhere).

UNet and text-encoder call counts per request are in every diffusion stage's JSON. ``--steps N``
replaces every step count (CPU smoke runs); the JSON says which settings ran. ``--json`` ends the
output with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCHMARKS))
from core.numba_cache import numba_cache_for  # noqa: E402

numba_cache_for("benchmark")  # before numba is imported (core/numba_cache.py)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KERAS_BACKEND", "torch")

from fullsize_tabs import GB, PeakMemory, Stages, stock_sd, synthetic_sound, write_wav  # noqa: E402

STAGES = ("window", "sound_to_music_60s", "style", "music_to_image", "image_to_music", "text_to_music", "compile",
          "training")
# share of --budget-s each stage may take (leftover time flows to the later stages)
SHARES = {"window": 0.10, "sound_to_music_60s": 0.30, "style": 0.06, "music_to_image": 0.06, "image_to_music": 0.08,
          "text_to_music": 0.06, "compile": 0.12, "training": 0.22}
# the fullsize tabs (benchmarks/fullsize.py TAB_FAMILIES) whose families each stage needs built
STAGE_TABS = {"window": ("sound_to_music",), "sound_to_music_60s": ("sound_to_music",), "style": ("style",),
              "music_to_image": ("music_to_image",), "image_to_music": ("image_to_music",),
              "text_to_music": ("sound_to_music",), "compile": ("sound_to_music",), "training": ()}
MIN_START_S = 3.0  # a stage is not started with less than this left
PROMPT = "instrumental , saxophone , flute"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def skipped(reason: str) -> str:
    return f"skipped: {reason}"


class Context:
    """What every stage needs: the Studio, the options, a scratch folder and the stage's deadline."""

    def __init__(self, studio, args, folder: Path):
        import torch

        self.studio, self.args, self.folder = studio, args, folder
        self.device = studio.device
        self.cuda = self.device.startswith("cuda")
        self.sync = torch.cuda.synchronize if self.cuda else (lambda: None)
        self.deadline = float("inf")

    def stop(self) -> bool:
        """The Studio's ``should_stop``: True once the stage's share of the budget is spent."""
        return time.perf_counter() > self.deadline

    def steps(self, default: int) -> int:
        return self.args.steps or default

    def timed(self, fn):
        """(seconds, what fn returned), synchronised on CUDA."""
        self.sync()
        start = time.perf_counter()
        made = fn()
        self.sync()
        return time.perf_counter() - start, made

    def counting(self, pipe) -> Stages:
        """Stages counting the UNet and text-encoder calls (and their seconds) of ``pipe``."""
        stages = Stages(lambda: None)  # counts only: no extra synchronisation inside the loop
        stages.wrap(pipe.unet, "forward", "UNet")
        stages.wrap(pipe.text_encoder, "forward", "text encoder")
        return stages


def compare(ctx: Context, pipe, ours, theirs) -> dict:
    """Ours against stock on the same pipe: ``--repeats`` alternating runs (stock first, then ours
    first, ...), medians and every run, and each side's UNet and text-encoder calls per request."""
    import statistics

    runs: dict[str, list[float]] = {"ours": [], "stock": []}
    counted, made = {}, None
    for repeat in range(ctx.args.repeats):
        order = (("stock", theirs), ("ours", ours)) if repeat % 2 == 0 else (("ours", ours), ("stock", theirs))
        for key, fn in order:
            stages = ctx.counting(pipe)
            try:
                seconds, out = ctx.timed(fn)
            finally:
                stages.restore()
            runs[key].append(seconds)
            counted[key] = calls_of(stages)
            made = out if key == "ours" else made
    ours_s, stock_s = statistics.median(runs["ours"]), statistics.median(runs["stock"])
    return {"ours_s": round(ours_s, 3), "stock_s": round(stock_s, 3), "ours_over_stock": round(ours_s / stock_s, 3),
            "ours_runs_s": [round(x, 3) for x in runs["ours"]], "stock_runs_s": [round(x, 3) for x in runs["stock"]],
            **counted["ours"], "stock_unet_calls": counted["stock"]["unet_calls"],
            "stock_text_encoder_calls": counted["stock"]["text_encoder_calls"], "made": made}


def calls_of(stages: Stages) -> dict:
    return {"unet_calls": stages.calls["UNet"], "text_encoder_calls": stages.calls["text encoder"]}


def memory_of(memory: PeakMemory) -> dict:
    return {"peak_rss_gb": round(memory.peak_rss / GB, 2),
            "peak_gpu_gb": None if memory.peak_device is None else round(memory.peak_device / GB, 2)}


# -- stages ----------------------------------------------------------------------------------------------
def stage_window(ctx: Context) -> dict:
    from fullsize_window import run_window

    steps = ctx.steps(50)
    result = run_window(ctx.studio, steps, 0.8, log, split=True, batched=False, repeats=ctx.args.repeats)
    result["settings"] = {"steps": steps, "strength": 0.8, "scheduler": "repo (PNDM)"}
    return result


def stage_sound_to_music_60s(ctx: Context) -> dict:
    from pipelines.signal import spectrogram, windows
    from pipelines.schema.settings import SoundToMusicSettings
    from pipelines.signal.windows import window_batch_size

    args, studio = ctx.args, ctx.studio
    rate = spectrogram.RIFFUSION.sample_rate
    sound = write_wav(synthetic_sound(args.long_seconds, rate, seed=2), rate, ctx.folder, "long.wav")
    count = len(windows.plan_windows(int(args.long_seconds * rate), spectrogram.RIFFUSION).starts)
    forced = os.environ.pop("STUDIO_WINDOW_BATCH", None)
    auto = window_batch_size(ctx.device, count)
    pipe = studio.manager.run("mask_model", lambda model: model)
    result: dict = {"audio_seconds": args.long_seconds, "windows": count, "auto_window_batch": auto,
                    "tuning": getattr(pipe, "tuning", None)}
    try:
        for preset in ("paper", "fast"):
            settings = SoundToMusicSettings.preset(preset, prompt=PROMPT,
                                                   **({"steps": args.steps} if args.steps else {}))
            for batch in ("auto", 1):
                key = f"{preset}_batch_{batch}"
                if batch == "auto" and auto == 1:
                    result[key] = skipped(f"auto is 1 window at a time on {ctx.device} (see {preset}_batch_1)")
                    continue
                if ctx.stop():
                    result[key] = skipped("the stage's time budget is spent")
                    continue
                os.environ["STUDIO_WINDOW_BATCH"] = str(auto if batch == "auto" else 1)
                if ctx.cuda:  # the batch's shapes once (kernel choice, allocator, a compile), untimed
                    batched = min(auto if batch == "auto" else 1, count)  # windows of 5.12 s, 4.92 s apart
                    warm = write_wav(synthetic_sound(4.92 * batched + 0.1, rate), rate, ctx.folder, "warm.wav")
                    studio.sound_to_music(warm, SoundToMusicSettings.preset(preset, prompt=PROMPT, steps=4,
                                                                            strength=1.0))
                stages = ctx.counting(pipe)
                try:
                    with PeakMemory(ctx.device) as memory:
                        seconds, made = ctx.timed(lambda: studio.sound_to_music(sound, settings, should_stop=ctx.stop))
                finally:
                    stages.restore()
                result[key] = {"seconds": round(seconds, 2), "x_real_time": round(args.long_seconds / seconds, 2),
                               "window_batch": auto if batch == "auto" else 1, "steps": settings.steps,
                               "scheduler": settings.scheduler, "steps_run": made.parameters.get("steps_run"),
                               **calls_of(stages), **memory_of(memory)}
                log(f"sound to music {args.long_seconds:g} s, {key}: {seconds:.1f} s")
    finally:
        os.environ.pop("STUDIO_WINDOW_BATCH", None)
        if forced is not None:
            os.environ["STUDIO_WINDOW_BATCH"] = forced
    return result


def stage_style(ctx: Context) -> dict:
    from diffusers import StableDiffusionImg2ImgPipeline

    from pipelines.signal import spectrogram

    from pipelines.systems import style_interpolation
    from pipelines.schema.settings import StyleInterpolationSettings

    studio, rate = ctx.studio, spectrogram.RIFFUSION.sample_rate
    samples = synthetic_sound(5.11, rate)
    sound = write_wav(samples, rate, ctx.folder, "window.wav")
    names = studio.style_names()[:2]
    settings = StyleInterpolationSettings(steps=ctx.steps(50), strength=0.7)
    pipe = studio.manager.run("riffusion", lambda model: model)
    pipe.set_progress_bar_config(disable=True)
    components = {**pipe.components, "scheduler": style_interpolation.make_scheduler(pipe)}  # the same DDIM
    stock = StableDiffusionImg2ImgPipeline(**components, requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    image = spectrogram.audio_to_image(samples, spectrogram.RIFFUSION).convert("RGB")

    def ours():
        return studio.style_interpolation(sound, names, settings=settings, should_stop=ctx.stop)

    def theirs():
        import torch

        return stock("*", image=image, strength=settings.strength, num_inference_steps=settings.steps,
                     guidance_scale=settings.guidance, generator=torch.Generator().manual_seed(settings.seed))

    if ctx.cuda:
        ours(), theirs()
    compared = compare(ctx, pipe, ours, theirs)
    made = compared.pop("made")
    return {"styles": names, "settings": {"steps": settings.steps, "strength": settings.strength,
                                          "guidance": settings.guidance, "scheduler": "DDIM (both)"},
            **compared, "text_encoder_calls_recorded": made.parameters.get("text_encoder_calls")}


def stage_music_to_image(ctx: Context) -> dict:
    from pipelines.models import lora
    from pipelines.systems import music_to_image
    from pipelines.schema.settings import MusicToImageSettings

    studio, size = ctx.studio, ctx.args.image_size
    music = write_wav(synthetic_sound(10.0, 22050, seed=1), 22050, ctx.folder, "music.wav")
    describe_s, described = ctx.timed(lambda: studio.describe_music(music))
    settings = MusicToImageSettings(steps=ctx.steps(50), width=size, height=size, lora_scale=1.0)
    pipe = studio.manager.run("sd15", lambda model: model)
    pipe.set_progress_bar_config(disable=True)

    def ours():
        return studio.music_to_image(None, description=described.sentence, settings=settings, should_stop=ctx.stop)

    if ctx.cuda:
        ours()
        stock_sd(pipe, None, described.sentence, settings.steps, 1.0, settings.guidance, ctx.device, (size, size))
    ours()  # loads the LoRA into the UNet first (once per process), so the timed calls are warm ones
    layers = lora.lora_layers(pipe.unet, music_to_image.DEFAULT_ADAPTER)
    fused_in_calls: list[bool] = []
    handle = pipe.unet.register_forward_pre_hook(
        lambda module, args: fused_in_calls.append(bool(layers) and all(layer.merged for layer in layers)))

    def theirs():
        return stock_sd(pipe, None, described.sentence, settings.steps, 1.0, settings.guidance, ctx.device,
                        (size, size))

    try:
        compared = compare(ctx, pipe, ours, theirs)
    finally:
        handle.remove()
    made = compared.pop("made")
    # the hook saw both sides: every call of ours on fused weights, none of stock's
    ours_calls, stock_calls = (compared[key] * ctx.args.repeats for key in ("unet_calls", "stock_unet_calls"))
    return {"describe_s": round(describe_s, 3), "size": size, "steps": settings.steps, "lora_scale": 1.0, **compared,
            "lora_fused": sum(fused_in_calls) == ours_calls > 0 and len(fused_in_calls) == ours_calls + stock_calls,
            "lora_fused_layers": made.parameters.get("lora_fused_layers")}


def stage_image_to_music(ctx: Context) -> dict:
    import numpy as np
    from PIL import Image

    from pipelines.schema.settings import ImageToMusicSettings

    studio, seconds = ctx.studio, ctx.args.music_seconds
    picture = Image.fromarray((np.random.default_rng(0).random((384, 384, 3)) * 255).astype(np.uint8))
    blip, musicgen = studio.manager.get_cpu("blip"), studio.manager.get_cpu("musicgen")
    settings = ImageToMusicSettings(seconds=seconds)
    if ctx.cuda:
        studio.image_to_music(picture, settings=ImageToMusicSettings(seconds=1.0))
    stages = Stages(ctx.sync)
    stages.wrap(blip.model, "generate", "caption")
    stages.wrap(musicgen.model, "generate", "MusicGen")
    forwards = Stages(lambda: None)
    forwards.wrap(musicgen.model.decoder, "forward", "decoder")
    try:
        with PeakMemory(ctx.device) as memory:
            total_s, made = ctx.timed(lambda: studio.image_to_music(picture, settings=settings, should_stop=ctx.stop))
    finally:
        stages.restore()
        forwards.restore()
    generate_s = stages.seconds["MusicGen"]
    return {"music_seconds": seconds, "total_s": round(total_s, 3), "caption_s": round(stages.seconds["caption"], 3),
            "musicgen_s": round(generate_s, 3), "musicgen_s_per_generated_s": round(generate_s / seconds, 3),
            "decoder_forwards": forwards.calls["decoder"], "caption": made.prompt, **memory_of(memory)}


def stage_text_to_music(ctx: Context) -> dict:
    from pipelines.schema.settings import TextToMusicSettings

    studio, seconds = ctx.studio, ctx.args.text_seconds
    settings = TextToMusicSettings(seconds=seconds, steps=ctx.steps(50))
    pipe = studio.manager.run("riffusion", lambda model: model)
    pipe.set_progress_bar_config(disable=True)
    if ctx.cuda:
        studio.text_to_music(TextToMusicSettings(seconds=5.0, steps=4))
    stages = ctx.counting(pipe)
    try:
        with PeakMemory(ctx.device) as memory:
            total_s, made = ctx.timed(lambda: studio.text_to_music(settings, should_stop=ctx.stop))
    finally:
        stages.restore()
    return {"music_seconds": seconds, "steps": settings.steps, "seconds": round(total_s, 2),
            "x_real_time": round(seconds / total_s, 2), "windows": settings.windows(), **calls_of(stages),
            **memory_of(memory)}


def stage_compile(ctx: Context) -> dict:
    import torch

    from pipelines.models.unet_compile import compile_choice, compile_unet

    choice = compile_choice(ctx.device)
    if not ctx.cuda:
        return skipped(choice.reason)
    pipe = ctx.studio.manager.run("mask_model", lambda model: model)
    unet = pipe.unet
    dtype = unet.dtype
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, unet.config.in_channels, 64, 64, generator=generator).to(ctx.device, dtype)
    hidden = torch.randn(2, 77, unet.config.cross_attention_dim, generator=generator).to(ctx.device, dtype)
    sample = sample.contiguous(memory_format=torch.channels_last) if getattr(pipe, "tuning", {}).get("channels_last") else sample

    def per_call(n: int = 10) -> float:
        seconds, _ = ctx.timed(lambda: [unet(sample, 500, hidden) for _ in range(n)])
        return seconds / n

    result = {"studio_compile": os.environ.get("STUDIO_COMPILE", "(unset: auto)"), "choice": choice.reason,
              "compiled_at_load": bool(getattr(pipe, "tuning", {}).get("compiled"))}
    with torch.no_grad():
        with torch.compiler.set_stance("force_eager"):
            unet(sample, 500, hidden)
            result["eager_s_per_call"] = round(per_call(), 5)
            eager_out = unet(sample, 500, hidden).sample
        if result["compiled_at_load"]:
            torch._dynamo.reset()  # the earlier stages compiled their shapes: time this one's compile afresh
        else:
            result["compiled_blocks"] = compile_unet(unet)
        first_s, _ = ctx.timed(lambda: unet(sample, 500, hidden))  # compiles the shape
        result["first_call_s"] = round(first_s, 2)
        result["compiled_s_per_call"] = round(per_call(), 5)
        result["max_abs_difference"] = float((unet(sample, 500, hidden).sample - eager_out).abs().max())
    saving = result["eager_s_per_call"] - result["compiled_s_per_call"]
    result["speedup"] = round(result["eager_s_per_call"] / result["compiled_s_per_call"], 3)
    result["calls_to_pay_back_the_compile"] = (round((first_s - result["compiled_s_per_call"]) / saving)
                                               if saving > 0 else None)
    return result


def stage_training(ctx: Context) -> dict:
    import importlib.util

    # benchmarks/training.py by its path: the name "training" is the repository's recipes package
    spec = importlib.util.spec_from_file_location("benchmarks_training", BENCHMARKS / "training.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    RECIPES, benchmark_recipes = bench.RECIPES, bench.benchmark_recipes
    args = ctx.args
    chosen = [r for r in args.training_recipes.split(",") if r] if args.training_recipes else list(RECIPES)
    mixed = "fp16" if ctx.cuda else "no"
    rows = benchmark_recipes(chosen, args.profile, args.training_steps, mixed, deadline=ctx.deadline)
    result: dict = {"mixed_precision": mixed, "steps": args.training_steps}
    for recipe in RECIPES:
        row = next((r for r in rows if r["recipe"] == recipe), None)
        if row is None:
            result[recipe] = skipped("not asked for (--training-recipes)")
        elif "skipped" in row:
            result[recipe] = skipped(row["skipped"])
        elif row["returncode"]:
            result[recipe] = skipped(f"the recipe failed: {row['error'][-300:]}")
        else:
            result[recipe] = {k: row[k] for k in ("seconds_per_step", "peak_rss_gb", "wall_s", "batch_size")}
    return result


STAGE_FUNCTIONS = {"window": stage_window, "sound_to_music_60s": stage_sound_to_music_60s, "style": stage_style,
                   "music_to_image": stage_music_to_image, "image_to_music": stage_image_to_music,
                   "text_to_music": stage_text_to_music, "compile": stage_compile, "training": stage_training}


# -- the run ---------------------------------------------------------------------------------------------
def machine(device: str) -> dict:
    import diffusers
    import torch
    import transformers

    info = {"device": device, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "cpu_cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(torch.device(device)).total_memory / GB, 1)
    return info


def run(args) -> dict:
    """Run the chosen stages under the budget; returns the JSON summary (also written to ``--out``)."""
    chosen = [s for s in STAGES if s in args.stages]
    summary: dict = {"profile": args.profile, "budget_s": args.budget_s, "steps_override": args.steps,
                     "machine": machine(args.device), "stages": {}}

    def save() -> None:
        if args.out:
            Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")

    started = time.perf_counter()
    os.environ.setdefault("STUDIO_CACHE", str(ROOT / ".cache" / "studio"))
    if args.profile == "fullsize":
        from fullsize import build_cache

        tabs = sorted({t for s in chosen for t in STAGE_TABS[s]})
        summary["build_s"] = round(build_cache(tabs, args.device), 1) if tabs else 0.0
    from pipelines.studio import Studio

    studio = Studio(profile=args.profile, device=args.device)
    summary["dtype"] = studio.info.dtype
    deadline = time.perf_counter() + args.budget_s  # the build is not counted: it happens once per machine
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as folder:
        ctx = Context(studio, args, Path(folder))
        for index, name in enumerate(STAGES):
            if name not in chosen:
                summary["stages"][name] = skipped("not asked for (--stages)")
                continue
            left = deadline - time.perf_counter()
            if left < MIN_START_S:
                summary["stages"][name] = skipped(f"the time budget of {args.budget_s:g} s is spent")
                save()
                continue
            later = sum(SHARES[s] for s in STAGES[index:] if s in chosen)
            ctx.deadline = time.perf_counter() + left * SHARES[name] / later  # its share of what is left
            log(f"stage {name}: up to {ctx.deadline - time.perf_counter():.0f} s ...")
            load_before = os.getloadavg()[0]
            stage_start = time.perf_counter()
            try:
                outcome = STAGE_FUNCTIONS[name](ctx)
            except Exception as error:  # noqa: BLE001  (one failed stage must not lose the others' figures)
                from core.errors import Cancelled

                if isinstance(error, Cancelled):
                    outcome = skipped(f"cancelled past its share of the budget ({time.perf_counter() - stage_start:.0f} s)")
                else:
                    outcome = skipped(f"error: {type(error).__name__}: {str(error)[:300]}")
            if isinstance(outcome, dict):
                outcome["stage_s"] = round(time.perf_counter() - stage_start, 1)
                outcome["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            summary["stages"][name] = outcome
            log(f"stage {name}: {outcome if isinstance(outcome, str) else 'done'} "
                f"({time.perf_counter() - stage_start:.1f} s)")
            if ctx.cuda:
                import torch

                torch.cuda.empty_cache()
            else:
                studio.manager.evict_all()  # on the CPU one stage's models at a time (full size: ~4.3 GB each)
            save()
    summary["total_s"] = round(time.perf_counter() - started, 1)
    save()
    return summary


def parse(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="fullsize", choices=("fullsize", "tiny"))
    parser.add_argument("--device", default=None, help="cuda (default when there is one) or cpu")
    parser.add_argument("--budget-s", type=float, default=270.0,
                        help="seconds for all the stages (the full-size build is not counted)")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated: " + ", ".join(STAGES))
    parser.add_argument("--steps", type=int, default=None, help="every step count (default: each tab's paper setting)")
    parser.add_argument("--long-seconds", type=float, default=60.0, help="the long sound for sound to music")
    parser.add_argument("--text-seconds", type=float, default=12.0, help="text to music length")
    parser.add_argument("--music-seconds", type=float, default=10.0, help="image to music length")
    parser.add_argument("--image-size", type=int, default=512, help="music to image width and height")
    parser.add_argument("--training-recipes", default=None, help="comma-separated (default: every recipe)")
    parser.add_argument("--training-steps", type=int, default=4, help="optimizer steps per recipe (>= 3)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="ours and stock timed alternately this many times each (medians reported)")
    parser.add_argument("--out", default=None, help="JSON file, rewritten after every stage")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    args.stages = {s.strip() for s in args.stages.split(",") if s.strip()}
    if unknown := args.stages - set(STAGES):
        parser.error(f"unknown stage(s): {', '.join(sorted(unknown))}")
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    summary = run(args)
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
