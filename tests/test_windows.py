"""Windows: exact lengths, equal-power crossfades, identity stitching, mono and stereo."""

import numpy as np
import pytest

from core.errors import InputError
from pipelines.signal.spectrogram import AUDIO_DIFFUSION, RIFFUSION
from pipelines.signal.windows import crossfade_curves, render_windows, split_windows, stitch_windows

SMALL = (1000, 100)  # (window samples, sample rate): 10 s windows of a 100 Hz toy rate


@pytest.mark.parametrize("n", [1, 999, 1000, 1001, 1800, 1801, 5432])
@pytest.mark.parametrize("stereo", [False, True])
def test_exact_length_and_layout(n, stereo):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((2, n) if stereo else n).astype(np.float32)
    windows, plan = split_windows(x, SMALL, overlap_s=2.0)  # 200-sample overlap
    assert windows.shape[-1] == 1000 and windows.shape[-2 if stereo else 1:-1] == ((2,) if stereo else ())
    assert plan.padded_length >= n and plan.padded_length - plan.step < max(n, plan.window)
    y = stitch_windows(list(windows), plan)
    assert y.shape == x.shape


def test_windows_hold_the_right_samples():
    x = np.arange(2500, dtype=np.float32)
    windows, plan = split_windows(x, SMALL, overlap_s=2.0)
    assert plan.starts == (0, 800, 1600)
    np.testing.assert_array_equal(windows[1], x[800:1800])
    np.testing.assert_array_equal(windows[2][:900], x[1600:])
    assert (windows[2][900:] == 0).all()  # the last window is zero padded


@pytest.mark.parametrize("stereo", [False, True])
def test_identity_stitching_gives_back_the_input(stereo):
    x = np.random.default_rng(0).standard_normal((2, 4321) if stereo else 4321).astype(np.float32)
    windows, plan = split_windows(x, SMALL, overlap_s=2.0)
    np.testing.assert_allclose(stitch_windows(windows, plan), x, atol=1e-5)


def test_identity_on_riffusion_windows():
    sr = RIFFUSION.sample_rate
    x = np.sin(2 * np.pi * 220 * np.arange(int(12.3 * sr)) / sr).astype(np.float32)
    windows, plan = split_windows(x, RIFFUSION, overlap_s=0.2)
    assert windows.shape[1] == RIFFUSION.window_samples and len(windows) == 3
    np.testing.assert_allclose(stitch_windows(windows, plan), x, atol=1e-5)
    _, plan_a = split_windows(np.zeros(AUDIO_DIFFUSION.sample_rate * 20), AUDIO_DIFFUSION)
    assert plan_a.window == 256 * 512 - 1


def test_crossfade_curves_are_equal_power():
    out, inn = crossfade_curves(441)
    np.testing.assert_allclose(out**2 + inn**2, 1.0, atol=1e-12)
    assert out[0] > 0.99 and inn[0] < 0.01 and np.all(np.diff(out) < 0)
    np.testing.assert_allclose(out, inn[::-1], atol=1e-12)


def test_uncorrelated_windows_keep_constant_power():
    """Windows that come back with unrelated content (as after Griffin-Lim): no dip, no swell."""
    rng = np.random.default_rng(1)
    n, overlap_s = 60_000, 50.0  # 5000-sample overlaps give stable power estimates
    windows, plan = split_windows(np.zeros(n, np.float32), (20_000, 100), overlap_s=overlap_s)
    fresh = [rng.standard_normal(plan.window) for _ in windows]  # unit power, independent
    for mode in ("adaptive", "power"):
        y = stitch_windows(fresh, plan, mode=mode)
        s, ov = plan.starts[1], plan.overlap
        assert np.mean(y[s : s + ov] ** 2) == pytest.approx(1.0, abs=0.08)
        mid = slice(s + 2 * ov // 5, s + 3 * ov // 5)
        assert np.mean(y[mid] ** 2) == pytest.approx(1.0, abs=0.15)


def test_plain_power_law_swells_on_identical_windows():
    """Why the adaptive mode exists: cos + sin on identical content peaks at +3 dB."""
    x = np.ones(3000, np.float32)
    windows, plan = split_windows(x, SMALL, overlap_s=2.0)
    y = stitch_windows(windows, plan, mode="power")
    assert y.max() == pytest.approx(np.sqrt(2), rel=1e-3)
    np.testing.assert_allclose(stitch_windows(windows, plan, mode="adaptive"), x, atol=1e-6)


def test_processed_windows_of_other_lengths_are_fitted():
    x = np.random.default_rng(2).standard_normal(2500).astype(np.float32)
    windows, plan = split_windows(x, SMALL, overlap_s=1.0)
    y = stitch_windows([w[:-1] for w in windows], plan)  # a codec that returns one sample less
    assert y.shape == x.shape


def test_bad_arguments():
    with pytest.raises(InputError):
        split_windows(np.zeros(100), SMALL, overlap_s=6.0)  # more than half a window
    with pytest.raises(InputError):
        split_windows(np.zeros((2, 2, 100)), SMALL)
    with pytest.raises(InputError):
        split_windows(np.zeros(0), SMALL)
    windows, plan = split_windows(np.zeros(2500), SMALL)
    with pytest.raises(InputError):
        stitch_windows(list(windows)[:-1], plan)


# -- the one window loop ---------------------------------------------------------------------------


def two_windows_of_noise():
    """6 s of noise at 44.1 kHz: two riffusion windows."""
    return (0.3 * np.random.default_rng(3).standard_normal(6 * RIFFUSION.sample_rate)).astype(np.float32)


@pytest.mark.slow
def test_render_windows_calls_render_in_order_and_keeps_the_length():
    seen, progress = [], []

    def render(index, image):
        seen.append((index, image.size))
        return image

    x = two_windows_of_noise()
    done = render_windows(x, RIFFUSION, render, on_progress=lambda f, m: progress.append((f, m)))
    assert seen == [(0, (512, 512)), (1, (512, 512))]
    assert progress == [(0.0, "window 1 of 2"), (0.5, "window 2 of 2"), (1.0, "stitching")]
    assert done.audio.shape == (1, x.size) and done.audio.dtype == np.float32
    assert len(done.inputs) == len(done.outputs) == len(done.plan.starts) == 2
    # the outputs are what gets inverted: mono spectrograms carrying the inputs' metadata
    assert done.outputs[0].mode == "RGB" and done.outputs[0].info == done.inputs[0].info


def test_render_windows_without_inversion_returns_the_renders_as_they_are():
    done = render_windows(two_windows_of_noise(), RIFFUSION, lambda i, image: image.convert("L"), to_audio=False)
    assert done.audio is None and [o.mode for o in done.outputs] == ["L", "L"]


def test_render_windows_refuses_stereo():
    with pytest.raises(InputError, match="mono"):
        render_windows(np.zeros((2, 1000), np.float32), RIFFUSION, lambda i, image: image)


@pytest.mark.slow
def test_the_three_windowed_paths_share_render_windows(studio, monkeypatch):
    """Sound to music, style interpolation and the mask preview are render_windows plus their render."""
    import types

    from pipelines.systems import masked_img2img, style_interpolation

    from pipelines.models import style_embedding
    from pipelines.signal.audio import peak_normalize
    from pipelines.signal.spectrogram import side_by_side

    x = two_windows_of_noise()
    identity = render_windows(x, RIFFUSION, lambda i, image: image)
    expected_audio = peak_normalize(identity.audio, headroom_db=1.0)

    class Echo:
        """Diffusion that gives back its input image: both pipelines must reduce to the plain loop."""

        interrupt = False
        _run_timesteps = ()

        def __call__(self, *, image, **_):  # a batch of window images (one per window when not batched)
            return types.SimpleNamespace(images=list(image))

    monkeypatch.setattr(masked_img2img, "with_scheduler", lambda pipe, scheduler: Echo())
    # _style_windows(pipe, scheduler, conditioner, images, ...) -> (images, timesteps)
    monkeypatch.setattr(style_interpolation, "_style_windows", lambda *args: (args[3], []))
    exact = masked_img2img.MaskSettings(preprocessing="exact")  # the window's own peak, as render_windows does
    settings = masked_img2img.SoundToMusicSettings(mask=exact)
    sound = masked_img2img.finish(masked_img2img.render_with_model(None, x, settings), settings)
    np.testing.assert_array_equal(sound.audio, expected_audio)
    assert sound.input_spectrogram.tobytes() == side_by_side(identity.inputs).tobytes()
    assert sound.output_spectrogram.tobytes() == side_by_side(identity.outputs).tobytes()

    pipe = studio.manager.get_cpu("riffusion")
    styles = style_embedding.StyleLibrary(studio.registry.resolve("music_styles").location).get(["jazz"])
    styled = style_interpolation.apply_styles(pipe, x, styles, device="cpu")
    np.testing.assert_array_equal(styled.audio, expected_audio)
    assert styled.output_spectrogram.tobytes() == side_by_side(identity.outputs).tobytes()

    mask = exact
    preview = masked_img2img.preview_mask(x, mask)
    spectrogram_strip, mask_strip = preview.input_spectrogram, preview.mask
    masks = render_windows(x, RIFFUSION, lambda i, image: masked_img2img.make_mask(image, mask), to_audio=False)
    assert spectrogram_strip.tobytes() == side_by_side(identity.inputs).tobytes()
    assert mask_strip.tobytes() == side_by_side(masks.outputs).tobytes()
