"""Each recipe on tiny models and toy data: it writes what the app loads, and what it writes changes the
app's output (those runs load models and tabs: marked slow, as is overfitting); its losses and errors
run fast."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from core.errors import InputError
from training_toys import ROOT, base_flags


# -- MusicTI style ---------------------------------------------------------------------------------------


@pytest.mark.slow  # tens of seconds: loads the tiny models, trains, runs the tab
def test_style_recipe_writes_a_style_the_tab_lists_and_that_changes_its_output(tmp_path, clips, monkeypatch):
    from pipelines.schema.settings import StyleInterpolationSettings
    from pipelines.models.style_embedding import save_style
    from pipelines.studio import Studio
    from training import common, style

    styles = tmp_path / "styles"
    recipe = style.setup(base_flags(clips, styles / "learned", 3, "--resolution", "256", "--learning-rate", "5e-2"))
    save_style(recipe.trainable, styles / "untrained", "untrained")  # the same network before any step
    summary = recipe.train()
    assert summary.steps == 3 and len(summary.losses) == 3 and all(np.isfinite(summary.losses))
    assert [step for step, _ in common.read_losses(styles / "learned")] == [1, 2, 3]

    monkeypatch.setenv("STUDIO_MODEL_MUSIC_STYLES", str(styles))
    studio = Studio(profile="tiny", device="cpu")
    assert studio.style_names() == ["learned", "untrained"]
    settings = StyleInterpolationSettings(steps=3)
    content = str(clips / "tone0.wav")
    learned = studio.style_interpolation(content, ["learned"], None, settings)
    untrained = studio.style_interpolation(content, ["untrained"], None, settings)
    assert np.isfinite(learned.audio).all()
    assert not np.array_equal(np.asarray(learned.output_spectrogram), np.asarray(untrained.output_spectrogram))


# -- TechJam LoRA ----------------------------------------------------------------------------------------


@pytest.mark.slow  # tens of seconds: loads the tiny models, trains, runs the tab
def test_lora_recipe_writes_diffusers_lora_keys_that_the_app_loads(tmp_path, frames, monkeypatch):
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import Attention
    from safetensors.torch import load_file

    from pipelines.models.building import tiny
    from pipelines.systems.music_to_image import MusicToImageSettings
    from pipelines.studio import Studio
    from training import lora

    out = tmp_path / "lora"
    # a large rate so that two steps move the zero-initialised up matrices visibly
    assert lora.main(base_flags(frames, out, 2, "--resolution", "64", "--learning-rate", "0.05")) == 0
    state = load_file(str(out / lora.LORA_FILE))

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(tiny.ensure("sd") / "unet"))
    expected = set()
    for name, module in unet.named_modules():
        if isinstance(module, Attention):
            for proj, linear in (("to_q", module.to_q), ("to_k", module.to_k), ("to_v", module.to_v),
                                 ("to_out.0", module.to_out[0])):
                expected |= {f"unet.{name}.{proj}.lora.down.weight", f"unet.{name}.{proj}.lora.up.weight"}
                assert state[f"unet.{name}.{proj}.lora.down.weight"].shape == (4, linear.in_features)
                assert state[f"unet.{name}.{proj}.lora.up.weight"].shape == (linear.out_features, 4)
    assert set(state) == expected and expected
    assert any(v.abs().max() > 0 for k, v in state.items() if k.endswith("up.weight"))

    monkeypatch.setenv("STUDIO_MODEL_M2I_LORA", str(out))
    studio = Studio(profile="tiny", device="cpu")
    on = studio.music_to_image(None, "a red square", MusicToImageSettings(steps=2, width=64, height=64, lora_scale=1.0))
    off = studio.music_to_image(None, "a red square", MusicToImageSettings(steps=2, width=64, height=64, lora_scale=0.0))
    assert on.parameters["lora"] is not None
    assert not np.array_equal(np.asarray(on.image), np.asarray(off.image))


# -- AMUSE ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def amuse_models(tmp_path_factory, clips):
    from training import amuse_unet, amuse_vae

    root = tmp_path_factory.mktemp("amuse")
    assert amuse_vae.main(base_flags(clips, root / "vae", 2, "--batch-size", "3")) == 0
    assert amuse_unet.main(base_flags(clips, root / "unet", 1, "--vae", root / "vae", "--batch-size", "1")) == 0
    return root / "vae", root / "unet"


@pytest.mark.slow  # tens of seconds: loads the tiny models, trains, runs the tab
def test_amuse_recipes_make_the_playlist_tab_work_on_the_hub_profile(amuse_models, clips, monkeypatch):
    from pipelines.systems.playlist_to_music import PlaylistToMusicSettings
    from pipelines.studio import Studio

    vae, unet = amuse_models
    assert (vae / "config.json").is_file() and (unet / "unet" / "config.json").is_file()
    monkeypatch.setenv("STUDIO_MODEL_AMUSE_VAE", str(vae))
    monkeypatch.setenv("STUDIO_MODEL_AMUSE_UNET", str(unet))
    tracks = [str(clips / "tone0.wav"), str(clips / "tone2.wav")]
    settings = PlaylistToMusicSettings(steps=2)
    trained = Studio(profile="hub", device="cpu").playlist_to_music(tracks, settings)  # no tiny profile
    assert np.isfinite(trained.audio).all() and trained.audio.shape[-1] > 0
    monkeypatch.delenv("STUDIO_MODEL_AMUSE_VAE")
    monkeypatch.delenv("STUDIO_MODEL_AMUSE_UNET")
    tiny = Studio(profile="tiny", device="cpu").playlist_to_music(tracks, settings)
    assert not np.array_equal(np.asarray(trained.image), np.asarray(tiny.image))


def test_amuse_unet_needs_a_vae_folder(tmp_path, clips):
    from training import amuse_unet

    with pytest.raises(InputError, match="not a playlist VAE folder"):
        amuse_unet.setup(base_flags(clips, tmp_path / "u", 1, "--vae", tmp_path))


def test_vae_loss_is_mse_plus_weighted_kl():
    from training.amuse_vae import vae_loss

    x = torch.rand(2, 1, 4, 4)
    mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
    total, mse, kld = vae_loss(x, x, mu, logvar, 0.5)
    assert float(total) == 0 and float(kld) == 0
    mu = torch.ones(2, 3)
    total, mse, kld = vae_loss(x * 0, x, mu, logvar, 0.5)
    assert float(kld) == pytest.approx(1.5) and float(total) == pytest.approx(float((x**2).mean()) + 0.75)


# -- overfitting, the console ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("recipe, extra, steps", [
    ("amuse_vae", ["--batch-size", "3", "--learning-rate", "5e-3"], 25),
    ("style", ["--resolution", "128", "--learning-rate", "5e-2"], 20),
])
def test_loss_goes_down_on_a_toy_set(recipe, extra, steps, tmp_path, clips):
    import importlib

    module = importlib.import_module(f"training.{recipe}")
    prepared = module.setup(base_flags(clips, tmp_path / recipe, steps, *extra))
    before = prepared.evaluate()
    prepared.train()
    after = prepared.evaluate()
    assert after < before, (before, after)


@pytest.mark.slow
def test_lora_loss_goes_down_on_a_batch_it_can_overfit(tmp_path, frames):
    """The recipe's loss and adapter on one fixed batch (same noise and timesteps every step).

    Not ``evaluate()`` around ``train()`` as for the other recipes: in the tiny random UNet the
    attention the LoRA adapts is a small part of the output, and with fresh noise each step 20-40
    steps move the mean loss (about 1.12) less than its sampling noise (seen both ways)."""
    import torch

    from training import lora

    prepared = lora.setup(base_flags(frames, tmp_path / "lora", 1, "--resolution", "64"))
    batch = next(iter(torch.utils.data.DataLoader(prepared.dataset, batch_size=3, collate_fn=prepared.collate_fn)))
    adapter = [p for p in prepared.trainable.parameters() if p.requires_grad]
    assert adapter and all("lora" in n for n, p in prepared.trainable.named_parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(adapter, lr=1e-2)

    def fixed_loss():
        return prepared.loss_fn(prepared.trainable, batch, torch.Generator().manual_seed(0))

    with torch.no_grad():
        before = fixed_loss().item()
    for _ in range(30):
        optimizer.zero_grad()
        fixed_loss().backward()
        optimizer.step()
    with torch.no_grad():
        after = fixed_loss().item()
    assert after < 0.98 * before, (before, after)

@pytest.mark.slow
def test_a_recipes_console_has_the_apps_quiet_filters(tmp_path, clips):
    """``python -m training.style``: no transformers torchvision note (the PIL fallback is intended)."""
    command = [sys.executable, "-m", "training.style", *base_flags(clips, tmp_path / "style", 1, "--resolution", "64")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "style: 1 steps" in done.stdout + done.stderr
    assert "torchvision" not in done.stdout + done.stderr
