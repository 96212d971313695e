"""Train a style in the app (``/train_style``): its own process, progress, Cancel, one at a time."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from core.errors import InputError
from pipelines.signal import audio as audio_io
from pipelines.systems import train_style
from pipelines.models.style_embedding import StyleLibrary
from tests.test_style_endpoints import style_args

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")


@pytest.fixture
def styles(studio, tmp_path, monkeypatch):
    """A copy of the tiny styles folder as the studio's (trained styles land there, not in the shared cache)."""
    root = tmp_path / "styles"
    shutil.copytree(studio._style_library().root, root)
    monkeypatch.setattr(studio, "_styles", StyleLibrary(root))
    return root


@pytest.fixture
def clips(tmp_path):
    paths = []
    for index in range(3):
        t = np.arange(int(1.5 * 44100)) / 44100
        path = tmp_path / f"clip{index}.wav"
        audio_io.write_wav(path, audio_io.Audio((0.3 * np.sin(2 * np.pi * (300 + 90 * index) * t)).astype(np.float32),
                                                44100))
        paths.append(str(path))
    return paths


def running(job_name: str) -> bool:
    return any(job.settings.name == job_name and job.state == "running" and job.losses
               for job in list(train_style.TRAINER.jobs))


@pytest.mark.slow
def test_a_style_trained_from_three_clips_appears_and_changes_the_output(client, studio, styles, clips):
    status, plot, name = client.predict([handle_file(c) for c in clips], "trained-a", "musicti", 3,
                                        api_name="/train_style")
    assert name == "trained-a" and "3 steps" in status and plot.endswith(".png")
    assert "trained-a" in studio.style_names() and (styles / "trained-a" / "style.safetensors").is_file()
    knocks = handle_file(os.path.join(ASSETS, "knocks.wav"))
    new, *_ = client.predict(*style_args(knocks, styles="trained-a", weights="", steps=2), api_name="/style_interpolation")
    old, *_ = client.predict(*style_args(knocks, styles="jazz", weights="", steps=2), api_name="/style_interpolation")
    a, b = (audio_io.load_audio(p, 44100, allow_silence=True).samples for p in (new, old))
    assert np.abs(a - b).max() > 1e-3
    with pytest.raises(AppError, match="already exists"):
        client.predict([handle_file(c) for c in clips], "trained-a", "musicti", 3, api_name="/train_style")


@pytest.mark.slow
def test_a_second_training_waits_its_turn_and_cancel_stops_the_process(client, served_app, studio, styles, clips):
    """Two users: the second's training waits while the first's runs; the first's Cancel (gradio cancels
    per session and endpoint) stops its process, then the second's runs."""
    from gradio_client import Client

    other = Client(served_app, verbose=False)
    first = client.submit([handle_file(c) for c in clips], "long-one", "musicti", 2000, api_name="/train_style")
    deadline = time.monotonic() + 120
    while not running("long-one"):
        assert time.monotonic() < deadline and not first.done(), "the first training never started"
        time.sleep(0.2)
    job = next(j for j in train_style.TRAINER.jobs if j.settings.name == "long-one")
    second = other.submit([handle_file(c) for c in clips], "short-one", "musicti", 2, api_name="/train_style")
    while len(train_style.TRAINER.jobs) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    waiting = train_style.TRAINER.jobs[1]
    assert waiting.settings.name == "short-one" and waiting.state == "waiting"
    assert train_style.TRAINER.position(waiting) == 1
    first.cancel()
    assert job.wait(60) and job.state == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(job.pid, 0)  # the training process is gone
    status, _, name = second.result(timeout=300)
    assert name == "short-one" and studio.style_names().count("short-one") == 1
    assert "long-one" not in studio.style_names()


def test_bad_training_requests_are_refused_before_anything_runs(studio, styles, clips, tmp_path):
    settings = train_style.TrainStyleSettings(name="fine", steps=3)
    with pytest.raises(InputError, match="Number of clips must be a whole number from 3 to 20"):
        train_style.submit(studio, clips[:2], settings)
    with pytest.raises(InputError, match="already exists"):
        train_style.submit(studio, clips, train_style.TrainStyleSettings(name="jazz"))
    with pytest.raises(InputError, match="style name"):
        train_style.submit(studio, clips, train_style.TrainStyleSettings(name="../escape"))
    silent = tmp_path / "silent.wav"
    audio_io.write_wav(silent, audio_io.Audio(np.zeros(44100, dtype=np.float32), 44100))
    with pytest.raises(InputError, match="silent"):
        train_style.submit(studio, [*clips, str(silent)], settings)
    with pytest.raises(InputError, match="Steps must be a whole number from 1 to 10000"):
        train_style.submit(studio, clips, train_style.TrainStyleSettings(name="fine", steps=0))
    assert not train_style.TRAINER.jobs


def test_the_estimate_before_a_cpu_run(studio):
    from ui.train_style import estimate

    assert estimate(studio, 500).startswith("About ") and "the CPU" in estimate(studio, 500)
