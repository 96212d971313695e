"""``python -m studio batch``: a pipeline over a folder, the app's files, resumable, sharded under accelerate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError
from pipelines.signal import audio as audio_io
from studio import batch
from studio.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["engine=musicgen", "seconds=1", "seed=7", "prompt=calm piano"]


def write_sounds(folder: Path, count: int = 6, seconds: float = 1.5, rate: int = 32000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    for index in range(count):
        tone = 0.3 * np.sin(2 * np.pi * (200 + 40 * index) * t)
        audio_io.write_wav(folder / f"sound{index}.wav", audio_io.Audio(tone.astype(np.float32), rate))
    return folder


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file the batch made per input (not its tables), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.glob("*/*")) if p.is_file()}


def test_a_folder_runs_as_the_app_runs_and_resumes_after_an_interruption(studio, tmp_path, monkeypatch):
    sounds = write_sounds(tmp_path / "in")
    whole = batch.run_batch("extend_music", sounds, tmp_path / "whole", SETTINGS, studio=studio)
    assert whole["made"] == 6 and not whole["failed"]
    made = outputs(tmp_path / "whole")
    assert sorted(made) == [f"sound{i}/extended.wav" for i in range(6)]
    # the app's file: its WAV carries the settings, and it is what the Studio gives for that input
    saved = audio_io.read_wav_metadata(tmp_path / "whole" / "sound2" / "extended.wav")
    assert saved["pipeline"] == "extend_music" and saved["seed"] == 7 and saved["engine"] == "musicgen"
    from pipelines.systems.extend import ExtendSettings

    direct = studio.extend_music(str(sounds / "sound2.wav"), ExtendSettings(engine="musicgen", seconds=1, seed=7,
                                                                             prompt="calm piano"))
    wav = audio_io.load_audio(tmp_path / "whole" / "sound2" / "extended.wav", 32000, allow_silence=True).samples
    assert np.abs(wav - direct.audio).max() <= 1.5 / 32768

    calls, cut = [], [True]
    real = studio.extend_music

    def interrupted(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3 and cut.pop():
            raise RuntimeError("power cut")  # (pytest takes a real KeyboardInterrupt as its own stop)
        return real(*args, **kwargs)

    monkeypatch.setattr(studio, "extend_music", interrupted)
    with pytest.raises(RuntimeError, match="power cut"):
        batch.run_batch("extend_music", sounds, tmp_path / "resumed", SETTINGS, studio=studio)
    assert len(list((tmp_path / "resumed").glob("sound*"))) == 2  # two finished, the third never written
    calls.clear()
    cut.append(False)
    summary = batch.run_batch("extend_music", sounds, tmp_path / "resumed", SETTINGS, studio=studio)
    assert [Path(c).name for c in calls] == [f"sound{i}.wav" for i in range(2, 6)]  # only what was left
    assert summary["made"] == 6 and outputs(tmp_path / "resumed") == made
    with pytest.raises(InputError, match="other settings"):
        batch.run_batch("extend_music", sounds, tmp_path / "resumed", [*SETTINGS, "seed=8"], studio=studio)


@pytest.mark.slow
def test_two_processes_under_accelerate_make_the_same_files_as_one(tmp_path):
    sounds = write_sounds(tmp_path / "in")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["batch", "extend_music", str(sounds)]
    options = [*SETTINGS, "--profile", "tiny", "--device", "cpu"]
    one = subprocess.run([sys.executable, "-m", "studio", *args, str(tmp_path / "one"), *options], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    assert one.returncode == 0, one.stderr[-2000:]
    accelerate = Path(sys.executable).with_name("accelerate")
    two = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "studio", *args,
                          str(tmp_path / "two"), *options], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert two.returncode == 0, two.stderr[-2000:]
    shards = sorted((tmp_path / "two").glob("items.*-of-2.csv"))
    assert [p.name for p in shards] == ["items.0-of-2.csv", "items.1-of-2.csv"]
    assert all(len(p.read_text().splitlines()) == 4 for p in shards)  # a header and 3 inputs each
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one") and len(outputs(tmp_path / "one")) == 6
    summary = json.loads(two.stdout.strip().splitlines()[-1])  # printed once, by the first process
    assert summary["processes"] == 2 and summary["made"] == 6


def test_settings_from_key_value_pairs():
    settings, options = batch.parse_settings("sound_to_music", ["steps=25", "mask.downshift=100", "prompt=a, b",
                                                                "model=riffusion"])
    assert settings.steps == 25 and settings.mask.downshift == 100.0 and settings.prompt == "a, b"
    assert options == {"model": "riffusion"}
    settings, options = batch.parse_settings("style_interpolation", ["styles=a, b", "weights=0.3,0.7"])
    assert options == {"styles": ["a", "b"], "weights": [0.3, 0.7]}
    assert batch.parse_settings("extend_music", ["guidance=4"])[0].guidance == 4.0


@pytest.mark.parametrize("pipeline,pairs,words", [
    ("sound_to_music", ["steps=500"], "Steps must be a whole number from 1 to 100"),
    ("sound_to_music", ["steps=2.5"], "steps must be a whole number"),
    ("sound_to_music", ["mask.foo=1"], "Unknown setting 'mask.foo': use prompt"),
    ("sound_to_music", ["mask=1"], "has parts"),
    ("sound_to_music", ["steps"], "key=value"),
    ("style_interpolation", [], "needs styles="),
    ("text_to_image", [], "Unknown pipeline"),
])
def test_bad_settings_are_refused_in_the_studios_words(pipeline, pairs, words):
    with pytest.raises(InputError, match=words):
        batch.parse_settings(pipeline, pairs)


def test_the_command_line_says_what_is_wrong_and_lists_settings(tmp_path, capsys):
    assert main(["batch", "extend_music", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["batch", "extend_music", "--list"]) == 0
    assert "engine='riffusion'" in capsys.readouterr().out


def test_the_documented_batch_commands_are_accepted_as_written():
    """Every ``-m studio batch`` line in a bash block of docs/FEATURES.md parses, and its settings are valid."""
    import re
    import shlex

    from studio.__main__ import build_parser

    text = (ROOT / "docs" / "FEATURES.md").read_text()
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()
             if "-m studio batch" in line]
    assert len(lines) >= 5
    for line in lines:
        words = shlex.split(line, comments=True)
        args = build_parser().parse_args(words[words.index("studio") + 1 :])
        if not args.list:
            batch.parse_settings(args.pipeline, args.settings)
