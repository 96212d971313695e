"""Riffusion text to music and prompt interpolation, on the tiny Riffusion model: windows, continuation,
determinism, interpolation formulas and the settings' checks."""

import math

import numpy as np
import pytest
import torch

from core.errors import Cancelled, InputError
from pipelines.systems import prompt_interpolation as pi
from pipelines.systems import text_to_music as ttm
from pipelines.schema.settings import CONTINUATION_TAIL_SECONDS, PromptInterpolationSettings, TextToMusicSettings, riffusion_windows

SR = 44100


@pytest.fixture(scope="module")
def pipe(studio):
    return studio.manager.get_cpu("riffusion")


def luminance(image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.int16)


# -- settings ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds,count", [(1, 1), (5.0, 1), (8.9, 2), (12, 3), (12.7, 3), (12.9, 4), (60, 16)])
def test_window_count_follows_the_tail(seconds, count):
    """5.12 s, then 5.12 - 1.28 = 3.84 s more per window: 12 s needs three."""
    assert riffusion_windows(seconds, CONTINUATION_TAIL_SECONDS) == count == TextToMusicSettings(seconds=seconds).windows()


@pytest.mark.parametrize("changes,words", [
    ({"prompt": "  "}, "Prompt is empty"),
    ({"seconds": 0.5}, "Length must be a number from 1 to 60"),  # the page's "Length (s)"
    ({"seconds": 61}, "Length must be a number from 1 to 60"),
    ({"seconds": float("nan")}, "Length must be"),
    ({"steps": 0}, "Steps must be a whole number"),
    ({"steps": 2.5}, "Steps must be a whole number"),
    ({"guidance": -1}, "Guidance must be"),
    ({"seed": -3}, "Seed must be"),
    ({"prompt": "x" * 1001}, "at most 1000 characters"),
    ({"seconds": 12, "steps": 1, "continuation_strength": 0.5}, "1 step\\(s\\) leave none to run; use at least 2 steps or a higher continuation strength"),
])
def test_text_to_music_settings_refuse_bad_values(changes, words):
    with pytest.raises(InputError, match=words):
        TextToMusicSettings(**changes).validate()


@pytest.mark.parametrize("changes,words", [
    ({"prompt_a": ""}, "First prompt is empty"),
    ({"prompt_b": " "}, "Second prompt is empty"),
    ({"windows": 1}, "Windows must be a whole number from 2 to 12"),
    ({"windows": 13}, "Windows must be a whole number from 2 to 12"),
    ({"seed_b": 2**32}, "Second seed must be"),
    ({"steps": 101}, "Steps must be"),
])
def test_interpolation_settings_refuse_bad_values(changes, words):
    with pytest.raises(InputError, match=words):
        PromptInterpolationSettings(**changes).validate()


def test_alphas_run_evenly_from_zero_to_one():
    assert PromptInterpolationSettings(windows=5).alphas() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert PromptInterpolationSettings(windows=2).alphas() == [0.0, 1.0]


# -- interpolation formulas --------------------------------------------------------------------------------


def test_slerp_of_orthogonal_unit_vectors_follows_the_arc():
    v0, v1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    for alpha in (0.0, 0.25, 0.5, 1.0):
        expected = torch.tensor([math.cos(alpha * math.pi / 2), math.sin(alpha * math.pi / 2)])
        assert torch.allclose(pi.slerp(alpha, v0, v1), expected, atol=1e-6)


def test_slerp_keeps_the_norm_of_gaussian_noise_where_a_linear_mix_shrinks_it():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 64, 64, generator=g), torch.randn(4, 64, 64, generator=g)
    mid = pi.slerp(0.5, a, b)
    assert abs(float(mid.norm() / a.norm()) - 1) < 0.02
    assert float(pi.lerp(0.5, a, b).norm() / a.norm()) < 0.75  # sqrt(1/2) for independent noises
    assert torch.equal(pi.slerp(0.0, a, b), a) and torch.allclose(pi.slerp(1.0, a, b), b, atol=1e-6)


def test_slerp_of_almost_parallel_vectors_is_the_linear_mix():
    v0 = torch.tensor([1.0, 0.0, 0.0])
    v1 = torch.tensor([1.0, 1e-3, 0.0])
    assert torch.allclose(pi.slerp(0.3, v0, v1), 0.7 * v0 + 0.3 * v1)


def test_lerp_is_start_plus_alpha_times_the_difference():
    start, end = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 2.0])
    assert torch.allclose(pi.lerp(0.25, start, end), torch.tensor([1.5, -1.0]))


# -- continuation ------------------------------------------------------------------------------------------


def test_continuation_source_puts_the_tail_first_and_keeps_only_it():
    from PIL import Image

    columns = np.tile(np.arange(512, dtype=np.uint8) % 251, (512, 1))
    previous = Image.fromarray(columns).convert("RGB")
    source, change_map = ttm.continuation_source(previous, 128)
    shifted = np.asarray(source)[..., 0]
    assert np.array_equal(shifted[:, :128], columns[:, 384:])  # the tail, first
    assert np.array_equal(shifted[:, 128:], columns[:, :384])  # then the start of the previous window
    mask = np.asarray(change_map)
    assert (mask[:, :128] == 255).all() and (mask[:, 128:] == 0).all()
    assert ttm.tail_pixels() == 128 and 128 % 8 == 0  # whole latent columns


def test_twelve_seconds_are_three_windows_each_continuing_the_last(pipe, monkeypatch):
    """Window k's img2img source starts with window k-1's last 1.28 s, and that part is marked kept."""
    import pipelines.systems.masked_img2img as masked_img2img

    real = masked_img2img.with_scheduler
    calls = []

    class Spy:
        """The differential img2img pipeline, recording what each continuation asks of it."""

        def __init__(self, masked):
            self.masked = masked

        def __call__(self, **kwargs):
            calls.append((kwargs["image"], kwargs["change_map"], kwargs["strength"]))
            assert kwargs["change_map_resize"] == "paper"  # no antialiasing: whole latent columns kept
            return self.masked(**kwargs)

        @property
        def interrupt(self):
            return self.masked.interrupt

    monkeypatch.setattr(masked_img2img, "with_scheduler", lambda p, scheduler="repo": Spy(real(p, scheduler)))
    result = ttm.text_to_music(pipe, TextToMusicSettings(seconds=12, steps=3, continuation_strength=0.7))
    assert result.audio.shape == (1, 12 * SR)
    assert result.parameters["windows"] == 3 and result.spectrogram.size == (3 * 512, 512)
    assert len(calls) == 2 and all(strength == 0.7 for *_, strength in calls)
    strip = luminance(result.spectrogram)
    for k, (source, change_map, _) in enumerate(calls, start=1):
        previous = strip[:, (k - 1) * 512: k * 512]
        assert np.array_equal(luminance(source)[:, :128], previous[:, -128:])
        assert (np.asarray(change_map)[:, :128] == 255).all()


@pytest.mark.slow
def test_same_seed_same_audio_another_seed_differs(pipe):
    settings = TextToMusicSettings(seconds=6.0, steps=2, continuation_strength=1.0)
    first = ttm.text_to_music(pipe, settings)
    again = ttm.text_to_music(pipe, settings)
    other = ttm.text_to_music(pipe, TextToMusicSettings(seconds=6.0, steps=2, continuation_strength=1.0, seed=7))
    assert np.array_equal(first.audio, again.audio)
    assert not np.allclose(first.audio, other.audio, atol=1e-3)
    assert abs(float(np.abs(first.audio).max()) - 10 ** (-1 / 20)) < 1e-3  # peak-normalised to -1 dBFS


def test_cancel_stops_text_to_music(pipe):
    with pytest.raises(Cancelled):
        ttm.text_to_music(pipe, TextToMusicSettings(seconds=3, steps=3), should_stop=lambda: True)


@pytest.mark.slow
def test_interpolation_ends_are_the_single_prompt_windows(pipe):
    """alpha 0 is text to music's first window for (prompt A, seed A); alpha 1 the one for (B, seed B)."""
    settings = PromptInterpolationSettings(prompt_a="church bells", prompt_b="heavy metal guitar", seed_a=3, seed_b=9,
                                           windows=3, steps=2, guidance=7.0)
    walk = pi.interpolate_prompts(pipe, settings)
    single_a = ttm.text_to_music(pipe, TextToMusicSettings(prompt="church bells", seconds=5, steps=2, seed=3))
    single_b = ttm.text_to_music(pipe, TextToMusicSettings(prompt="heavy metal guitar", seconds=5, steps=2, seed=9))
    strip = luminance(walk.spectrogram)
    assert strip.shape == (512, 3 * 512) and walk.alphas == [0.0, 0.5, 1.0]
    assert np.abs(strip[:, :512] - luminance(single_a.spectrogram)).max() <= 1
    assert np.abs(strip[:, -512:] - luminance(single_b.spectrogram)).max() <= 1
    middle = strip[:, 512:1024]
    assert np.abs(middle - strip[:, :512]).mean() > 1 and np.abs(middle - strip[:, -512:]).mean() > 1
    window, step = 512 * 441 - 1, 512 * 441 - 1 - round(0.2 * SR)
    assert walk.audio.shape == (1, window + 2 * step)
