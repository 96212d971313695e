"""One sound-to-music window at full size against stock diffusers img2img, and windows batched
against one at a time (part "window" of ``benchmarks/fullsize.py`` and stage "window" of
``benchmarks/gpu.py``, which run it).

Both comparisons run on the same loaded components in the same process, so they are ratios of one
run: ``overhead_vs_stock_img2img`` is our whole window (audio -> spectrogram codec -> mask ->
differential img2img -> inversion -> metrics) over ``StableDiffusionImg2ImgPipeline`` on that
window's image with the same scheduler, steps, strength and guidance; ``batched_windows_speedup`` is
two windows one at a time over the same two windows in one UNet batch (> 1: batching is faster).
With ``split`` each side's seconds and calls are also summed per stage (text encoder, VAE encode,
UNet, VAE decode, spectrogram codec, mask, metrics; "other" is the rest: the pipelines' own glue).
"""

from __future__ import annotations

import statistics
import time

from fullsize_tabs import Stages, synthetic_sound


def _timed(fn, sync) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def wrap_window_stages(stages: Stages, pipe) -> None:
    """Time every stage of a window: the SD components and our signal-side functions."""
    from pipelines.systems import masked_img2img
    from pipelines.signal import metrics, spectrogram

    stages.wrap(pipe.text_encoder, "forward", "text encoder")
    stages.wrap(pipe.vae, "encode", "VAE encode")
    stages.wrap(pipe.unet, "forward", "UNet")
    stages.wrap(pipe.vae, "decode", "VAE decode")
    for name in ("audio_to_image", "audio_to_mel", "mel_to_image", "image_to_audio"):
        stages.wrap(spectrogram, name, "spectrogram codec")
    stages.wrap(masked_img2img, "make_mask", "mask")
    for name in ("ssim", "chroma_cens_similarity"):
        stages.wrap(metrics, name, "metrics")


def split_of(stages: Stages, total: float) -> dict:
    """{stage: {"s": seconds, "calls": n}} plus "other" (the total less every timed stage)."""
    split = {stage: {"s": round(seconds, 4), "calls": stages.calls[stage]} for stage, seconds in stages.seconds.items()}
    split["other"] = {"s": round(max(total - sum(stages.seconds.values()), 0.0), 4), "calls": 0}
    return split


def run_window(studio, steps: int, strength: float, log, *, split: bool = False, batched: bool = True,
               repeats: int = 1) -> dict:
    """Seconds of our window, the stock img2img, and (``batched``) two windows unbatched and batched,
    on ``studio``'s device; with ``split`` a per-stage split of both sides (``ours_split``, ``stock_split``,
    from the last repeat). ``repeats`` > 1 times the two sides alternately (stock first, then ours
    first, ...) and reports the medians, every run in ``ours_runs_s`` and ``stock_runs_s``."""
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    from pipelines.systems import masked_img2img

    from pipelines.signal import spectrogram
    from pipelines.schema.settings import SoundToMusicSettings

    device = studio.device
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    pipe = studio.manager.run("mask_model", lambda model: model)  # loaded and placed; timed calls below
    pipe.set_progress_bar_config(disable=True)
    settings = SoundToMusicSettings(prompt="instrumental , saxophone , flute", steps=steps, strength=strength)
    rate = spectrogram.RIFFUSION.sample_rate
    one = synthetic_sound(5.11, rate)[0]  # one window
    two = synthetic_sound(10.0, rate, seed=1)[0]  # two windows (0.2 s overlap)
    image = spectrogram.audio_to_image(one[None], spectrogram.RIFFUSION)
    stock = StableDiffusionImg2ImgPipeline(**pipe.components, requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)

    def ours():  # the whole window as the Studio runs it: the model half, then the CPU half (metrics)
        masked_img2img.finish(masked_img2img.render_with_model(pipe, one, settings, device=device), settings)

    def theirs():
        stock(prompt=settings.prompt, image=image.convert("RGB"), strength=strength, num_inference_steps=steps,
              guidance_scale=settings.guidance, generator=torch.Generator().manual_seed(settings.seed))

    def windows(batch: int):
        return lambda: masked_img2img.render_with_model(pipe, two, settings, device=device, batch_size=batch)

    def timed_with_split(fn, key: str) -> float:
        stages = Stages(sync)
        wrap_window_stages(stages, pipe)
        try:
            seconds = _timed(fn, sync)
        finally:
            stages.restore()
        result[f"{key}_split"] = split_of(stages, seconds)
        return seconds

    result = {"steps": steps, "strength": strength, "unet_calls": masked_img2img.steps_that_run(pipe, settings)}
    # the signal side's one-off costs (numba's JIT in the metrics, cached mel bases) are paid once per
    # process, not per window: pay them before timing, on the CPU too (no model runs here)
    from pipelines.signal import metrics

    metrics.ssim(image, image)
    metrics.chroma_cens_similarity(one, one, rate)
    spectrogram.image_to_audio(image, spectrogram.RIFFUSION, device=device)
    with torch.no_grad():
        if device != "cpu":  # kernel selection and allocator growth: one untimed call of each first
            for fn in (ours, theirs, *((windows(1), windows(2)) if batched else ())):
                fn()
        log(f"window: ours vs stock img2img, {steps} steps at strength {strength} "
            f"({result['unet_calls']} UNet calls) on {device} ...")
        runs: dict[str, list[float]] = {"ours": [], "stock": []}
        for repeat in range(repeats):
            order = (("stock", theirs), ("ours", ours)) if repeat % 2 == 0 else (("ours", ours), ("stock", theirs))
            for key, fn in order:
                runs[key].append(timed_with_split(fn, key) if split else _timed(fn, sync))
        for key in runs:
            result[f"{key}_s"] = statistics.median(runs[key])
            result[f"{key}_runs_s"] = [round(x, 3) for x in runs[key]]
        if batched:
            log("window: two windows one at a time, then batched ...")
            result["two_windows_one_at_a_time_s"] = _timed(windows(1), sync)
            result["two_windows_batched_s"] = _timed(windows(2), sync)
    result["overhead_vs_stock_img2img"] = round(result["ours_s"] / result["stock_s"], 3)
    if batched:
        result["batched_windows_speedup"] = round(result["two_windows_one_at_a_time_s"] / result["two_windows_batched_s"], 3)
    return result
