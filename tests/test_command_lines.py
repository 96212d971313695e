"""Every command line words a file it cannot use for a command line: the path as given and what is wrong
with it ("does not exist", "is empty (0 bytes)"), never the app's "please upload it again", which the app
keeps (with the file's name alone: it never shows a server path)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.errors import InputError, command_line
from pipelines.signal import audio as audio_io
from pipelines.signal.images import open_image

ROOT = Path(__file__).resolve().parents[1]


def no_upload_words(text: str) -> bool:
    return "upload" not in text.lower()


def test_python_m_evaluation_says_the_path_does_not_exist(tmp_path):
    missing, other = tmp_path / "takes" / "missing.wav", tmp_path / "other.wav"
    sf.write(other, np.zeros(4410, np.float32), 44100)
    done = subprocess.run([sys.executable, "-m", "evaluation", "pair", str(missing), str(other)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"error: The audio file '{missing}' does not exist."


def test_studio_batch_names_an_empty_input_by_its_path(tmp_path, capsys):
    import json

    from studio.__main__ import main

    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "empty.wav").write_bytes(b"")
    assert main(["batch", "extend_music", str(inputs), str(tmp_path / "out"), "--profile", "tiny", "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["failed"] == {"empty.wav": f"The audio file '{inputs / 'empty.wav'}' is empty (0 bytes)."}


def test_a_training_recipe_names_an_empty_file_by_its_path(tmp_path, capsys):
    from training import style

    data = tmp_path / "clips"
    data.mkdir()
    (data / "a.wav").write_bytes(b"")
    assert style.main(["--data", str(data), "--output", str(tmp_path / "out"), "--profile", "tiny"]) == 2
    error = capsys.readouterr().err
    assert error.strip() == f"error: The audio file '{data / 'a.wav'}' is empty (0 bytes)."


def missing_sound(path):
    audio_io.load_audio(path, 22050)


def missing_picture(path):
    open_image(path)


def entry_points(reads):
    """Each command line's ``main``, with what it runs patched to ``reads()`` (a missing file): (main, argv)."""
    import evaluation.__main__
    import studio.__main__
    import studio.batch
    import training.classifiers
    from training import common

    return {
        "evaluation": (evaluation.__main__.main, ["pair", "x.wav", "y.wav"], (evaluation.__main__, "run")),
        "studio batch": (studio.__main__.main, ["batch", "extend_music", "in", "out"], (studio.batch, "run_batch")),
        # every recipe but the classifiers' is common.main_wrapper(train)
        "training recipes": (common.main_wrapper(lambda argv: reads()), [], None),
        "training.classifiers": (training.classifiers.main, ["genre", "data", "--out", "out"],
                                 (training.classifiers, "train")),
    }


@pytest.mark.parametrize("name", ["evaluation", "studio batch", "training recipes", "training.classifiers"])
@pytest.mark.parametrize("read", [missing_sound, missing_picture])
def test_every_command_line_names_the_path_and_never_asks_for_an_upload(name, read, tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nowhere" / "take.wav"
    main, argv, patch = entry_points(lambda: read(missing))[name]
    if patch is not None:
        monkeypatch.setattr(*patch, lambda *args, **kwargs: read(missing))
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"'{missing}' does not exist." in error and no_upload_words(error), error


def test_every_training_recipe_runs_as_a_command_line():
    from training import amuse_unet, amuse_vae, common, lora, riffusion_lora, style

    wrapped = common.main_wrapper(lambda argv: None)
    for recipe in (amuse_unet, amuse_vae, lora, riffusion_lora, style):
        assert recipe.main.__code__ is wrapped.__code__, recipe.__name__


def test_the_app_keeps_its_upload_words_and_shows_no_server_path(tmp_path):
    missing = tmp_path / "uploads" / "take.wav"
    with pytest.raises(InputError) as in_the_app:
        audio_io.load_audio(missing, 22050)
    assert str(in_the_app.value) == "The audio file 'take.wav' does not exist. Please upload it again."
    with command_line(), pytest.raises(InputError) as on_a_command_line:
        audio_io.load_audio(tmp_path, 22050)
    assert str(on_a_command_line.value) == f"The audio file '{tmp_path}' is a folder, not a file."
    with pytest.raises(InputError, match=r"^The picture 'take.png' does not exist\. Please upload it again\.$"):
        open_image(tmp_path / "take.png")
