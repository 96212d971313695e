"""Train a style or a genre LoRA in the app (``/train_style``): its own process, progress, Cancel, one
at a time; what a visitor trains is theirs (their session's folder, capped, gone when they leave)."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from core import files
from core.errors import InputError, StudioError
from pipelines.signal import audio as audio_io
from pipelines.schema import limits
from pipelines.systems import train_style
from pipelines.models.style_embedding import StyleLibrary
from pipelines.models.trained import LORAS, STYLES, TrainedStore
from studio import batch
from tests.test_endpoints import masked_args
from tests.test_style_endpoints import style_args

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")


@pytest.fixture
def styles(studio, tmp_path, monkeypatch):
    """A copy of the tiny styles folder as the studio's built-in styles (what every visitor sees)."""
    root = tmp_path / "styles"
    shutil.copytree(studio._style_library().root, root)
    monkeypatch.setattr(studio, "_styles", StyleLibrary(root))
    return root


@pytest.fixture
def store(studio, tmp_path, monkeypatch):
    """The studio's store of visitors' trained models, in a fresh folder."""
    trained = TrainedStore(tmp_path / "trained", shared=False)
    monkeypatch.setattr(studio, "_trained", trained)
    return trained


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


def running(job_name: str) -> train_style.TrainingJob | None:
    return next((job for job in list(train_style.TRAINER.jobs)
                 if job.settings.name == job_name and job.state == "running" and job.losses), None)


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return value


def modes(folder: Path) -> set[int]:
    """The permission bits of the files in ``folder`` (one value: all written alike)."""
    return {stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir() if path.is_file()}


def fake_model(folder: Path, size: int = 1000) -> Path:
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\0" * size)
    return folder


@pytest.mark.slow
def test_a_trained_style_is_its_visitors_own_capped_and_gone_when_they_leave(served_app, studio, styles, store, clips,
                                                                             monkeypatch):
    """A trains a style: A's style tab lists it and it changes A's output; B (another visitor) does not
    see it, neither in the list nor through /style_interpolation; the built-in styles folder is
    unchanged; A's next training past the cap is refused in our words; A leaves and the folder goes."""
    built_in = sorted(p.name for p in styles.iterdir())
    a, b = Client(served_app, verbose=False), Client(served_app, verbose=False)
    try:
        status, plot, name = a.predict([handle_file(c) for c in clips], "trained-a", "musicti", 3,
                                       api_name="/train_style")
        assert name == "trained-a" and "3 steps" in status and "for you only" in status and plot.endswith(".png")
        assert "trained-a" in studio.style_names(a.session_hash)
        assert "trained-a" not in studio.style_names(b.session_hash)
        assert sorted(p.name for p in styles.iterdir()) == built_in  # nothing written where everyone looks
        mine = store.session_folder(a.session_hash)
        assert (mine / STYLES / "trained-a" / "style.safetensors").is_file()
        assert modes(mine / STYLES / "trained-a") == {files.usual_mode()}  # style.safetensors was 0600 alone

        knocks = handle_file(os.path.join(ASSETS, "knocks.wav"))
        new, *_ = a.predict(*style_args(knocks, styles="trained-a", weights="", steps=2), api_name="/style_interpolation")
        old, *_ = a.predict(*style_args(knocks, styles="jazz", weights="", steps=2), api_name="/style_interpolation")
        x, y = (audio_io.load_audio(p, 44100, allow_silence=True).samples for p in (new, old))
        assert np.abs(x - y).max() > 1e-3
        with pytest.raises(AppError, match="Unknown style 'trained-a': choose from") as refused:
            b.predict(*style_args(knocks, styles="trained-a", weights="", steps=2), api_name="/style_interpolation")
        assert "trained-a" not in str(refused.value).split("choose from")[1]  # not among B's choices either
        assert "trained-a" not in train_style.taken_names(studio, b.session_hash, train_style.TRAINER)

        with pytest.raises(AppError, match="is taken"):
            a.predict([handle_file(c) for c in clips], "trained-a", "musicti", 3, api_name="/train_style")
        monkeypatch.setattr(limits, "TRAIN_PER_SESSION", 1)
        with pytest.raises(AppError, match=r"You already have 1 trained style\(s\) or LoRA\(s\) in this session "
                                           r"\(at most 1 per visitor"):
            a.predict([handle_file(c) for c in clips], "trained-b", "musicti", 3, api_name="/train_style")
        assert not train_style.TRAINER.jobs
    finally:
        a.close()  # A leaves: gradio's unload ends the session
        b.close()
    wait_for(lambda: not mine.exists(), 30, "the visitor left, their trained style stayed")
    assert "trained-a" not in studio.style_names(a.session_hash)


@pytest.mark.slow
def test_a_genre_lora_trained_from_three_clips_is_offered_to_its_visitor_and_changes_the_music(
        served_app, client, studio, store, clips):
    visitor = Client(served_app, verbose=False)
    try:
        status, plot, name = visitor.predict([handle_file(c) for c in clips], "my_lora", "genre_lora", 3,
                                             api_name="/train_style")
        assert name == "my_lora" and "Sound to music" in status and plot.endswith(".png")
        assert list(studio.genre_loras(visitor.session_hash)) == ["my_lora"]
        assert studio.genre_loras(client.session_hash) == {}
        folder = store.session_folder(visitor.session_hash) / LORAS / "my_lora"
        assert (folder / "pytorch_lora_weights.safetensors").is_file() and (folder / "lora.json").is_file()
        assert modes(folder) == {files.usual_mode()}  # the LoRA's weights readable like its other files

        args = masked_args(handle_file(clips[0]), model="riffusion", steps=4, strength=0.5, seed=5)
        plain = visitor.predict(*args, api_name="/masked_img2img")[0]
        with_lora = visitor.predict(*args, "paper", 1.0, False, "my_lora", api_name="/masked_img2img")[0]
        again = visitor.predict(*args, api_name="/masked_img2img")[0]
        assert audio_io.read_wav_metadata(with_lora)["lora"] == "my_lora"
        x, y, z = (audio_io.load_audio(p, 44100, allow_silence=True).samples for p in (plain, with_lora, again))
        assert np.abs(x - y).max() > 1e-3
        assert np.array_equal(x, z)  # the shared pipe is itself again: the visitor's adapter is not kept on it
        with pytest.raises(AppError, match="Unknown genre LoRA 'my_lora'"):  # another visitor
            client.predict(*args, "paper", 1.0, False, "my_lora", api_name="/masked_img2img")
    finally:
        visitor.close()


@pytest.mark.slow
def test_a_second_training_waits_its_turn_cancel_stops_the_process_and_leaving_stops_it_too(
        served_app, studio, store, clips):
    """Two visitors: the second's training waits while the first's runs; the first's Cancel (gradio
    cancels per session and endpoint) stops its process, then the second's runs; the second visitor
    leaves, and its training stops and its staging folder goes."""
    first_visitor, second_visitor = Client(served_app, verbose=False), Client(served_app, verbose=False)
    try:
        first = first_visitor.submit([handle_file(c) for c in clips], "long-one", "musicti", 2000,
                                     api_name="/train_style")
        job = wait_for(lambda: running("long-one"), 120, "the first training never started")
        second = second_visitor.submit([handle_file(c) for c in clips], "long-two", "genre_lora", 2000,
                                       api_name="/train_style")
        wait_for(lambda: len(train_style.TRAINER.jobs) >= 2, 60, "the second training was not queued")
        waiting = train_style.TRAINER.jobs[1]
        assert waiting.settings.name == "long-two" and waiting.state == "waiting"
        assert train_style.TRAINER.position(waiting) == 1
        first.cancel()
        assert job.wait(60) and job.state == "cancelled"
        with pytest.raises(ProcessLookupError):
            os.kill(job.pid, 0)  # the training process is gone
        assert not job.workdir.exists()
        wait_for(lambda: running("long-two"), 120, "the second training did not start after the first was cancelled")
        second_visitor.close()  # leaves mid-training
        assert waiting.wait(60) and waiting.state == "cancelled"
        with pytest.raises(ProcessLookupError):
            os.kill(waiting.pid, 0)
        assert not waiting.workdir.exists()
        assert not list((store.root / "staging").iterdir())
        assert studio.style_names(first_visitor.session_hash).count("long-one") == 0
        assert studio.genre_loras(second_visitor.session_hash) == {}
    finally:
        first_visitor.close()
        second_visitor.close()


def test_bad_training_requests_are_refused_before_anything_runs(studio, styles, store, clips, tmp_path):
    settings = train_style.TrainStyleSettings(name="fine", steps=3)
    with pytest.raises(InputError, match="Clips of the style takes 3 to 20 audio files; got 2"):
        train_style.submit(studio, clips[:2], settings)
    with pytest.raises(InputError, match="is taken"):  # a built-in style's name is nobody's to take
        train_style.submit(studio, clips, train_style.TrainStyleSettings(name="jazz"))
    with pytest.raises(InputError, match="^Style name must be 1 to 64 ASCII letters"):
        train_style.submit(studio, clips, train_style.TrainStyleSettings(name="../escape"))
    with pytest.raises(InputError, match="What to learn must be one of 'musicti', 'genre_lora'; got 'dreambooth'"):
        train_style.submit(studio, clips, train_style.TrainStyleSettings(name="fine", kind="dreambooth"))
    silent = tmp_path / "silent.wav"
    audio_io.write_wav(silent, audio_io.Audio(np.zeros(44100, dtype=np.float32), 44100))
    with pytest.raises(InputError, match="silent"):
        train_style.submit(studio, [*clips, str(silent)], settings)
    with pytest.raises(InputError, match="Steps must be a whole number from 1 to 10000"):
        train_style.submit(studio, clips, train_style.TrainStyleSettings(name="fine", steps=0))
    assert not train_style.TRAINER.jobs
    assert not (store.root / "staging").exists() or not list((store.root / "staging").iterdir())


def test_each_cap_is_refused_in_our_words(studio, styles, store, clips, monkeypatch):
    """Per visitor: models kept, bytes kept, trainings in progress; all visitors: bytes kept. Names are
    the session's own: another visitor may reuse one."""
    fake_model(store.session_folder("a") / STYLES / "mine", 2 * 2**20)
    settings = train_style.TrainStyleSettings(name="fine", steps=3)
    monkeypatch.setattr(limits, "TRAIN_PER_SESSION", 1)
    with pytest.raises(InputError, match=r"You already have 1 trained .* \(at most 1 per visitor"):
        train_style.submit(studio, clips, settings, session="a")
    with pytest.raises(InputError, match="is taken"):
        train_style.submit(studio, clips, train_style.TrainStyleSettings(name="mine", kind="genre_lora"), session="a")
    assert "mine" not in train_style.taken_names(studio, "b", train_style.TRAINER)
    monkeypatch.setattr(limits, "TRAIN_PER_SESSION", 3)
    monkeypatch.setattr(limits, "TRAIN_SESSION_BYTES", 2**20)
    with pytest.raises(InputError, match=r"Your trained styles and LoRAs take 2.0 MB \(at most 1.0 MB per visitor\)"):
        train_style.submit(studio, clips, settings, session="a")
    monkeypatch.setattr(limits, "TRAIN_TOTAL_BYTES", 2 * 2**20)
    with pytest.raises(StudioError, match=r"Busy: the studio's space for trained styles is full \(2.0 MB of 2.0 MB"):
        train_style.submit(studio, clips, settings, session="b")

    trainer = train_style.Trainer()  # no worker: a job of "b" waiting
    trainer.jobs.append(train_style.TrainingJob(settings=settings, destination=store.destination("b", STYLES, "x", styles),
                                                profile="tiny", workdir=store.staging(), store=store, session="b"))
    with pytest.raises(StudioError, match=r"you already have 1 training\(s\) waiting or running \(at most 1 per visitor"):
        trainer.check_room("b")
    trainer.check_room("c")

    output = fake_model(store.root / "output", 3 * 2**20)
    target = store.destination("c", STYLES, "big", styles)
    monkeypatch.setattr(limits, "TRAIN_TOTAL_BYTES", 2**30)
    with pytest.raises(StudioError, match=r"The trained model \(3.0 MB\) does not fit in your space"):
        store.install(output, ("weights.bin",), target, "c")
    assert not target.exists() and store.own("c", STYLES) == {}


def test_an_expired_session_folder_is_removed_and_a_used_one_kept(store):
    old, used = store.session_folder("old"), store.session_folder("used")
    fake_model(old / STYLES / "x")
    fake_model(used / LORAS / "y")
    past = time.time() - limits.TRAIN_SESSION_SECONDS - 60
    for folder in (old, used):
        os.utime(folder, (past, past))
    assert list(store.own("used", LORAS)) == ["y"]  # a use starts its lifetime again, and sweeps
    assert not old.exists() and used.exists()
    os.utime(used, (past, past))
    assert store.sweep() == []  # at most once a minute
    assert store.sweep(force=True) == [used]

    mine, dead = store.staging(), store.root / "staging" / "999999999-gone"
    dead.mkdir()
    assert store.remove_stale_staging() == [dead] and mine.exists()


def test_leaving_cancels_the_sessions_trainings_and_removes_what_it_trained(studio, styles, store):
    trainer = train_style.Trainer()
    settings = train_style.TrainStyleSettings(name="x")
    jobs = [train_style.TrainingJob(settings=settings, destination=store.destination(who, STYLES, "x", styles),
                                    profile="tiny", workdir=store.staging(), store=store, session=who)
            for who in ("gone", "stays")]
    trainer.jobs.extend(jobs)
    fake_model(store.session_folder("gone") / STYLES / "y")
    fake_model(store.session_folder("stays") / STYLES / "y")
    assert train_style.forget(studio, "gone", trainer) == [jobs[0]]
    assert jobs[0]._cancel.is_set() and not jobs[1]._cancel.is_set()
    assert not store.session_folder("gone").exists() and store.session_folder("stays").exists()


def test_shared_mode_keeps_the_studio_before_sessions(studio, styles, store, monkeypatch):
    """STUDIO_TRAIN_SHARED=1: a style goes into the studio's styles folder and a LoRA into the shared
    LoRA folder, listed for every visitor, with no per-session cap, names unique across everyone."""
    monkeypatch.setattr(store, "shared", True)
    assert store.destination("a", STYLES, "x", styles) == styles / "x"
    assert store.destination("a", LORAS, "x", styles) == store.shared_loras() / "x"
    monkeypatch.setattr(limits, "TRAIN_PER_SESSION", 0)
    store.check_room("a")  # no per-session cap
    fake_model(store.shared_loras() / "everyones")
    assert list(studio.genre_loras("anyone")) == ["everyones"]
    assert "everyones" in train_style.taken_names(studio, "b", train_style.TRAINER)
    trainer = train_style.Trainer()
    trainer.jobs.append(train_style.TrainingJob(settings=train_style.TrainStyleSettings(name="queued"),
                                                destination=styles / "queued", profile="tiny",
                                                workdir=store.staging(), store=store, session="a"))
    assert "queued" in train_style.taken_names(studio, "b", trainer)
    assert train_style.forget(studio, "a", trainer) and store.shared_loras().exists()  # nothing shared is removed


@pytest.mark.slow
def test_a_script_trains_in_shared_mode_and_a_batch_job_uses_the_style(studio, styles, store, clips, tmp_path,
                                                                       monkeypatch):
    """A Python caller has no session (docs/FEATURES.md, "Without a page"): in shared mode what it trains
    goes into the styles folder every caller lists, kept for good, so ``python -m studio batch`` (no session
    either) runs with it by name."""
    monkeypatch.setattr(store, "shared", True)
    job = studio.train_style(clips, train_style.TrainStyleSettings(name="scripted", steps=2))
    assert job.wait(300) and job.state == "done", job.error
    assert (styles / "scripted" / "style.json").is_file() and not (store.root / "sessions").exists()
    assert store.sweep(now=time.time() + 10 * limits.TRAIN_SESSION_SECONDS, force=True) == []
    sounds = tmp_path / "in"
    sounds.mkdir()
    shutil.copy(clips[0], sounds / "sound.wav")
    summary = batch.run_batch("style_interpolation", sounds, tmp_path / "out", ["styles=scripted", "steps=2"],
                              studio=studio)
    assert summary["made"] == 1 and not summary["failed"], summary
    assert audio_io.read_wav_metadata(tmp_path / "out" / "sound" / "styled.wav")["styles"] == ["scripted"]


def test_the_estimate_before_a_cpu_run(studio):
    from ui.train_style import estimate

    assert estimate(studio, 500).startswith("About ") and "the CPU" in estimate(studio, 500)
    assert estimate(studio, 500, "genre_lora").startswith("About ")
    assert estimate(studio, 500, "nope") == ""


def test_an_exiting_server_ends_the_running_training_process(styles, store):
    """A training runs in a process session of its own and would outlive the server: ``stop_all``
    (registered with atexit for the app's queue) cancels every job and ends the running one's group."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    trainer = train_style.Trainer()
    settings = train_style.TrainStyleSettings(name="x")
    running_job, waiting_job = (train_style.TrainingJob(settings=settings, destination=store.destination(who, STYLES,
                                                        "x", styles), profile="tiny", workdir=store.staging(),
                                                        store=store, session=who) for who in ("a", "b"))
    running_job.state, running_job.pid = "running", process.pid
    trainer.jobs.extend([running_job, waiting_job])
    try:
        trainer.stop_all()
        assert process.wait(10) != 0
        assert running_job._cancel.is_set() and waiting_job._cancel.is_set()
    finally:
        if process.poll() is None:
            process.kill()
