"""The stages of ``benchmarks/gpu.py``, one function each (``STAGE_FUNCTIONS``), and what they share:
the ``Context`` (Studio, options, scratch folder, the stage's deadline) and ``compare`` (ours against
stock diffusers on the same components, alternating runs, medians, call counts).

Each stage function takes the Context and returns a dict of figures or ``"skipped: reason"``;
``benchmarks/gpu.py`` (its docstring lists what each stage measures) runs them under the budget.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from fullsize_tabs import PeakMemory, Stages, stock_sd, synthetic_sound, write_wav
from gpu_report import calls_of, log, memory_of, skipped

BENCHMARKS = Path(__file__).resolve().parent
PROMPT = "instrumental , saxophone , flute"


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
        seconds, _, made = self.timed_cpu(fn)
        return seconds, made

    def timed_cpu(self, fn):
        """(wall seconds, CPU seconds of this process, what fn returned), synchronised on CUDA. The CPU
        seconds (every thread's) leave out the time other processes held the cores: on a shared
        machine, and with ``--threads 1``, they measure the work done (``benchmarks/fullsize_window.timed``)."""
        from fullsize_window import timed

        box = []
        seconds, cpu = timed(lambda: box.append(fn()), self.sync)
        return seconds, cpu, box[0]

    def counting(self, pipe) -> Stages:
        """Stages counting the UNet and text-encoder calls (and their seconds) of ``pipe``."""
        stages = Stages(lambda: None)  # counts only: no extra synchronisation inside the loop
        stages.wrap(pipe.unet, "forward", "UNet")
        stages.wrap(pipe.text_encoder, "forward", "text encoder")
        return stages


def compare(ctx: Context, pipe, ours, theirs) -> dict:
    """Ours against stock on the same pipe: ``--repeats`` alternating runs (stock first, then ours
    first, ...), medians and every run (wall seconds, and CPU seconds: see ``Context.timed_cpu``),
    each side's UNet and text-encoder calls per request, and off CUDA the wall and CPU seconds inside
    the UNet (``ours_unet_s``, ``ours_unet_cpu_s``, and stock's: medians; on CUDA nothing syncs inside
    the loop, so they would be launch times)."""
    import statistics

    runs: dict[str, list[float]] = {f"{side}{part}": [] for side in ("ours", "stock")
                                    for part in ("", "_cpu", "_unet", "_unet_cpu")}
    counted, made = {}, None
    for repeat in range(ctx.args.repeats):
        order = (("stock", theirs), ("ours", ours)) if repeat % 2 == 0 else (("ours", ours), ("stock", theirs))
        for key, fn in order:
            stages = ctx.counting(pipe)
            try:
                seconds, cpu, out = ctx.timed_cpu(fn)
            finally:
                stages.restore()
            runs[key].append(seconds)
            runs[f"{key}_cpu"].append(cpu)
            runs[f"{key}_unet"].append(stages.seconds["UNet"])
            runs[f"{key}_unet_cpu"].append(stages.cpu_seconds["UNet"])
            counted[key] = calls_of(stages)
            made = out if key == "ours" else made
    median = {key: statistics.median(values) for key, values in runs.items()}
    result = {"ours_s": round(median["ours"], 3), "stock_s": round(median["stock"], 3),
              "ours_over_stock": round(median["ours"] / median["stock"], 3),
              "ours_runs_s": [round(x, 3) for x in runs["ours"]], "stock_runs_s": [round(x, 3) for x in runs["stock"]],
              "ours_cpu_s": round(median["ours_cpu"], 3), "stock_cpu_s": round(median["stock_cpu"], 3),
              "ours_cpu_runs_s": [round(x, 3) for x in runs["ours_cpu"]],
              "stock_cpu_runs_s": [round(x, 3) for x in runs["stock_cpu"]],
              "ours_over_stock_cpu": round(median["ours_cpu"] / median["stock_cpu"], 3),
              **counted["ours"], "stock_unet_calls": counted["stock"]["unet_calls"],
              "stock_text_encoder_calls": counted["stock"]["text_encoder_calls"], "made": made}
    if not ctx.cuda:
        result.update({f"{side}_unet{part}_s": round(median[f"{side}_unet{part}"], 3)
                       for side in ("ours", "stock") for part in ("", "_cpu")})
    return result


# -- stages ----------------------------------------------------------------------------------------------
def stage_window(ctx: Context) -> dict:
    from fullsize_window import run_window

    steps = ctx.steps(50)
    result = run_window(ctx.studio, steps, 0.8, log, split=True, batched=False, repeats=ctx.args.repeats)
    result["settings"] = {"steps": steps, "strength": 0.8, "scheduler": "repo (PNDM)"}
    for side, prefix in (("ours", ""), ("stock", "stock_")):  # the calls counted in a request, as every stage's
        result[f"{prefix}text_encoder_calls"] = result[f"{side}_split"]["text encoder"]["calls"]
    result["stock_unet_calls"] = result["stock_split"]["UNet"]["calls"]
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
    result = {"music_seconds": seconds, "total_s": round(total_s, 3), "caption_s": round(stages.seconds["caption"], 3),
              "musicgen_s": round(generate_s, 3), "musicgen_s_per_generated_s": round(generate_s / seconds, 3),
              "decoder_forwards": forwards.calls["decoder"], "caption": made.prompt, **memory_of(memory)}
    if ctx.cuda:  # the opt-in static KV cache (transformers compiles the decoder step): what its default needs
        result["static_cache"] = static_cache_figures(ctx, picture, settings, made)
    return result


def static_cache_figures(ctx: Context, picture, settings, dynamic) -> dict:
    """MusicGen with ``STUDIO_MUSICGEN_STATIC_CACHE=1`` on the same picture and settings: the first call
    (the decoder step's compile), then seconds per generated second, and whether the audio equals the
    dynamic cache's (fp16 compiled kernels may round differently)."""
    import os

    import numpy as np

    from pipelines.systems import image_to_music

    studio, seconds = ctx.studio, settings.seconds
    before = os.environ.get(image_to_music.STATIC_CACHE_ENV)
    os.environ[image_to_music.STATIC_CACHE_ENV] = "1"
    musicgen = studio.manager.get_cpu("musicgen").model
    stages = Stages(ctx.sync)
    stages.wrap(musicgen, "generate", "MusicGen")
    try:
        first_s, _ = ctx.timed(lambda: studio.image_to_music(picture, settings=settings, should_stop=ctx.stop))
        compiled_s = stages.seconds["MusicGen"]
        again_s, made = ctx.timed(lambda: studio.image_to_music(picture, settings=settings, should_stop=ctx.stop))
    finally:
        stages.restore()
        if before is None:
            os.environ.pop(image_to_music.STATIC_CACHE_ENV, None)
        else:
            os.environ[image_to_music.STATIC_CACHE_ENV] = before
    generate_s = stages.seconds["MusicGen"] - compiled_s
    return {"first_call_s": round(first_s, 3), "total_s": round(again_s, 3), "musicgen_s": round(generate_s, 3),
            "musicgen_s_per_generated_s": round(generate_s / seconds, 3),
            "fell_back_to_dynamic": musicgen in image_to_music._static_failed,
            "same_audio_as_dynamic": bool(np.array_equal(made.audio, dynamic.audio))}


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
