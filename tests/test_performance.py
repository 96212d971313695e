"""Performance changes that must not change results: batched windows, the honest step count."""

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines import masked_img2img
from pipelines.settings import SoundToMusicSettings

FAST = dict(steps=4, strength=0.75)  # 3 DDIM steps per window on the tiny model
REPO_CONFIGS = Path(__file__).resolve().parents[1] / "pipelines" / "fullsize_configs.json"


@pytest.fixture(scope="module")
def tiny_pipe(studio):
    pipe = studio.manager.get_cpu("mask_model")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pndm_pipe(tiny_pipe):
    """The tiny model with the real riffusion repo's scheduler (PNDM, from its verbatim config)."""
    from diffusers import PNDMScheduler

    config = json.loads(REPO_CONFIGS.read_text())["riffusion--riffusion-model-v1"]
    scheduler = PNDMScheduler.from_config(config["scheduler/scheduler_config.json"]["content"])
    pipe = type(tiny_pipe)(**{**tiny_pipe.components, "scheduler": scheduler}, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def everyday_sound(seconds: float, rate: int = 44100) -> np.ndarray:
    """Noise bursts and a gliding tone, different in every window (so windows are not interchangeable)."""
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * (200 + 60 * t) * t)
    return (tone + 0.2 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 0.7 * t) > 0.3)).astype(np.float32)


@pytest.mark.slow
def test_batched_windows_give_the_same_music_as_one_at_a_time(tiny_pipe):
    """Same seed, same audio: 3 windows one at a time, in one batch, and as a batch of 2 plus 1."""
    sound = everyday_sound(12.0)  # 3 windows of 5.12 s
    settings = SoundToMusicSettings(prompt="funk drums", **FAST)
    alone = masked_img2img.sound_to_music(tiny_pipe, sound, settings, batch_size=1)
    assert alone.parameters["windows"] == 3
    first = np.asarray(alone.output_spectrogram)[:, :512].astype(int)
    assert np.abs(first - np.asarray(alone.output_spectrogram)[:, 512:1024].astype(int)).max() > 10, \
        "windows must differ, or swapping their noise would go unnoticed"
    for batch in (3, 2):
        together = masked_img2img.sound_to_music(tiny_pipe, sound, settings, batch_size=batch)
        difference = np.abs(np.asarray(together.output_spectrogram, dtype=int) -
                            np.asarray(alone.output_spectrogram, dtype=int))
        assert difference.max() <= 1, f"batch {batch}: pixels differ by up to {difference.max()} levels"
        np.testing.assert_allclose(together.audio, alone.audio, atol=2e-3)
        assert together.parameters == alone.parameters


def test_a_batch_of_windows_with_one_seed_each_matches_the_windows_alone(tiny_pipe):
    """The diffusion step alone, on two different windows: batched latents equal the separate runs."""
    import torch
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(2)]
    maps = [Image.new("L", (64, 64), 120), Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8))]
    masked = masked_img2img.with_scheduler(tiny_pipe, "ddim")

    def run(indices):
        return masked(prompt=["a saxophone"] * len(indices), image=[images[i] for i in indices], strength=0.8,
                      num_inference_steps=5, guidance_scale=8.0, output_type="latent",
                      generator=[torch.Generator().manual_seed(7) for _ in indices],
                      change_map=[maps[i] for i in indices]).images

    together = run([0, 1])
    alone = torch.cat([run([0]), run([1])])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(alone[0], alone[1], atol=1e-2), "the two windows must differ"


@pytest.mark.parametrize("steps,strength,scheduler,expected", [
    (50, 0.8, "repo", 41),  # PNDM's PLMS warm-up repeats a timestep: one more than 50 x 0.8
    (50, 0.8, "ddim", 40),
    (25, 0.8, "dpm++", 20),  # the fast preset
    (2, 1.0, "repo", 3),
])
def test_steps_that_run_follow_the_scheduler(pndm_pipe, steps, strength, scheduler, expected):
    settings = SoundToMusicSettings(steps=steps, strength=strength, scheduler=scheduler)
    assert masked_img2img.steps_that_run(pndm_pipe, settings) == expected


@pytest.mark.slow
def test_progress_and_parameters_report_the_steps_that_ran(pndm_pipe):
    """PNDM at 5 steps x 0.8 runs 5 UNet calls, not 4: progress says so, and so does the result."""
    import torch

    messages = []
    calls = []
    unet_forward = pndm_pipe.unet.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return unet_forward(*args, **kwargs)

    settings = SoundToMusicSettings(prompt="funk drums", steps=5, strength=0.8)
    pndm_pipe.unet.forward = counted
    try:
        with torch.no_grad():
            result = masked_img2img.sound_to_music(pndm_pipe, everyday_sound(2.0), settings,
                                                   on_progress=lambda fraction, message: messages.append(message))
    finally:
        del pndm_pipe.unet.forward
    assert len(calls) == 5 == masked_img2img.steps_that_run(pndm_pipe, settings)
    assert result.parameters["steps_run"] == 5
    assert "window 1 of 1: step 5 of 5" in messages
    assert not any("of 4" in message for message in messages)
