"""The manual's commands run as written: every ``python -m training.*`` and ``python -m evaluation``
line in a bash block of README.md or docs/*.md, on the tiny profile, with its placeholder files
(IN.wav, sounds/, ...) made in a temporary folder. Only what a tiny run needs is added to each line
(``--profile tiny``, few steps); every flag the line itself names must be accepted."""

from __future__ import annotations

import contextlib
import io
import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# training/ modules that are not recipes: what the recipes share, and the genre LoRA's prior preservation
NOT_RECIPES = {"__init__", "common", "data", "checkpoints", "prior"}
# the flags docs/TRAINING.md says every recipe takes
EVERY_RECIPES_FLAGS = ("--data", "--output", "--max-steps", "--profile", "--seed", "--learning-rate", "--batch-size")
# style names in the docs are the real ones; the tiny profile's styles stand in for them
TINY_STYLES = {"accordion,chime,violin": "jazz,rock,ambient", "jazz,rock": "jazz,rock"}


def documented_commands(module_prefix: str) -> list[tuple[str, str, list[str]]]:
    """(doc, module, arguments) of each command in a bash block that runs ``-m <module_prefix>...``."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                words = [w for w in shlex.split(line, comments=True) if not (w.startswith("[") and w.endswith("]"))]
                if "-m" in words and words[words.index("-m") + 1].startswith(module_prefix):
                    at = words.index("-m")
                    found.append((doc.name, words[at + 1], words[:at], words[at + 2:]))
    return [(doc, module, launcher, args) for doc, module, launcher, args in found]


def recipes_named_in_the_docs() -> set[str]:
    text = "\n".join(doc.read_text() for doc in DOCS)
    return set(re.findall(r"(?<![\w/])training\.([a-z_]+)\b", text)) - NOT_RECIPES - {"json", "py"}


def recipe_help(recipe: str) -> str:
    module = importlib.import_module(f"training.{recipe}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.main(["--help"])
    return out.getvalue()


def test_the_docs_name_every_recipe_and_their_commands():
    recipes = recipes_named_in_the_docs()
    on_disk = {p.stem for p in (ROOT / "training").glob("*.py")} - NOT_RECIPES
    assert recipes == on_disk
    assert {module for _, module, _, _ in documented_commands("training.")} >= {"training.style"}
    assert len(documented_commands("evaluation")) >= 5


@pytest.mark.parametrize("recipe", sorted(recipes_named_in_the_docs()))
def test_every_recipe_takes_the_flags_every_recipe_takes(recipe):
    """docs/TRAINING.md: "Flags every recipe takes" (training.classifiers refused --profile and --max-steps)."""
    text = recipe_help(recipe)
    assert [flag for flag in EVERY_RECIPES_FLAGS if flag not in text] == []


def test_every_documented_training_command_names_only_flags_its_recipe_takes():
    for doc, module, launcher, args in documented_commands("training."):
        text = recipe_help(module.removeprefix("training."))
        unknown = [word for word in args if word.startswith("--") and word not in text]
        assert unknown == [], f"{doc}: {module} {' '.join(args)}"
        if launcher and launcher[0] == "accelerate":
            assert launcher[:2] == ["accelerate", "launch"], f"{doc}: {' '.join(launcher)}"


def _tone(path: Path, freq: float, seconds: float = 2.0, rate: int = 44100) -> None:
    t = np.arange(int(seconds * rate)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(6 * np.pi * t))).astype(np.float32), rate)


@pytest.fixture(scope="module")
def placeholders(tmp_path_factory) -> Path:
    """The files the commands name, in the folder they run from: IN.wav OUT.wav clips/accordion/ sounds/
    contents/ reference/ (short tones)."""
    folder = tmp_path_factory.mktemp("docs")
    _tone(folder / "IN.wav", 330)
    _tone(folder / "OUT.wav", 440)
    for i, freq in enumerate((220, 330, 440)):
        _tone(folder / "clips" / "accordion" / f"clip{i}.wav", freq, 2.5)
    for i, freq in enumerate((262, 392)):
        _tone(folder / "sounds" / f"sound{i}.wav", freq)
        _tone(folder / "reference" / f"ref{i}.wav", freq * 1.5)
    _tone(folder / "contents" / "violin1.wav", 294)
    return folder


def _run(folder: Path, module: str, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_the_documented_training_commands_run_on_tiny(placeholders):
    plain = [(doc, module, args) for doc, module, launcher, args in documented_commands("training.") if launcher == ["python"]]
    assert plain
    for doc, module, args in plain:
        tiny = ["--profile", "tiny", "--max-steps", "1"] + (["--resolution", "64"] if module == "training.style" else [])
        done = _run(placeholders, module, args + tiny)
        assert done.returncode == 0, f"{doc}: {module} {' '.join(args)}\n{done.stderr[-2000:]}"


@pytest.mark.slow
def test_the_documented_evaluation_commands_run_on_tiny(placeholders):
    commands = [(doc, args) for doc, module, launcher, args in documented_commands("evaluation") if launcher == ["python"]]
    assert len(commands) >= 5
    for doc, args in commands:
        args = [TINY_STYLES.get(word, word) for word in args]
        tiny = ["--profile", "tiny", "--device", "cpu"] + (["--steps", "2"] if args[0] in ("ablation", "musicti") else [])
        if args[0] == "musicti":
            tiny += ["--pairs", "1"]
        if args[0] == "fad":  # two placeholder outputs: far below the minimum a full-rank covariance needs
            tiny += ["--allow-few"]
        done = _run(placeholders, "evaluation", args + tiny)
        assert done.returncode == 0, f"{doc}: python -m evaluation {' '.join(args)}\n{done.stderr[-2000:]}"
        assert done.stdout.strip(), args
