"""One sound-to-music window at full size against stock diffusers img2img, and windows batched
against one at a time (part "window" of ``benchmarks/fullsize.py``, which runs it).

Both comparisons run on the same loaded components in the same process, so they are ratios of one
run: ``overhead_vs_stock_img2img`` is our whole window (audio -> spectrogram codec -> mask ->
differential img2img -> inversion -> metrics) over ``StableDiffusionImg2ImgPipeline`` on that
window's image with the same scheduler, steps, strength and guidance; ``batched_windows_speedup`` is
two windows one at a time over the same two windows in one UNet batch (> 1: batching is faster).
"""

from __future__ import annotations

import time

from fullsize_tabs import synthetic_sound


def _timed(fn, sync) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def run_window(studio, steps: int, strength: float, log) -> dict:
    """Seconds of our window, the stock img2img, and two windows unbatched and batched, on ``studio``'s device."""
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    from pipelines import masked_img2img, spectrogram
    from pipelines.settings import SoundToMusicSettings

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

    def ours():
        masked_img2img.render_with_model(pipe, one, settings, device=device)

    def theirs():
        stock(prompt=settings.prompt, image=image.convert("RGB"), strength=strength, num_inference_steps=steps,
              guidance_scale=settings.guidance, generator=torch.Generator().manual_seed(settings.seed))

    def windows(batch: int):
        return lambda: masked_img2img.render_with_model(pipe, two, settings, device=device, batch_size=batch)

    with torch.no_grad():
        if device != "cpu":  # kernel selection and allocator growth: one untimed call of each first
            for fn in (ours, theirs, windows(1), windows(2)):
                fn()
        result = {"steps": steps, "strength": strength, "unet_calls": masked_img2img.steps_that_run(pipe, settings)}
        log(f"window: ours vs stock img2img, {steps} steps at strength {strength} "
            f"({result['unet_calls']} UNet calls) on {device} ...")
        result["stock_s"] = _timed(theirs, sync)
        result["ours_s"] = _timed(ours, sync)
        log("window: two windows one at a time, then batched ...")
        result["two_windows_one_at_a_time_s"] = _timed(windows(1), sync)
        result["two_windows_batched_s"] = _timed(windows(2), sync)
    result["overhead_vs_stock_img2img"] = round(result["ours_s"] / result["stock_s"], 3)
    result["batched_windows_speedup"] = round(result["two_windows_one_at_a_time_s"] / result["two_windows_batched_s"], 3)
    return result
