"""Learn a style from inside the app: a queue of trainings, each in its own process.

Two recipes (``RECIPES``): a MusicTI style (``training.style``, for the style tab) and a genre LoRA
(``training.riffusion_lora``, for sound to music; the style's name is its instance prompt).
``submit`` checks the request (3-20 clips that decode and are not silent, a name free in the
session, room in the session's and the studio's caps, the step count), copies the clips into a
staging folder and queues a job; one worker thread runs the jobs one at a time as ``python -m
<recipe>`` subprocesses (never in the server's threads), on the same base model and profile as the
app. The worker reads the recipe's ``loss.csv`` as it grows (step, loss), stops the process on
``cancel()`` or when it passes ``limits.TRAIN_MAX_SECONDS``, and on success installs the result in
the visitor's own folder (``trained.TrainedStore``): the style tab (or sound to music's LoRA choice)
lists it for that session at once, and for no one else. ``forget`` (the page closed) cancels the
session's trainings and removes what it trained. Shared mode (``limits.TRAIN_SHARED``) installs into
the studio's styles folder and the shared LoRA folder instead, for everyone.

Not on ZeroGPU: there the GPU is lent to the app's own process for one call at a time, and a
training needs it for minutes in another process.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError, StudioError, concerning_parameter

from pipelines.schema import limits
from pipelines.models.trained import LORAS, STYLES


@dataclass(frozen=True)
class Recipe:
    """How the app runs one training recipe: its module, where its result goes (``trained.STYLES`` or
    ``LORAS``), the files it keeps, the file that says it finished, and rough seconds per step."""

    module: str
    kind: str
    files: tuple[str, ...]
    done_file: str
    # (profile kind, device kind) -> seconds per step (batch 1), told to the user before a run. Tiny: measured
    # on a loaded 2-core CPU (MusicTI about 1.4 s; the genre LoRA 0.93 s a step over 12 steps at load average 9,
    # training.json's seconds_per_step); the real model's figures are estimates from SD 1.5 training speeds.
    seconds_per_step: dict[tuple[str, str], float]

    def arguments(self, name: str) -> list[str]:
        """The recipe's own flags for a training named ``name``."""
        return ["--name", name] if self.kind == STYLES else ["--instance-prompt", name]


RECIPES = {
    # MusicTI's style network back-propagates through the frozen SD 1.5 UNet and text encoder at 512 px
    "musicti": Recipe("training.style", STYLES, ("style.json", "style.safetensors", "training.json", "loss.csv"),
                      "style.json", {("tiny", "cpu"): 1.5, ("tiny", "gpu"): 0.05, ("real", "cpu"): 30.0,
                                     ("real", "gpu"): 0.3}),
    # DreamBooth-LoRA: rank-4 adapters on the UNet's attention, back-propagated through the UNet only
    "genre_lora": Recipe("training.riffusion_lora", LORAS,
                         ("pytorch_lora_weights.safetensors", "lora.json", "training.json", "loss.csv"),
                         "pytorch_lora_weights.safetensors", {("tiny", "cpu"): 1.0, ("tiny", "gpu"): 0.05,
                                                              ("real", "cpu"): 25.0, ("real", "gpu"): 0.3}),
}
KINDS = tuple(RECIPES)
TINY_RESOLUTION = 64  # the tiny profile trains on 64 px spectrograms (its UNet is random: size is all that matters)


@dataclass(frozen=True)
class TrainStyleSettings(limits.Settings):
    """A training: its name (as the style tab or sound to music's LoRA choice lists it; a genre LoRA's
    instance prompt too), the recipe (``KINDS``), and optimizer steps (MusicTI: 10 000; the default
    finishes in minutes on a GPU)."""

    name: str = "my-style"
    kind: str = "musicti"
    steps: int = 500

    TEXTS = {"name": (True, "name it, for example 'accordion'", None)}  # its length: the names' rule (check_name)
    CHOICES = {"kind": KINDS}
    RANGES = {"steps": limits.TRAIN_STEPS}
    LABELS = {"name": "Style name", "kind": "What to learn"}

    def check(self) -> None:
        from pipelines.models.style_embedding import check_name

        with concerning_parameter("name"):
            check_name(self.name.strip(), self.label("name"))

    def estimate_seconds(self, profile: str, device: str) -> float:
        """Rough training time (the recipe's ``seconds_per_step``), start-up not included."""
        kind = ("tiny" if profile == "tiny" else "real", "cpu" if device == "cpu" else "gpu")
        return RECIPES[self.kind].seconds_per_step[kind] * int(self.steps)


@dataclass
class TrainingJob:
    """One training: ``state`` is waiting, running, done, failed or cancelled; ``losses`` (step, loss).
    ``destination``: the folder the result is installed as; ``session``: whose it is."""

    settings: TrainStyleSettings
    destination: Path
    profile: str
    workdir: Path
    store: Any  # the studio's trained.TrainedStore
    session: str | None = None
    device: str = "cpu"  # the app's device: on CUDA the frozen models train in fp16 (half the memory)
    state: str = "waiting"
    losses: list[tuple[int, float]] = field(default_factory=list)
    error: str = ""
    pid: int | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    _cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def recipe(self) -> Recipe:
        return RECIPES[self.settings.kind]

    @property
    def step(self) -> int:
        return self.losses[-1][0] if self.losses else 0

    def cancel(self) -> None:
        """Stop the training (its process, or its place in the queue); nothing is kept."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)


class Trainer:
    """The queue: jobs run one at a time, in order, by one worker thread started on demand."""

    def __init__(self, max_seconds: float = limits.TRAIN_MAX_SECONDS):
        self.max_seconds = max_seconds
        self.jobs: list[TrainingJob] = []  # waiting and running, in order
        self._lock = threading.Condition()
        self._worker: threading.Thread | None = None

    def position(self, job: TrainingJob) -> int:
        """Jobs ahead of ``job`` (0: it runs, or is next)."""
        with self._lock:
            return self.jobs.index(job) if job in self.jobs else 0

    def jobs_of(self, session: str | None) -> list[TrainingJob]:
        """The session's trainings waiting or running."""
        with self._lock:
            return [job for job in self.jobs if job.session == session]

    def names_in_queue(self, session: str | None = None, everyone: bool = False) -> set[str]:
        """Names being trained for ``session`` (``everyone``: for all sessions, shared mode)."""
        with self._lock:
            return {job.settings.name.strip() for job in self.jobs if everyone or job.session == session}

    def check_room(self, session: str | None) -> None:
        """StudioError when the queue is full or the session has ``limits.TRAIN_JOBS_PER_SESSION``
        trainings waiting or running."""
        with self._lock:
            if len(self.jobs) >= limits.TRAIN_QUEUE:
                raise StudioError(f"Busy: {len(self.jobs)} style trainings are queued (at most {limits.TRAIN_QUEUE}). "
                                  "Try again when one has finished.")
            mine = sum(job.session == session for job in self.jobs)
            if mine >= limits.TRAIN_JOBS_PER_SESSION:
                raise StudioError(f"Busy: you already have {mine} training(s) waiting or running (at most "
                                  f"{limits.TRAIN_JOBS_PER_SESSION} per visitor). Try again when it has finished.")

    def add(self, job: TrainingJob) -> TrainingJob:
        with self._lock:
            self.check_room(job.session)
            if job.destination.name in {j.destination.name for j in self.jobs if j.destination.parent == job.destination.parent}:
                raise InputError(f"A style named {job.settings.name!r} is already being trained; pick another name.")
            self.jobs.append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="studio-style-training", daemon=True)
                self._worker.start()
            self._lock.notify_all()
        return job

    def cancel_session(self, session: str | None) -> list[TrainingJob]:
        """Cancel the session's trainings (its page closed); returns them."""
        jobs = self.jobs_of(session)
        for job in jobs:
            job.cancel()
        return jobs

    def stop_all(self) -> None:
        """Cancel every training and end the running one's process group now (the server is exiting:
        a training runs in a session of its own and would outlive it; its staging folder is removed
        at the next start, ``TrainedStore.remove_stale_staging``)."""
        with self._lock:
            jobs = list(self.jobs)
        for job in jobs:
            job.cancel()
            if job.state == "running" and job.pid:
                try:
                    os.killpg(job.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self.jobs:
                    self._worker = None
                    return
                job = self.jobs[0]
            try:
                self._run(job)
            except StudioError as error:  # the result does not fit the caps: said in our words
                job.state, job.error = "failed", str(error)
            except Exception as error:  # noqa: BLE001  (one failed job must not stop the queue)
                job.state, job.error = "failed", f"The training failed: {type(error).__name__}: {error}"
            finally:
                shutil.rmtree(job.workdir, ignore_errors=True)
                with self._lock:
                    self.jobs.remove(job)
                job.finished.set()

    def _run(self, job: TrainingJob) -> None:
        if job._cancel.is_set():
            job.state = "cancelled"
            return
        recipe, name = job.recipe, job.settings.name.strip()
        output = job.workdir / "output"
        command = [sys.executable, "-m", recipe.module, "--data", str(job.workdir / "clips"), "--output",
                   str(output), *recipe.arguments(name), "--profile", job.profile, "--max-steps",
                   str(int(job.settings.steps)), "--checkpoint-every", "0"]
        if job.profile == "tiny":
            command += ["--resolution", str(TINY_RESOLUTION)]
        if job.device.startswith("cuda"):  # beside the app's own models on the same card
            command += ["--mixed-precision", "fp16"]
        log = (job.workdir / "training.log").open("w")
        root = Path(__file__).resolve().parents[2]
        # its own process group (start_new_session): a cancel stops all of it
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
        job.pid, job.state = process.pid, "running"
        started = time.monotonic()
        try:
            while process.poll() is None:
                job.losses = _read_losses(output / "loss.csv") or job.losses
                if job._cancel.is_set() or time.monotonic() - started > self.max_seconds:
                    _stop(process)
                    if job._cancel.is_set():
                        job.state = "cancelled"
                    else:
                        job.state = "failed"
                        job.error = (f"The training passed its time limit of {self.max_seconds:g} s and was stopped; "
                                     "try fewer steps.")
                    return
                time.sleep(0.2)
        finally:
            log.close()
        job.losses = _read_losses(output / "loss.csv") or job.losses
        if process.returncode != 0 or not (output / recipe.done_file).is_file():
            tail = (job.workdir / "training.log").read_text(errors="replace").strip().splitlines()[-3:]
            job.state = "failed"
            job.error = "The training failed: " + (" / ".join(tail) or f"exit {process.returncode}")
            return
        if job._cancel.is_set():  # the visitor left while it finished: nothing is kept
            job.state = "cancelled"
            return
        job.store.install(output, recipe.files, job.destination, job.session)
        job.state = "done"


def _read_losses(path: Path) -> list[tuple[int, float]]:
    try:
        lines = path.read_text().strip().splitlines()[1:]
    except OSError:
        return []
    rows = []
    for line in lines:
        step, _, loss = line.partition(",")
        try:
            rows.append((int(step), float(loss)))
        except ValueError:  # a line being written
            break
    return rows


def _stop(process: subprocess.Popen) -> None:
    """Terminate the training's process group, then kill it if it has not ended within 10 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


TRAINER = Trainer()
atexit.register(TRAINER.stop_all)


def taken_names(studio, session: str | None, trainer: Trainer) -> set[str]:
    """Names a new training of ``session`` may not have: the built-in styles, the shared LoRAs, the
    session's own styles and LoRAs and its trainings in progress (shared mode: everyone's)."""
    store = studio.trained
    names = set(studio._style_library().names()) | set(store.shared_lora_folders())
    names |= trainer.names_in_queue(session, everyone=store.shared)
    if not store.shared:
        names |= set(store.own(session, STYLES)) | set(store.own(session, LORAS))
    return names


def submit(studio, clips: Any, settings: TrainStyleSettings, trainer: Trainer | None = None,
           session: str | None = None) -> TrainingJob:
    """Queue a training of ``settings.name`` for ``session`` from ``clips`` (paths, or anything
    ``load_audio`` reads).

    Raises InputError for bad settings, fewer than 3 or more than 20 clips, a clip that does not decode
    or is silent, a name taken (``taken_names``), or a session over its caps (``TrainedStore.check_room``);
    StudioError on ZeroGPU, when the queue is full, the session already has a training in progress or
    the studio's space for trained models is full. Returns the job, already queued (``trainer``: the
    app's ``TRAINER`` by default).
    """
    from pipelines.signal import audio as audio_io
    from pipelines.models.device import ZERO_GPU

    if ZERO_GPU:
        raise StudioError("Training a style is off on ZeroGPU: the GPU is lent to the app's own process one call at "
                          "a time, and a training needs it for minutes in a process of its own. Run "
                          "`python -m training.style --data CLIPS --output styles/NAME` on a GPU machine instead.")
    trainer = trainer or TRAINER
    settings = settings.validate()
    name = settings.name.strip()
    paths = [getattr(clip, "name", clip) for clip in (clips or [])]
    if not limits.TRAIN_CLIPS.low <= len(paths) <= limits.TRAIN_CLIPS.high:  # the page's "Clips of the style"
        raise InputError(f"Clips of the style takes {limits.format_bound(limits.TRAIN_CLIPS.low)} to "
                         f"{limits.format_bound(limits.TRAIN_CLIPS.high)} audio files; got {len(paths)}.")
    store = studio.trained
    if name in taken_names(studio, session, trainer):
        raise InputError(f"The name {name!r} is taken (styles and genre LoRAs share one set of names: a built-in "
                         "style, or one already trained or training); pick another name.")
    trainer.check_room(session)
    store.check_room(session, queued=len(trainer.jobs_of(session)))
    destination = store.destination(session, RECIPES[settings.kind].kind, name, Path(studio._style_library().root))
    workdir = store.staging()
    try:
        (workdir / "clips").mkdir()
        for index, path in enumerate(paths):
            clip = audio_io.load_audio(path, 44100)  # checked here, in the studio's words, before any training
            audio_io.write_wav(workdir / "clips" / f"clip{index:02d}.wav", clip)
        return trainer.add(TrainingJob(settings=settings, destination=destination, profile=studio.info.profile,
                                       workdir=workdir, store=store, session=session, device=studio.info.device))
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def forget(studio, session: str | None, trainer: Trainer | None = None) -> list[TrainingJob]:
    """The session ended (its page closed): cancel its trainings (their processes stop and their
    staging folders go) and remove what it trained (not in shared mode). Returns the jobs cancelled."""
    jobs = (trainer or TRAINER).cancel_session(session)
    if not studio.trained.shared:
        studio.trained.forget(session)
    return jobs
