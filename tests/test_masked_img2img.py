"""Mask-based img2img: the change map by hand, the differential schedule, the whole path on tiny models."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from core.errors import InputError
from pipelines.systems.differential_img2img import DifferentialImg2ImgPipeline
from pipelines.systems.masked_img2img import (
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
    with pytest.raises(InputError, match="^" + MaskSettings.label(field) + " must be"):
        make_mask(gray([[0]]), MaskSettings(**{field: value}))


@pytest.mark.parametrize("changes,words", [
    ({"steps": 0}, "Steps"), ({"steps": 101}, "Steps"), ({"steps": 2.5}, "whole number"),
    ({"strength": 1.5}, "Strength"), ({"guidance": -1}, "Guidance"), ({"seed": -3}, "Seed"),
    ({"prompt": "   "}, "prompt"), ({"prompt": "x" * 5000}, "at most"), ({"scheduler": "euler-x"}, "Scheduler must be one of"),
    ({"steps": 2, "strength": 0.1}, "2 step\\(s\\) leave none to run; use at least 10 steps"),
])
def test_generation_settings_are_validated(changes, words):
    with pytest.raises(InputError, match=words):
        SoundToMusicSettings(**changes).validate()


# -- the differential schedule on the tiny model ---------------------------------------------------

def source_image(size=64):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


STEPS, STRENGTH = 5, 0.8  # 4 of the 5 DDIM steps run


def generate(pipe, *, change_map=None, strength=STRENGTH, masked=True):
    """Final latents of one run on the tiny model: the differential pipeline, or diffusers' own img2img."""
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    if masked:
        runner = with_scheduler(pipe, "ddim")
    else:
        components = {**pipe.components, "scheduler": DDIMScheduler.from_config(pipe.scheduler.config)}
        runner = StableDiffusionImg2ImgPipeline(**components, requires_safety_checker=False)
        runner.set_progress_bar_config(disable=True)
    extra = {"change_map": change_map} if masked else {}
    return runner(prompt="a saxophone", image=source_image(), strength=strength, num_inference_steps=STEPS,
                  guidance_scale=8.0, generator=torch.Generator().manual_seed(7), output_type="latent",
                  **extra).images


@pytest.mark.parametrize("value,kept", [(0, 0), (50, 0), (80, 1), (160, 2), (204, 3), (255, 3)])
def test_a_uniform_map_is_img2img_started_later(tiny_pipe, value, kept):
    """Before step i of N, pixels with v > i/N are reset to the source noised with the one shared noise.

    So a uniform map v resets everything before the first ``kept`` steps (i = 1..kept) and nothing
    after: the run is diffusers' img2img over the last N - kept steps, same seed, same noise.
    """
    n = round(STEPS * STRENGTH)
    assert kept == sum(value / 255 > i / n for i in range(1, n))
    uniform = generate(tiny_pipe, change_map=Image.new("L", (64, 64), value))
    later = generate(tiny_pipe, strength=(n - kept) / STEPS, masked=False)
    torch.testing.assert_close(uniform, later, atol=1e-6, rtol=0)


def test_the_map_acts_per_pixel(tiny_pipe):
    """Left half tied to the source for 2 of 4 steps, right half free: each half ends nearer its uniform run."""
    half = Image.new("L", (64, 64), 0)
    half.paste(160, (0, 0, 32, 64))
    mixed = generate(tiny_pipe, change_map=half)
    kept = generate(tiny_pipe, change_map=Image.new("L", (64, 64), 160))
    free = generate(tiny_pipe, change_map=Image.new("L", (64, 64), 0))
    # latent columns 0-2 are all left half, 5-7 all right half (3 and 4 blend in the resize)
    left, right = (..., slice(0, 3)), (..., slice(5, None))
    assert (mixed[left] - kept[left]).norm() < (mixed[left] - free[left]).norm()
    assert (mixed[right] - free[right]).norm() < (mixed[right] - kept[right]).norm()
    assert not torch.allclose(kept, free, atol=1e-3), "the map must change the result"


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


# -- the paper's preprocessing (mode "paper") beside ours ("exact") ---------------------------------------
@pytest.fixture
def everyday(real_data):
    """The mask paper's six everyday sounds (the originals' files, found by conftest's ``real_data``)."""
    return real_data / "mask-paper" / "everyday"


def _latent_map(change_map, resize, side=64):
    import types

    holder = types.SimpleNamespace(_change_map=change_map, _change_map_resize=resize)
    return DifferentialImg2ImgPipeline._latent_map(holder, torch.zeros(1, 4, side, side))[0, 0]


def test_paper_resize_is_bilinear_without_antialiasing():
    # white in columns 3 and 4 of every 8: the two pixels an unantialiased 8x bilinear reads
    stripes = np.zeros((512, 512), np.uint8)
    stripes[:, 3::8] = stripes[:, 4::8] = 255
    paper = _latent_map(Image.fromarray(stripes), "paper")
    smooth = _latent_map(Image.fromarray(stripes), "antialias")
    expected = torch.nn.functional.interpolate(torch.from_numpy(stripes / 255.0).float()[None, None], size=(64, 64),
                                               mode="bilinear", align_corners=False, antialias=False)[0, 0]
    torch.testing.assert_close(paper, expected)
    assert float(paper.min()) == 1.0 and float(smooth.max()) < 0.5


def test_paper_scale_is_the_ceiling_of_the_fourth_root(everyday):
    from pipelines.systems import masked_img2img
    from pipelines.signal import spectrogram

    # on librosa's float scale: 5.5e6 / 32768 = 167.8, ** 0.25 = 3.6 -> 4
    assert masked_img2img.paper_max_value(5.5e6) == pytest.approx(4.0**4 * spectrogram.INT16_SCALE)
    audio, _ = __import__("soundfile").read(everyday / "cuckoo.wav", dtype="float32")
    audio = np.pad(audio, (0, 512 * 441 - 1 - len(audio)))  # exactly one window, as render_windows pads it
    preview = masked_img2img.preview_mask(audio, MaskSettings(preprocessing="paper"))
    # the notebook's image: the mel of librosa's float audio (no int16 scale), its own ceil(max ** 0.25)
    mel = spectrogram.audio_to_mel(audio)[0].numpy() / spectrogram.INT16_SCALE
    max_volume = np.ceil(mel.max() ** 0.25)
    assert max_volume == 7  # cuckoo: 6.17 -> 7, so its loudest pixel sits at level 225, not 252
    notebook = 255 - np.power(mel, 0.25) * 255 / max_volume  # the notebook's image, before uint8 and flip
    ours = np.asarray(preview.input_spectrogram.convert("L"), dtype=np.float64)[::-1]
    assert np.abs(ours - notebook).max() <= 0.5 + 1e-6
    exact = masked_img2img.preview_mask(audio, MaskSettings(preprocessing="exact"))
    assert np.asarray(exact.input_spectrogram.convert("L")).min() == 0  # the exact peak is level 255
    assert np.asarray(preview.input_spectrogram.convert("L")).min() > 0


def test_the_two_modes_differ_in_kept_steps_on_a_real_sound(everyday):
    from pipelines.systems import masked_img2img

    audio, _ = __import__("soundfile").read(everyday / "train_passing.wav", dtype="float32")
    steps = 40
    kept = {}
    for mode, resize in (("paper", "paper"), ("exact", "antialias")):
        mask = masked_img2img.preview_mask(audio, MaskSettings(preprocessing=mode)).mask
        kept[mode] = np.floor(_latent_map(mask, resize).numpy() * steps)  # steps tied to the source
    changed = float(np.mean(kept["paper"] != kept["exact"]))
    assert changed > 0.1, changed


def test_unknown_preprocessing_is_refused():
    with pytest.raises(InputError, match="Preprocessing must be one of .paper., .exact.; got .fancy."):
        MaskSettings(preprocessing="fancy").validate()


def test_preview_mask_takes_the_preprocessing_through_the_api(client, everyday):
    from gradio_client import handle_file

    sound = handle_file(str(everyday / "clock_tick.wav"))
    (paper, _), (exact, _) = (client.predict(sound, 1.0, 0.05, 200, 150, mode, api_name="/preview_mask")
                              for mode in ("paper", "exact"))
    assert np.asarray(Image.open(exact).convert("L")).min() == 0
    assert np.asarray(Image.open(paper).convert("L")).min() > 0
    default, _ = client.predict(sound, 1.0, 0.05, 200, 150, api_name="/preview_mask")  # old callers: the default
    assert np.array_equal(np.asarray(Image.open(default)), np.asarray(Image.open(paper)))
