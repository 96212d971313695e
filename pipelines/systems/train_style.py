"""Learn a MusicTI style from inside the app: a queue of trainings, each in its own process.

``submit`` checks the request (3-20 clips that decode and are not silent, a new style name, the step
count), copies the clips into a staging folder and queues a job; one worker thread runs the jobs one
at a time as ``python -m training.style`` subprocesses (never in the server's threads), on the same
base model and profile as the app. The worker reads the recipe's ``loss.csv`` as it grows (step,
loss), stops the process on ``cancel()`` or when it passes ``limits.TRAIN_MAX_SECONDS``, and on success
moves the style (``style.json``, ``style.safetensors``, its ``training.json`` and ``loss.csv``) into
the studio's styles folder, where the style tab lists it at once (``StyleLibrary`` rescans its folder).

Not on ZeroGPU: there the GPU is lent to the app's own process for one call at a time, and a
training needs it for minutes in another process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError, StudioError

from pipelines.schema import limits

KINDS = ("musicti",)  # the genre LoRA recipe (training.riffusion_lora) is not offered in the app yet
STYLE_FILES = ("style.json", "style.safetensors", "training.json", "loss.csv")
# Rough seconds per training step (batch 1) to tell the user before a run: MusicTI's style network
# back-propagates through the frozen SD 1.5 UNet at 512 px. Measured: tiny profile about 1.4 s a step
# on a loaded 2-core CPU; the real model's figures are estimates from SD 1.5 training speeds.
SECONDS_PER_STEP = {("tiny", "cpu"): 1.5, ("tiny", "gpu"): 0.05, ("real", "cpu"): 30.0, ("real", "gpu"): 0.3}
TINY_RESOLUTION = 64  # the tiny profile trains on 64 px spectrograms (its UNet is random: size is all that matters)


@dataclass(frozen=True)
class TrainStyleSettings(limits.Settings):
    """A style training: its name (the style tab's), the recipe, and optimizer steps (MusicTI: 10 000;
    the default finishes in minutes on a GPU)."""

    name: str = "my-style"
    kind: str = "musicti"
    steps: int = 500

    TEXTS = {"name": ("style name", True, "name it, for example 'accordion'")}
    CHOICES = {"kind": KINDS}
    RANGES = {"steps": limits.TRAIN_STEPS}

    def check(self) -> None:
        from pipelines.models.style_embedding import _NAME

        if not _NAME.match(self.name.strip()):
            raise InputError(f"The style name {self.name!r} must start with a letter or digit and hold at most 64 "
                             "letters, digits, spaces or . + - _")

    def estimate_seconds(self, profile: str, device: str) -> float:
        """Rough training time (``SECONDS_PER_STEP``), start-up not included."""
        kind = ("tiny" if profile == "tiny" else "real", "cpu" if device == "cpu" else "gpu")
        return SECONDS_PER_STEP[kind] * int(self.steps)


@dataclass
class TrainingJob:
    """One training: ``state`` is waiting, running, done, failed or cancelled; ``losses`` (step, loss)."""

    settings: TrainStyleSettings
    styles_root: Path
    profile: str
    workdir: Path
    device: str = "cpu"  # the app's device: on CUDA the frozen models train in fp16 (half the memory)
    state: str = "waiting"
    losses: list[tuple[int, float]] = field(default_factory=list)
    error: str = ""
    pid: int | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    _cancel: threading.Event = field(default_factory=threading.Event)

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

    def names_in_queue(self) -> set[str]:
        with self._lock:
            return {job.settings.name.strip() for job in self.jobs}

    def add(self, job: TrainingJob) -> TrainingJob:
        with self._lock:
            if len(self.jobs) >= limits.TRAIN_QUEUE:
                raise StudioError(f"Busy: {len(self.jobs)} style trainings are queued (at most {limits.TRAIN_QUEUE}). "
                                  "Try again when one has finished.")
            if job.settings.name.strip() in {j.settings.name.strip() for j in self.jobs}:
                raise InputError(f"A style named {job.settings.name!r} is already being trained; pick another name.")
            self.jobs.append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="studio-style-training", daemon=True)
                self._worker.start()
            self._lock.notify_all()
        return job

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self.jobs:
                    self._worker = None
                    return
                job = self.jobs[0]
            try:
                self._run(job)
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
        name = job.settings.name.strip()
        output = job.workdir / "style"
        command = [sys.executable, "-m", "training.style", "--data", str(job.workdir / "clips"), "--output",
                   str(output), "--name", name, "--profile", job.profile, "--max-steps", str(int(job.settings.steps)),
                   "--checkpoint-every", "0"]
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
        if process.returncode != 0 or not (output / "style.json").is_file():
            tail = (job.workdir / "training.log").read_text(errors="replace").strip().splitlines()[-3:]
            job.state = "failed"
            job.error = "The training failed: " + (" / ".join(tail) or f"exit {process.returncode}")
            return
        _install(output, job.styles_root / name)
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


def _install(output: Path, target: Path) -> None:
    """The trained style's files into ``target`` (written beside it, then renamed: never half a style)."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in STYLE_FILES:
        if (output / name).is_file():
            shutil.copy2(output / name, partial / name)
    partial.rename(target)


TRAINER = Trainer()


def submit(studio, clips: Any, settings: TrainStyleSettings, trainer: Trainer | None = None) -> TrainingJob:
    """Queue a training of ``settings.name`` from ``clips`` (paths, or anything ``load_audio`` reads).

    Raises InputError for bad settings, fewer than 3 or more than 20 clips, a clip that does not decode
    or is silent, or a name a style or a queued training already has; StudioError on ZeroGPU.
    Returns the job, already queued (``trainer``: the app's ``TRAINER`` by default).
    """
    from pipelines.signal import audio as audio_io
    from pipelines.models.device import ZERO_GPU
    from pipelines.models.style_embedding import list_styles

    if ZERO_GPU:
        raise StudioError("Training a style is off on ZeroGPU: the GPU is lent to the app's own process one call at "
                          "a time, and a training needs it for minutes in a process of its own. Run "
                          "`python -m training.style --data CLIPS --output styles/NAME` on a GPU machine instead.")
    trainer = trainer or TRAINER
    settings = settings.validate()
    name = settings.name.strip()
    paths = [getattr(clip, "name", clip) for clip in (clips or [])]
    limits.TRAIN_CLIPS.check("number of clips", len(paths))
    root = Path(studio._style_library().root)
    if name in list_styles(root) or name in trainer.names_in_queue():
        raise InputError(f"A style named {name!r} already exists; pick another name.")
    workdir = Path(tempfile.mkdtemp(prefix="studio-train-"))
    try:
        (workdir / "clips").mkdir()
        for index, path in enumerate(paths):
            clip = audio_io.load_audio(path, 44100)  # checked here, in the studio's words, before any training
            audio_io.write_wav(workdir / "clips" / f"clip{index:02d}.wav", clip)
    except Exception:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return trainer.add(TrainingJob(settings=settings, styles_root=root, profile=studio.info.profile,
                                   workdir=workdir, device=studio.info.device))
