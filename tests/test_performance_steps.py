"""The honest step count: the steps that run follow the scheduler (PNDM's warm-up, DPM-Solver's fast
preset), and progress and the result's parameters report them."""

import json
from pathlib import Path

import pytest

from pipelines.systems import masked_img2img
from pipelines.schema.settings import SoundToMusicSettings
from render_checks import everyday_sound, sound_to_music

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "pipelines" / "models" / "building" / "fullsize_configs.json"


@pytest.fixture(scope="module")
def pndm_pipe(tiny_pipe):
    """The tiny model with the real riffusion repo's scheduler (PNDM, from its verbatim config)."""
    from diffusers import PNDMScheduler

    config = json.loads(REPO_CONFIGS.read_text())["riffusion--riffusion-model-v1"]
    scheduler = PNDMScheduler.from_config(config["scheduler/scheduler_config.json"]["content"])
    pipe = type(tiny_pipe)(**{**tiny_pipe.components, "scheduler": scheduler}, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


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
            result = sound_to_music(pndm_pipe, everyday_sound(2.0), settings,
                                                   on_progress=lambda fraction, message: messages.append(message))
    finally:
        del pndm_pipe.unet.forward
    assert len(calls) == 5 == masked_img2img.steps_that_run(pndm_pipe, settings)
    assert result.parameters["steps_run"] == 5
    assert "window 1 of 1: step 5 of 5" in messages
    assert not any("of 4" in message for message in messages)


def test_the_fast_preset_is_dpm_solver_at_25_steps_and_half_the_unet_calls(pndm_pipe):
    from core.errors import InputError

    paper, fast = SoundToMusicSettings.preset("paper"), SoundToMusicSettings.preset("fast", seed=3)
    assert paper == SoundToMusicSettings()  # the paper preset is the defaults
    assert (fast.steps, fast.scheduler, fast.seed, fast.strength) == (25, "dpm++", 3, 0.8)
    assert masked_img2img.steps_that_run(pndm_pipe, paper) == 41
    assert masked_img2img.steps_that_run(pndm_pipe, fast) == 20
    with pytest.raises(InputError, match="Unknown preset 'turbo'"):
        SoundToMusicSettings.preset("turbo")
