"""The genre LoRA for sound to music (``training.riffusion_lora``): it changes the tab's output, and its
DreamBooth prior preservation (``training.prior``): flags, class images made once, the split loss, exact
resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import InputError
from training_toys import base_flags


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
    assert with_lora.parameters["lora"] == str(out.resolve()) and not without.parameters.get("lora")  # "": none applied
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
