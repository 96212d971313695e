"""Training recipes on tiny models and toy data made here: they run, resume exactly, write what the app
loads, and what they write changes the app's output (those runs load models and tabs: marked slow,
as are overfitting and the two-process run; `make test` runs them, `make test-fast` keeps the
errors, the losses and the exact resume)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from core.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
RATE = 44100


def write_tone(path: Path, freq: float, seconds: float = 2.5, rate: int = RATE) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.05 * np.sin(2 * np.pi * 3 * freq * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), rate)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Three synthesised 2.5 s clips in one 'style' (tones with a tremolo and a third harmonic)."""
    folder = tmp_path_factory.mktemp("clips")
    for i, freq in enumerate((220.0, 330.0, 440.0)):
        write_tone(folder / f"tone{i}.wav", freq)
    return folder


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    """An imagefolder: three small pictures and their captions in metadata.jsonl."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("frames")
    rows = []
    for i, (caption, colour) in enumerate((("a red square", (255, 0, 0)), ("a blue square", (0, 0, 255)),
                                           ("a green field", (0, 200, 0)))):
        pixels = np.zeros((80, 96, 3), np.uint8)
        pixels[:] = colour
        pixels[20:60, 30:70] = 255 - np.array(colour)
        Image.fromarray(pixels).save(folder / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "text": caption})
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def base_flags(data, output, steps=2, *extra):
    return ["--data", str(data), "--output", str(output), "--max-steps", str(steps), "--profile", "tiny",
            "--checkpoint-every", "0", *map(str, extra)]


# -- shared pieces: clear errors ------------------------------------------------------------------------


def test_an_empty_data_folder_is_a_clear_error(tmp_path, capsys):
    from training import common, style

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no audio files"):
        common.SpectrogramDataset(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        common.SpectrogramDataset(tmp_path / "missing")
    assert style.main(base_flags(tmp_path / "empty", tmp_path / "out")) == 2
    assert "holds no audio files" in capsys.readouterr().err


def test_unreadable_audio_names_the_file(tmp_path):
    from training import common

    write_tone(tmp_path / "good.wav", 300)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(InputError, match="broken.wav"):
        common.SpectrogramDataset(tmp_path)


def test_silent_audio_only_is_refused(tmp_path):
    from training import common

    sf.write(tmp_path / "quiet.wav", np.zeros(RATE, np.float32), RATE)
    with pytest.raises(InputError, match="silent"):
        common.SpectrogramDataset(tmp_path)


def test_lora_data_errors_name_what_is_missing(tmp_path, frames):
    from training import lora

    with pytest.raises(InputError, match="no metadata.jsonl"):
        lora.read_pairs(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "nope.png", "text": "x"}\n')
    with pytest.raises(InputError, match="do not exist"):
        lora.read_pairs(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "nope.png"}\n')
    with pytest.raises(InputError, match="no caption"):
        lora.read_pairs(tmp_path)
    table = tmp_path / "pairs.csv"
    table.write_text(f"image,caption\n{frames / '0.png'},a red square\n")
    assert lora.read_pairs(table) == [(frames / "0.png", "a red square")]
    assert [c for _, c in lora.read_pairs(frames)] == ["a red square", "a blue square", "a green field"]


def test_bad_numbers_are_refused(tmp_path, clips):
    from training import style

    with pytest.raises(InputError, match="--max-steps"):
        style.setup(base_flags(clips, tmp_path / "s", 0))


@pytest.mark.slow  # tens of seconds: loads the tiny models, trains, runs the tab
def test_spectrogram_dataset_uses_the_apps_codec(clips):
    from pipelines.signal import spectrogram
    from training import common

    data = common.SpectrogramDataset(clips, transform=common.sd_pixels(512))
    assert len(data) == 3  # one 5.12 s window per 2.5 s clip
    item = data[0]
    assert item.shape == (3, 512, 512) and -1 <= item.min() < item.max() <= 1
    expected = spectrogram.audio_to_image(common.audio_windows(data.files[0], spectrogram.RIFFUSION)[0][None])
    assert np.array_equal(np.asarray(data.images[0]), np.asarray(expected))


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


# -- checkpoints ------------------------------------------------------------------------------------------


def test_resume_from_a_checkpoint_reproduces_the_uninterrupted_run(tmp_path, clips):
    from safetensors.torch import load_file

    from training import amuse_vae, common

    flags = ["--batch-size", "2", "--checkpoint-every", "2"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert amuse_vae.main(base_flags(clips, straight, 4)[:-2] + flags) == 0
    assert amuse_vae.main(base_flags(clips, split, 2)[:-2] + flags) == 0
    assert amuse_vae.main(base_flags(clips, split, 4)[:-2] + flags + ["--resume", "latest"]) == 0
    assert common.read_losses(split) == common.read_losses(straight)
    a = load_file(str(straight / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(split / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    first = load_file(str(straight / "checkpoints" / "step-2" / "trainable.safetensors"))
    last = load_file(str(straight / "checkpoints" / "step-4" / "trainable.safetensors"))
    assert any(not torch.equal(first[k], last[k]) for k in first)  # the comparison above can fail


def test_an_interrupted_run_with_a_schedule_resumes_exactly(tmp_path, clips):
    """The same command resumed from its step-2 checkpoint (into another folder) gives the same steps 3 and 4:
    the cosine schedule's position comes back with the optimizer."""
    from safetensors.torch import load_file

    from training import amuse_vae, common

    flags = ["--batch-size", "2", "--checkpoint-every", "2", "--lr-scheduler", "cosine", "--lr-warmup-steps", "1"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert amuse_vae.main(base_flags(clips, straight, 4)[:-2] + flags) == 0
    checkpoint = straight / "checkpoints" / "step-2"
    assert (checkpoint / "lr_scheduler.pt").is_file()
    assert amuse_vae.main(base_flags(clips, resumed, 4)[:-2] + flags + ["--resume", str(checkpoint)]) == 0
    assert common.read_losses(resumed) == common.read_losses(straight)[2:]
    a = load_file(str(straight / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(resumed / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_checkpoint_of_another_recipe(tmp_path, clips):
    from training import amuse_vae

    out = tmp_path / "vae"
    assert amuse_vae.main(base_flags(clips, out, 1)) == 0
    with pytest.raises(InputError, match="other trainable parameters"):
        amuse_vae.train(base_flags(clips, tmp_path / "other", 2, "--hidden-dims", "4,4,4,4,4",
                                   "--resume", out / "checkpoints" / "step-1"))


# -- slow: overfitting, two processes ---------------------------------------------------------------------


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
def test_two_process_accelerate_launch_on_the_cpu_gives_a_usable_vae(tmp_path, clips):
    from pipelines.models import loaders
    from pipelines.systems.playlist_to_music import taste_vector, track_image
    from training import common

    out = tmp_path / "vae"
    # accelerate's --cpu runs one process; its torchrun launcher (--multi_gpu) with ACCELERATE_USE_CPU
    # gives data parallel over CPU processes (gloo), the same code path as several GPUs
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "training.amuse_vae",
               *base_flags(clips, out, 2, "--batch-size", "1")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / common.SUMMARY_FILE).read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2
    vae = loaders.load_amuse_vae(str(out))
    samples = sf.read(clips / "tone1.wav", dtype="float32")[0]
    assert taste_vector(vae, [track_image(samples)]).shape == (1, 1, 64)


# -- the genre LoRA in the sound-to-music tab -------------------------------------------------------------


@pytest.mark.slow  # tens of seconds: loads the tiny models, trains, runs the tab
def test_riffusion_lora_changes_the_sound_to_music_tab(tmp_path, clips, monkeypatch):
    from core.errors import ModelUnavailableError
    from pipelines.schema.settings import SoundToMusicSettings
    from pipelines.studio import Studio
    from training import riffusion_lora

    out = tmp_path / "jazz"
    assert riffusion_lora.main(base_flags(clips, out, 2, "--resolution", "64", "--learning-rate", "0.05",
                                          "--instance-prompt", "jazz")) == 0
    info = json.loads((out / "lora.json").read_text())
    assert info["instance_prompt"] == "jazz" and info["rank"] == 4

    sound = str(clips / "tone1.wav")
    studio = Studio(profile="hub", device="cpu")
    with pytest.raises(ModelUnavailableError, match="genre LoRA scale to 0"):
        studio.sound_to_music(sound, SoundToMusicSettings(steps=2, lora_scale=1.0), model="riffusion")

    monkeypatch.setenv("STUDIO_MODEL_S2M_LORA", str(out))
    studio = Studio(profile="tiny", device="cpu")
    with_lora = studio.sound_to_music(sound, SoundToMusicSettings(steps=3, lora_scale=1.0), model="riffusion")
    without = studio.sound_to_music(sound, SoundToMusicSettings(steps=3), model="riffusion")
    assert with_lora.parameters["lora"] == str(out.resolve()) and "lora" not in without.parameters
    assert not np.array_equal(np.asarray(with_lora.output_spectrogram), np.asarray(without.output_spectrogram))


# -- the genre LoRA with DreamBooth prior preservation -------------------------------------------------------


def prior_flags(clips, output, class_data, steps=1, *extra):
    return base_flags(clips, output, steps, "--resolution", "64", "--instance-prompt", "jazz",
                      "--with-prior-preservation", "--class-data", class_data, "--class-inference-steps", "2",
                      *extra)


@pytest.fixture(scope="module")
def class_data(tmp_path_factory, clips) -> Path:
    """Two class images of 'music' that the tiny riffusion generated (64 px, 2 steps)."""
    from training import riffusion_lora

    folder = tmp_path_factory.mktemp("prior") / "class"
    riffusion_lora.setup(prior_flags(clips, folder.parent / "setup", folder, 1, "--num-class-images", "2"))
    return folder


@pytest.mark.parametrize("flags, message", [
    (["--with-prior-preservation"], "needs --class-data"),
    (["--class-data", "class"], "--class-data only apply with --with-prior-preservation"),
    (["--class-prompt", "music"], "--class-prompt only apply"),
    (["--with-prior-preservation", "--class-data", "class", "--num-class-images", "0"], "--num-class-images"),
    (["--with-prior-preservation", "--class-data", "class", "--class-inference-steps", "0"], "--class-inference-steps"),
    (["--with-prior-preservation", "--class-data", "class", "--prior-loss-weight", "-1"], "--prior-loss-weight"),
    (["--with-prior-preservation", "--class-data", "class", "--class-prompt", " "], "--class-prompt"),
])
def test_bad_prior_preservation_flags_are_one_clear_line(flags, message, tmp_path, clips, capsys):
    from training import riffusion_lora

    argv = base_flags(clips, tmp_path / "out", 1, "--instance-prompt", "jazz", *flags)
    with pytest.raises(InputError, match=message):
        riffusion_lora.setup(argv)
    assert riffusion_lora.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message.split()[0] in err[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "class").exists()  # refused before any work


def test_prior_preservation_loss_is_instance_mse_plus_weighted_class_mse():
    from training.prior import prior_preservation_loss

    prediction = torch.zeros(4, 2, 3)
    target = torch.cat([torch.full((2, 2, 3), 1.0), torch.full((2, 2, 3), 2.0)])  # instance MSE 1, class MSE 4
    assert float(prior_preservation_loss(prediction, target, 1.0)) == pytest.approx(5.0)
    assert float(prior_preservation_loss(prediction, target, 0.0)) == pytest.approx(1.0)
    assert float(prior_preservation_loss(prediction, target, 0.5)) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="halves"):
        prior_preservation_loss(prediction[:3], target[:3], 1.0)


def test_dreambooth_pairs_cycle_both_sets_and_batch_instances_first(tmp_path):
    from PIL import Image

    from training.prior import DreamBoothPairs, collate_pairs

    class Tokenizer:
        model_max_length = 5

        def __call__(self, text, **kwargs):
            return type("Tokens", (), {"input_ids": torch.full((1, 5), len(text))})()

    for i, value in enumerate((10, 200)):
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(tmp_path / f"c{i}.png")
    instances = [{"pixels": torch.full((3, 8, 8), float(i)), "ids": torch.zeros(5, dtype=torch.long)}
                 for i in range(3)]
    pairs = DreamBoothPairs(instances, [tmp_path / "c0.png", tmp_path / "c1.png"], Tokenizer(), "music", 8)
    assert len(pairs) == 3  # max(3 instances, 2 class images)
    assert [float(pairs[i]["pixels"][0, 0, 0]) for i in range(3)] == [0, 1, 2]
    class_values = [float(pairs[i]["class_pixels"][0, 0, 0]) for i in range(3)]
    assert class_values == pytest.approx([10 / 127.5 - 1, 200 / 127.5 - 1, 10 / 127.5 - 1])  # class i mod 2
    batch = collate_pairs([pairs[1], pairs[2]])
    assert batch["pixels"].shape == (4, 3, 8, 8) and batch["ids"].shape == (4, 5)
    assert [float(v) for v in batch["pixels"][:, 0, 0, 0]] == pytest.approx([1, 2, 200 / 127.5 - 1, 10 / 127.5 - 1])
    assert batch["ids"][:, 0].tolist() == [0, 0, 5, 5]  # the class prompt's tokens on the class half
    with pytest.raises(InputError, match="No class images"):
        DreamBoothPairs(instances, [], Tokenizer(), "music", 8)


def test_missing_class_images_take_free_names(tmp_path):
    from training.prior import class_images, missing_names

    assert missing_names(tmp_path / "new", 2) == [tmp_path / "new" / "class-00000.png", tmp_path / "new" / "class-00001.png"]
    for name in ("class-00001.png", "own.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in class_images(tmp_path)] == ["class-00001.png", "own.JPG"]
    assert [p.name for p in missing_names(tmp_path, 4)] == ["class-00000.png", "class-00002.png"]  # never overwrites
    assert missing_names(tmp_path, 2) == [] and missing_names(tmp_path, 1) == []


@pytest.mark.slow  # three setups and two short runs (the names' logic is tested fast just above)
def test_class_images_are_generated_once_and_reused(tmp_path, clips, class_data):
    """The folder is topped up to --num-class-images (only the missing ones made, a file already there
    untouched); a run that reuses them trains exactly as the run that generated them."""
    import shutil

    from training import prior, riffusion_lora

    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(class_data / "class-00001.png", folder / "mine.png")  # a class image of the user's own
    first = (folder / "mine.png").read_bytes(), (folder / "mine.png").stat().st_mtime_ns

    generated = riffusion_lora.setup(prior_flags(clips, tmp_path / "b", folder, 2, "--num-class-images", "2"))
    files = prior.class_images(folder)
    assert [p.name for p in files] == ["class-00000.png", "mine.png"]  # one made, the missing one
    assert ((folder / "mine.png").read_bytes(), (folder / "mine.png").stat().st_mtime_ns) == first
    assert (folder / "class-00000.png").read_bytes() == (class_data / "class-00000.png").read_bytes()  # same seed
    stamps = [p.stat().st_mtime_ns for p in files]
    assert len(generated.dataset) == 3 and len(generated.dataset.class_pixels) == 2

    reused = riffusion_lora.setup(prior_flags(clips, tmp_path / "c", folder, 2, "--num-class-images", "2"))
    assert [p.stat().st_mtime_ns for p in prior.class_images(folder)] == stamps  # nothing generated
    assert generated.train().losses == reused.train().losses
    info = json.loads((tmp_path / "c" / "lora.json").read_text())
    assert info["prior_preservation"] == {"class_prompt": "music", "class_images": 2, "prior_loss_weight": 1.0}
    only_one = riffusion_lora.setup(prior_flags(clips, tmp_path / "d", folder, 1, "--num-class-images", "1"))
    assert len(only_one.dataset.class_pixels) == 1  # the first --num-class-images of the folder


def test_prior_loss_weight_weighs_the_class_half_of_each_batch(tmp_path, clips, class_data):
    """Same seed, same batch: the loss grows linearly with --prior-loss-weight (the class half counts),
    and two steps with weight 0 and 1 give different LoRA weights."""
    from safetensors.torch import load_file

    from training import lora, riffusion_lora

    losses, recipes = {}, {}
    for weight in (0, 1, 3):
        recipe = riffusion_lora.setup(prior_flags(clips, tmp_path / str(weight), class_data, 2,
                                                  "--num-class-images", "2", "--prior-loss-weight", weight,
                                                  "--learning-rate", "0.05"))
        batch = recipe.collate_fn([recipe.dataset[0]])
        assert batch["pixels"].shape == (2, 3, 64, 64)  # the instance window, then a class image
        with torch.no_grad():
            losses[weight] = float(recipe.loss_fn(recipe.trainable, batch, torch.Generator().manual_seed(7)))
        recipes[weight] = recipe
    class_mse = losses[1] - losses[0]
    assert class_mse > 0 and losses[3] - losses[0] == pytest.approx(3 * class_mse, rel=1e-4)
    for weight in (0, 1):
        recipes[weight].train()
    a = load_file(str(tmp_path / "0" / lora.LORA_FILE))
    b = load_file(str(tmp_path / "1" / lora.LORA_FILE))
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)


def test_prior_preservation_resumes_exactly(tmp_path, clips, class_data):
    from safetensors.torch import load_file

    from training import common, lora, riffusion_lora

    flags = ["--num-class-images", "2", "--checkpoint-every", "2", "--learning-rate", "0.01"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert riffusion_lora.main(prior_flags(clips, straight, class_data, 4, *flags)) == 0
    assert riffusion_lora.main(prior_flags(clips, split, class_data, 2, *flags)) == 0
    assert riffusion_lora.main(prior_flags(clips, split, class_data, 4, *flags, "--resume", "latest")) == 0
    assert common.read_losses(split) == common.read_losses(straight)
    a, b = load_file(str(straight / lora.LORA_FILE)), load_file(str(split / lora.LORA_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- classifiers: the originals' defaults and Emotify's ratings ------------------------------------------


def test_classifier_defaults_are_the_originals():
    from training import classifiers

    genre = classifiers.TASKS["genre"]
    assert (genre.learning_rate, genre.epochs, genre.batch_size) == (1e-3, 50, 32)
    args_seen = {}

    def fake_train(task, data_dir, out, **kwargs):
        args_seen.update(kwargs, task=task, data_dir=data_dir, out=out)
        raise InputError("stop here")

    import unittest.mock as mock

    with mock.patch.object(classifiers, "train", fake_train):
        assert classifiers.main(["genre", "--data", "gtzan", "--output", "models/genre"]) == 2
    assert args_seen["data_dir"] == "gtzan" and args_seen["out"] == "models/genre" and args_seen["epochs"] is None


def test_emotify_ratings_become_majority_labels(tmp_path):
    from training import classifiers

    header = ("track id, genre, amazement, solemnity, tenderness, nostalgia, calmness, power, joyful_activation, "
              "tension, sadness, mood, liked, disliked, age, gender, mother tongue")
    rows = [
        "1, classical, 0, 1, 0, 0, 1, 0, 0, 0, 0, 3, 1, 0, 30, 0, English",
        "1, classical, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 1, 0, 31, 1, Dutch",
        "102, rock, 0, 0, 0, 0, 0, 1, 1, 0, 0, 3, 1, 0, 25, 1, Dutch",
        "102, rock, 0, 0, 0, 0, 0, 0, 1, 0, 0, 3, 1, 0, 22, 0, English",
    ]
    ratings = tmp_path / "data.csv"
    ratings.write_text("\n".join([header, *rows]) + "\n")
    for genre, number in (("classical", 1), ("rock", 2)):
        write_tone(tmp_path / "audio" / genre / f"{number}.wav", 300)
    items = classifiers.emotify_items(ratings, tmp_path / "audio")
    assert items == [(tmp_path / "audio" / "classical" / "1.wav", "solemnity"),
                     (tmp_path / "audio" / "rock" / "2.wav", "joyfulness")]
    (tmp_path / "audio" / "rock" / "2.wav").unlink()
    with pytest.raises(InputError, match="Emotify track 102"):
        classifiers.emotify_items(ratings, tmp_path / "audio")
    ratings.write_text("track id, genre, amazement\n1, rock, 1\n")
    with pytest.raises(InputError, match="no column solemnity"):
        classifiers.emotify_items(ratings, tmp_path / "audio")


@pytest.mark.slow
def test_a_recipes_console_has_the_apps_quiet_filters(tmp_path, clips):
    """``python -m training.style``: no transformers torchvision note (the PIL fallback is intended)."""
    command = [sys.executable, "-m", "training.style", *base_flags(clips, tmp_path / "style", 1, "--resolution", "64")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "style: 1 steps" in done.stdout + done.stderr
    assert "torchvision" not in done.stdout + done.stderr
