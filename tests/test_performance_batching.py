"""Batched windows give the music the windows give one at a time (sound to music and style
interpolation, the diffusion step alone), and the batch size follows the device and its free memory."""

import numpy as np
import pytest

from pipelines.systems import masked_img2img
from pipelines.schema.settings import SoundToMusicSettings
from render_checks import everyday_sound, sound_to_music

FAST = dict(steps=4, strength=0.75)  # 3 DDIM steps per window on the tiny model


def assert_same_sound(a: np.ndarray, b: np.ndarray) -> None:
    """The same music up to Griffin-Lim's answer to pixels one 8-bit level apart (batched float rounding):
    that moves a few samples by up to a few percent of full scale (seen: 0.0107 at 103, 0.0029 at 595 and
    0.036 at 850 of 529,200 samples, and 0.6% of samples over 0.01, depending on the tiny models' build),
    so the bound is on how many samples move by more than 1% (under 2%) and on the mean difference, not on
    the worst sample. Two different windows' audio differ by ~0.1 on average."""
    difference = np.abs(a - b)
    assert difference.mean() < 1e-3, difference.mean()
    assert np.mean(difference > 1e-2) < 2e-2, np.mean(difference > 1e-2)


@pytest.mark.slow  # about 25 s: nine windows on the tiny model
def test_batched_windows_give_the_same_music_as_one_at_a_time(tiny_pipe):
    """Same seed, same audio: 3 windows one at a time, in one batch, and as a batch of 2 plus 1."""
    sound = everyday_sound(12.0)  # 3 windows of 5.12 s
    settings = SoundToMusicSettings(prompt="funk drums", **FAST)
    alone = sound_to_music(tiny_pipe, sound, settings, batch_size=1)
    assert alone.parameters["windows"] == 3
    first = np.asarray(alone.output_spectrogram)[:, :512].astype(int)
    assert np.abs(first - np.asarray(alone.output_spectrogram)[:, 512:1024].astype(int)).max() > 10, \
        "windows must differ, or swapping their noise would go unnoticed"
    for batch in (3, 2):
        together = sound_to_music(tiny_pipe, sound, settings, batch_size=batch)
        difference = np.abs(np.asarray(together.output_spectrogram, dtype=int) -
                            np.asarray(alone.output_spectrogram, dtype=int))
        assert difference.max() <= 1, f"batch {batch}: pixels differ by up to {difference.max()} levels"
        assert_same_sound(together.audio, alone.audio)
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


@pytest.mark.slow
def test_batched_style_windows_give_the_same_music_as_one_at_a_time(studio):
    """Style interpolation: 3 windows one at a time and as a batch of 2 plus 1, same seed, same audio."""
    from pipelines.models import style_embedding
    from pipelines.systems import style_interpolation
    from pipelines.schema.settings import StyleInterpolationSettings

    pipe = studio.manager.get_cpu("riffusion")
    pipe.set_progress_bar_config(disable=True)
    styles = style_embedding.StyleLibrary(studio.registry.resolve("music_styles").location).get(["jazz"])
    settings = StyleInterpolationSettings(steps=4, strength=0.7)
    sound = everyday_sound(12.0)
    alone = style_interpolation.apply_styles(pipe, sound, styles, settings=settings, device="cpu", batch_size=1)
    together = style_interpolation.apply_styles(pipe, sound, styles, settings=settings, device="cpu", batch_size=2)
    first = np.asarray(alone.output_spectrogram, dtype=int)
    assert np.abs(first[:, :512] - first[:, 512:1024]).max() > 10, "windows must differ"
    assert np.abs(np.asarray(together.output_spectrogram, dtype=int) - first).max() <= 1
    assert_same_sound(together.audio, alone.audio)


def test_window_batch_size_follows_the_device_and_its_free_memory(monkeypatch):
    import torch

    from core.errors import StudioError
    from pipelines.signal.windows import window_batch_size

    monkeypatch.delenv("STUDIO_WINDOW_BATCH", raising=False)
    assert window_batch_size("cpu", 5) == 1 and window_batch_size("mps", 5) == 1
    GiB = 2**30
    memory = {"free": 30 * GiB, "total": 80 * GiB}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (memory["free"], memory["total"]))
    assert window_batch_size("cuda", 12) == 4  # at most 4
    assert window_batch_size("cuda", 3) == 3  # never more than the sound has
    memory["free"] = int(2.5 * GiB)
    assert window_batch_size("cuda", 12) == 2  # 1 GiB of activations a window
    memory.update(free=12 * GiB, total=16 * GiB)
    assert window_batch_size("cuda", 12) == 1  # a T4-class card: one at a time
    monkeypatch.setenv("STUDIO_WINDOW_BATCH", "3")
    assert window_batch_size("cpu", 12) == 3 and window_batch_size("cpu", 2) == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("STUDIO_WINDOW_BATCH", bad)
        with pytest.raises(StudioError, match="STUDIO_WINDOW_BATCH must be a whole number"):
            window_batch_size("cpu", 4)
