"""Mask-based img2img: the change map by hand, the differential schedule, the whole path on tiny models."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from core.errors import InputError
from pipelines.differential_img2img import DifferentialImg2ImgPipeline
from pipelines.masked_img2img import (
    SoundToMusicSettings,
    MaskSettings,
    make_mask,
    with_scheduler,
)

SKIP = -1.0


def gray(values):
    return Image.fromarray(np.array(values, dtype=np.uint8), mode="L")


def pixels(image):
    return np.asarray(image, dtype=np.int32)


# -- the change map, one step at a time ------------------------------------------------------------

def test_invert_blend_by_hand():
    image = gray([[0, 100, 255]])
    only_invert = MaskSettings(invert=1.0, brightness=SKIP, contrast=SKIP, downshift=SKIP)
    assert pixels(make_mask(image, only_invert)).tolist() == [[255, 155, 0]]
    half = MaskSettings(invert=0.5, brightness=SKIP, contrast=SKIP, downshift=SKIP)
    # blend(x, 255 - x, 0.5) = 127.5 for every pixel; PIL rounds to 127 or 128
    assert np.all(np.abs(pixels(make_mask(image, half)) - 127.5) <= 0.5)


def test_brightness_scales_values():
    image = gray([[0, 100, 200]])
    settings = MaskSettings(invert=SKIP, brightness=0.5, contrast=SKIP, downshift=SKIP)
    assert pixels(make_mask(image, settings)).tolist() == [[0, 50, 100]]


def test_contrast_matches_pil_about_the_mean():
    image = gray([[10, 20, 30, 40]])
    settings = MaskSettings(invert=SKIP, brightness=SKIP, contrast=2.0, downshift=SKIP)
    # PIL's contrast pivots on the rounded mean of the grayscale image (25): 25 + 2 * (x - 25)
    assert pixels(make_mask(image, settings)).tolist() == [[0, 15, 35, 55]]
    assert pixels(make_mask(image, settings)).tolist() == pixels(ImageEnhance.Contrast(image).enhance(2.0)).tolist()


def test_downshift_subtracts_above_the_threshold_and_zeroes_below():
    image = gray([[0, 100, 150, 151, 200, 255]])
    settings = MaskSettings(invert=SKIP, brightness=SKIP, contrast=SKIP, downshift=150)
    assert pixels(make_mask(image, settings)).tolist() == [[0, 0, 0, 1, 50, 105]]


def test_negative_factors_skip_their_step():
    image = gray([[0, 80, 255]])
    all_skipped = MaskSettings(invert=SKIP, brightness=SKIP, contrast=SKIP, downshift=SKIP)
    assert pixels(make_mask(image, all_skipped)).tolist() == [[0, 80, 255]]
    zero_downshift = MaskSettings(invert=SKIP, brightness=SKIP, contrast=SKIP, downshift=0)
    assert pixels(make_mask(image, zero_downshift)).tolist() == [[0, 80, 255]]


def test_default_chain_in_order():
    image = gray([[0, 128, 250]])
    defaults = MaskSettings()
    assert (defaults.invert, defaults.brightness, defaults.contrast, defaults.downshift) == (1.0, 0.05, 200.0, 150.0)
    expected = Image.blend(image, Image.eval(image, lambda p: 255 - p), 1.0)
    expected = ImageEnhance.Brightness(expected).enhance(0.05)
    expected = ImageEnhance.Contrast(expected).enhance(200.0)
    e = pixels(expected)
    e = np.where(e > 150, e - 150, 0)
    assert pixels(make_mask(image, defaults)).tolist() == e.tolist()


@pytest.mark.parametrize("field,value", [("invert", 1.5), ("brightness", -2), ("contrast", 5000), ("downshift", 300),
                                         ("downshift", float("nan"))])
def test_mask_values_out_of_range_are_refused(field, value):
    with pytest.raises(InputError, match=field):
        make_mask(gray([[0]]), MaskSettings(**{field: value}))


@pytest.mark.parametrize("changes,words", [
    ({"steps": 0}, "Steps"), ({"steps": 101}, "Steps"), ({"steps": 2.5}, "whole number"),
    ({"strength": 1.5}, "Strength"), ({"guidance": -1}, "Guidance"), ({"seed": -3}, "Seed"),
    ({"prompt": "   "}, "prompt"), ({"prompt": "x" * 5000}, "at most"), ({"scheduler": "euler-x"}, "scheduler"),
    ({"steps": 2, "strength": 0.1}, "at least one"),
])
def test_generation_settings_are_validated(changes, words):
    with pytest.raises(InputError, match=words):
        SoundToMusicSettings(**changes).validate()


# -- the differential schedule on the tiny model ---------------------------------------------------

@pytest.fixture(scope="module")
def tiny_pipe(studio):
    pipe = studio.manager.get_cpu("mask_model")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def source_image(size=64):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def run(pipe, change_map, **kwargs):
    recorded = []
    masked = with_scheduler(pipe, "ddim")
    original = masked._blend_with_source

    def spy(next_step, latents):
        out = original(next_step, latents)
        recorded.append((next_step, out.clone()))
        return out

    masked._blend_with_source = spy
    image = masked(prompt="a saxophone", image=source_image(), strength=0.8, num_inference_steps=5,
                   guidance_scale=8.0, generator=torch.Generator().manual_seed(7), change_map=change_map,
                   output_type="np", **kwargs).images[0]
    return masked, image, recorded


def test_all_ones_map_follows_the_noised_source(tiny_pipe):
    masked, _, recorded = run(tiny_pipe, Image.new("L", (64, 64), 255))
    timesteps = masked._run_timesteps
    assert len(timesteps) == 4  # 5 steps at strength 0.8
    checked = 0
    for next_step, latents in recorded:
        if next_step < len(timesteps):
            expected = masked.scheduler.add_noise(masked._source_latents, masked._shared_noise,
                                                  timesteps[next_step:next_step + 1])
            assert torch.allclose(latents, expected, atol=1e-6)
            checked += 1
    assert checked == 3


def test_all_zeros_map_is_plain_img2img(tiny_pipe):
    _, masked_image, _ = run(tiny_pipe, Image.new("L", (64, 64), 0))
    plain = with_scheduler(tiny_pipe, "ddim")
    plain_image = plain(prompt="a saxophone", image=source_image(), strength=0.8, num_inference_steps=5,
                        guidance_scale=8.0, generator=torch.Generator().manual_seed(7), output_type="np").images[0]
    assert np.allclose(masked_image, plain_image, atol=1e-6)
    _, ones_image, _ = run(tiny_pipe, Image.new("L", (64, 64), 255))
    assert not np.allclose(ones_image, plain_image, atol=1e-3), "the map must change the result"


def test_half_map_keeps_pixels_for_half_the_steps(tiny_pipe):
    change_map = Image.new("L", (64, 64), 0)
    change_map.paste(160, (0, 0, 32, 64))  # left half 0.63: tied to the source for steps 1..2 of 4
    masked, _, recorded = run(tiny_pipe, change_map)
    timesteps = masked._run_timesteps
    for next_step, latents in recorded[:-1]:
        expected = masked.scheduler.add_noise(masked._source_latents, masked._shared_noise,
                                              timesteps[next_step:next_step + 1])
        # latent columns 0-2 are all left half, 5-7 all right half (3 and 4 blend in the resize)
        left_tied = torch.allclose(latents[..., :3], expected[..., :3], atol=1e-6)
        right_tied = torch.allclose(latents[..., 5:], expected[..., 5:], atol=1e-6)
        assert left_tied == (160 / 255 > next_step / 4)
        assert not right_tied


def test_should_stop_cancels_the_loop(tiny_pipe):
    calls = []

    def stop():
        calls.append(1)
        return True

    masked = with_scheduler(tiny_pipe, "ddim")
    masked(prompt="x", image=source_image(), strength=1.0, num_inference_steps=6,
           generator=torch.Generator().manual_seed(0), change_map=None, should_stop=stop, output_type="np")
    assert masked.interrupt and len(calls) == 1


def test_pipeline_is_built_from_shared_components(tiny_pipe):
    masked = with_scheduler(tiny_pipe, "dpm++")
    assert isinstance(masked, DifferentialImg2ImgPipeline)
    assert masked.unet is tiny_pipe.unet and masked.vae is tiny_pipe.vae
    assert masked.scheduler is not tiny_pipe.scheduler
    assert type(masked.scheduler).__name__ == "DPMSolverMultistepScheduler"
