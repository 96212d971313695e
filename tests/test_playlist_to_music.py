"""Playlist to music (AMUSE) on the tiny models: VAE shapes, taste vectors, CFG wiring, validation."""

import shutil

import numpy as np
import pytest
import torch

from pipelines.systems import playlist_to_music as ptm
from pipelines.models import loaders
from pipelines.models.building import tiny
from core.errors import Cancelled, InputError

RATE = 22050
STEPS = 3  # each tiny step is ~0.1 s; the full inversion dominates


def tone(freq: float, seconds: float = 8.0, rate: int = RATE, amp: float = 0.5) -> tuple[np.ndarray, int]:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate


def noise(seconds: float = 8.0, seed: int = 0, rate: int = RATE) -> tuple[np.ndarray, int]:
    return (0.2 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32), rate


@pytest.fixture(scope="module")
def models():
    unet_folder = str(tiny.ensure("amuse_unet"))
    return loaders.ModelBundle(unet=loaders.load_amuse_unet(unet_folder),
                               vae=loaders.load_amuse_vae(str(tiny.ensure("amuse_vae"))),
                               scheduler=loaders.load_amuse_scheduler(unet_folder))


@pytest.fixture(scope="module")
def images():
    return [ptm.track_image(s) for s, _ in (tone(220), tone(1760), noise())]


def run(models, tracks, should_stop=None, on_progress=None, **settings):
    settings.setdefault("steps", STEPS)
    return ptm.playlist_to_music(models.unet, models.vae, models.scheduler, tracks,
                                 ptm.PlaylistToMusicSettings(**settings), should_stop=should_stop,
                                 on_progress=on_progress)


# -- the VAE ----------------------------------------------------------------------------------------


def test_full_size_vae_shapes():
    vae = ptm.PlaylistVAE().eval()
    convs = [m for m in vae.encoder.encoder.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256, 512]
    with torch.no_grad():
        mu, logvar = vae.encode(torch.rand(2, 1, 256, 256))
        features = vae.encoder.encoder(torch.rand(1, 1, 256, 256))
    assert mu.shape == logvar.shape == (2, 32)
    assert features.shape == (1, 512, 8, 8)  # five stride-2 stages: 256 / 32


def test_tiny_vae_round_trips_through_save_pretrained(models, tmp_path):
    models.vae.save_pretrained(tmp_path, safe_serialization=True)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    again = loaders.load_amuse_vae(str(tmp_path))
    x = torch.rand(1, 1, 256, 256)
    with torch.no_grad():
        assert torch.equal(torch.cat(models.vae.encode(x), 1), torch.cat(again.encode(x), 1))
    assert again.config.latent_dim == 32 and len(again.config.hidden_dims) == 5


# -- taste vectors ----------------------------------------------------------------------------------


def test_taste_vector_shape_and_range(models, images):
    per_track = ptm.track_vectors(models.vae, images)
    assert per_track.shape == (3, 64)
    assert torch.allclose(per_track.min(1).values, torch.full((3,), -1.0))
    assert torch.allclose(per_track.max(1).values, torch.full((3,), 1.0))
    taste = ptm.taste_vector(models.vae, images)
    assert taste.shape == (1, 1, 64)
    assert taste.min() >= -1 and taste.max() <= 1


def test_taste_is_the_order_independent_mean_of_tracks(models, images):
    a, b, c = images
    taste = ptm.taste_vector(models.vae, [a, b, c])
    assert torch.allclose(taste, ptm.taste_vector(models.vae, [c, a, b]), atol=1e-6)
    singles = [ptm.taste_vector(models.vae, [x]) for x in images]
    assert torch.allclose(taste, sum(singles) / 3, atol=1e-6)
    assert not torch.allclose(singles[0], singles[1], atol=1e-4)  # tracks are told apart


def test_unconditional_vector_differs_from_a_real_one(models, images):
    uncond = ptm.unconditional_vector(models.vae)
    assert uncond.shape == (1, 1, 64)
    assert (uncond - ptm.taste_vector(models.vae, images[:1])).abs().max() > 1e-3
    # the original's unconditional vector: the encoding of zeros WITHOUT the conditional min-max scaling
    models.vae.eval()
    with torch.no_grad():
        mu, logvar = models.vae.encode(torch.zeros(1, 1, 256, 256))
    assert torch.allclose(uncond, torch.cat([mu, logvar], dim=1).reshape(1, 1, 64), atol=1e-6)
    scaled = ptm.taste_vector(models.vae, torch.zeros(1, 1, 256, 256))
    assert (uncond - scaled).abs().max() > 1e-3


def test_track_slices_middle_first_and_padding():
    first = np.zeros(RATE * 20, np.float32)
    first[RATE * 10:] = 1.0  # second half loud
    size = ptm.PARAMS.window_samples
    assert ptm.track_slice(first, "first").max() == 0.0
    assert ptm.track_slice(first, "middle").size == size and ptm.track_slice(first, "middle").max() == 1.0
    short = ptm.track_slice(np.ones(1000, np.float32))
    assert short.size == size and short[:1000].min() == 1.0 and short[1000:].max() == 0.0


# -- generation -------------------------------------------------------------------------------------


def test_pipeline_output_shapes(models):
    result = run(models, [tone(440), noise(seconds=2.0)])
    assert result.sample_rate == 22050
    assert result.audio.shape == (1, 256 * 512 - 1) and result.audio.dtype == np.float32
    assert np.isfinite(result.audio).all() and np.abs(result.audio).max() > 0
    assert result.image.size == (256, 256) and result.image.mode == "L"
    assert len(result.track_images) == 2 and all(im.size == (256, 256) for im in result.track_images)
    assert result.parameters["steps"] == STEPS and result.parameters["tracks"] == 2
    assert abs(result.duration - 5.94) < 0.01


def test_same_seed_same_audio_other_seed_differs(models):
    tracks = [tone(330)]
    one = run(models, tracks, seed=7)
    again = run(models, tracks, seed=7)
    other = run(models, tracks, seed=8)
    assert np.array_equal(one.audio, again.audio)
    assert np.array_equal(np.asarray(one.image), np.asarray(again.image))
    assert not np.array_equal(np.asarray(one.image), np.asarray(other.image))


@pytest.mark.slow
def test_classifier_free_guidance_is_wired(models):
    seen = []
    hook = models.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["encoder_hidden_states"].clone()), with_kwargs=True
    )
    tracks_a, tracks_b = [tone(220)], [noise(seed=3)]
    try:
        guided = run(models, tracks_a, steps=1, guidance=7.5)
        context = seen[-1]
        assert context.shape == (2, 1, 64)
        assert torch.allclose(context[0:1], ptm.unconditional_vector(models.vae))
        assert torch.allclose(context[1:2], ptm.taste_vector(models.vae, guided.track_images))
        run(models, tracks_a, steps=1, guidance=1.0)  # guidance 1 is the conditional branch alone
        assert seen[-1].shape == (1, 1, 64) and torch.allclose(seen[-1], context[1:2])
    finally:
        hook.remove()
    # guidance 0: only the unconditional branch, so the playlist cannot matter
    assert np.array_equal(run(models, tracks_a, guidance=0.0).audio, run(models, tracks_b, guidance=0.0).audio)
    a, b = run(models, tracks_a, guidance=7.5), run(models, tracks_b, guidance=7.5)
    assert not np.array_equal(np.asarray(a.image), np.asarray(b.image))
    # the scale itself is used, not only the conditional prediction
    assert not np.array_equal(np.asarray(a.image), np.asarray(run(models, tracks_a, guidance=3.0).image))


def test_ddim_sampler_progress_and_cancel(models):
    calls = []
    ddim = run(models, [tone(440)], sampler="ddim", on_progress=lambda f, text: calls.append(f))
    assert calls[-1] == 1.0 and len(calls) == STEPS + 1
    ddpm = run(models, [tone(440)])
    assert not np.array_equal(np.asarray(ddim.image), np.asarray(ddpm.image))
    with pytest.raises(Cancelled):
        run(models, [tone(440)], should_stop=lambda: True)


# -- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tracks": []}, "1 to 10 tracks"),
        ({"tracks": [tone(440)] * 11}, "1 to 10 tracks"),
        ({"tracks": None}, "list of audio files"),
        ({"tracks": [tone(440), (np.zeros(RATE * 3, np.float32), RATE)]}, "Track 2: .*silent"),
        ({"steps": 0}, "Steps"),
        ({"steps": 1001}, "Steps"),
        ({"steps": 2.5}, "Steps"),
        ({"guidance": -1}, "Guidance"),
        ({"guidance": float("nan")}, "Guidance"),
        ({"seed": -1}, "Seed"),
        ({"sampler": "euler"}, "Sampler must be one of"),
        ({"slice_position": "end"}, "Slice position must be one of"),
    ],
)
def test_bad_inputs_raise_input_error(models, kwargs, message):
    tracks = kwargs.pop("tracks", [tone(440)])
    with pytest.raises(InputError, match=message):
        run(models, tracks, **kwargs)


def test_corrupt_track_file_is_named(models, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt junk that is not audio" * 4)
    with pytest.raises(InputError, match="Track 1: .*broken.wav"):
        run(models, [str(bad)])


# -- loading ----------------------------------------------------------------------------------------


def test_loaders_read_pipeline_and_root_layouts(tmp_path):
    from diffusers import DDPMScheduler, UNet2DConditionModel

    folder = tiny.ensure("amuse_unet")
    assert (folder / "unet" / "config.json").is_file() and (folder / "scheduler" / "scheduler_config.json").is_file()
    assert isinstance(loaders.load_amuse_unet(str(folder)), UNet2DConditionModel)
    root = tmp_path / "root_layout"
    shutil.copytree(folder / "unet", root)  # the model at the repo's root, no scheduler
    unet = loaders.load_amuse_unet(str(root))
    assert unet.config.cross_attention_dim == 64 and unet.config.in_channels == 1
    scheduler = loaders.load_amuse_scheduler(str(root))
    assert isinstance(scheduler, DDPMScheduler) and scheduler.config.num_train_timesteps == 1000


def test_wrong_unet_is_refused(models):
    from diffusers import UNet2DConditionModel

    config = dict(models.unet.config)
    config["cross_attention_dim"] = 32
    wrong = UNet2DConditionModel.from_config(config)
    with pytest.raises(InputError, match="cross-attention 32"):
        ptm.playlist_to_music(wrong, models.vae, models.scheduler, [tone(440)], ptm.PlaylistToMusicSettings(steps=1))
