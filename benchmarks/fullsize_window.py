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


def timed(fn, sync) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``, between two ``sync()`` calls.

    The CPU seconds sum every thread's time on a core, so the time other processes held the cores is
    left out: on a shared machine they are the steadier measure of the work done, most of all with one
    torch thread (``benchmarks/gpu.py --threads 1``; with several, a thread waiting at a barrier for
    a descheduled sibling may spin and count)."""
    sync()
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    sync()
    return time.perf_counter() - start, time.process_time() - start_cpu


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


def split_of(stages: Stages, total: float, total_cpu: float) -> dict:
    """{stage: {"s": seconds, "cpu_s": CPU seconds, "calls": n}} plus "other" (the totals less every
    timed stage)."""
    split = {stage: {"s": round(seconds, 4), "cpu_s": round(stages.cpu_seconds[stage], 4), "calls": stages.calls[stage]}
             for stage, seconds in stages.seconds.items()}
    split["other"] = {"s": round(max(total - sum(stages.seconds.values()), 0.0), 4),
                      "cpu_s": round(max(total_cpu - sum(stages.cpu_seconds.values()), 0.0), 4), "calls": 0}
    return split


def median_split(splits: list[dict]) -> dict:
    """Per stage, the median seconds and CPU seconds over the repeats' splits (calls: the last
    repeat's; they do not vary)."""
    import statistics

    def median(stage: str, key: str) -> float:
        return round(statistics.median(split[stage][key] for split in splits if stage in split), 4)

    return {stage: {"s": median(stage, "s"), "cpu_s": median(stage, "cpu_s"), "calls": splits[-1][stage]["calls"]}
            for stage in splits[-1]}


def run_window(studio, steps: int, strength: float, log, *, split: bool = False, batched: bool = True,
               repeats: int = 1) -> dict:
    """Seconds of our window, the stock img2img, and (``batched``) two windows unbatched and batched,
    on ``studio``'s device.

    ``repeats`` > 1 times the two sides alternately (stock first, then ours first, ...) and reports
    the medians (``ours_s``, ``stock_s``), every run (``ours_runs_s``, ``stock_runs_s``) and the CPU
    seconds' medians (``ours_cpu_s``, ``stock_cpu_s``, ``ours_over_stock_cpu``: see ``timed``). With
    ``split``, each side's per-stage split (``ours_split``, ``stock_split``: every stage's median wall
    and CPU seconds over the repeats) and the UNet's share of it (``ours_unet_share``,
    ``ours_unet_share_cpu``, and stock's).
    """
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

    splits: dict[str, list[dict]] = {"ours": [], "stock": []}

    def timed_with_split(fn, key: str) -> tuple[float, float]:
        stages = Stages(sync)
        wrap_window_stages(stages, pipe)
        try:
            seconds, cpu = timed(fn, sync)
        finally:
            stages.restore()
        splits[key].append(split_of(stages, seconds, cpu))
        return seconds, cpu

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
        runs: dict[str, list[tuple[float, float]]] = {"ours": [], "stock": []}
        for repeat in range(repeats):
            order = (("stock", theirs), ("ours", ours)) if repeat % 2 == 0 else (("ours", ours), ("stock", theirs))
            for key, fn in order:
                runs[key].append(timed_with_split(fn, key) if split else timed(fn, sync))
        for key, measured in runs.items():
            result[f"{key}_s"] = statistics.median(wall for wall, _ in measured)
            result[f"{key}_runs_s"] = [round(wall, 3) for wall, _ in measured]
            result[f"{key}_cpu_s"] = round(statistics.median(cpu for _, cpu in measured), 3)
            result[f"{key}_cpu_runs_s"] = [round(cpu, 3) for _, cpu in measured]
            if split:
                result[f"{key}_split"] = median = median_split(splits[key])
                for unit, share in (("s", "unet_share"), ("cpu_s", "unet_share_cpu")):
                    result[f"{key}_{share}"] = round(median["UNet"][unit] / sum(part[unit] for part in median.values()), 4)
        if batched:
            log("window: two windows one at a time, then batched ...")
            result["two_windows_one_at_a_time_s"] = timed(windows(1), sync)[0]
            result["two_windows_batched_s"] = timed(windows(2), sync)[0]
    result["overhead_vs_stock_img2img"] = round(result["ours_s"] / result["stock_s"], 3)
    result["ours_over_stock_cpu"] = round(result["ours_cpu_s"] / result["stock_cpu_s"], 3)
    result["overhead_vs_stock_img2img"] = round(result["ours_s"] / result["stock_s"], 3)
    if batched:
        result["batched_windows_speedup"] = round(result["two_windows_one_at_a_time_s"] / result["two_windows_batched_s"], 3)
    return result
