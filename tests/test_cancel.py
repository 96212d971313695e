"""Cancel stops the work itself, and the per-user limit counts a run until its work has really ended."""

import threading
import time

import numpy as np
import pytest
from PIL import Image

from pipelines.schema import limits, outputs
from ui import common


@pytest.fixture
def wide_spectrogram(tmp_path):
    """A riffusion-height spectrogram PNG as wide as accepted (65 s of sound: over a minute of
    Griffin-Lim on a 2-core CPU)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "wide.png"
    Image.fromarray(rng.integers(0, 255, (512, limits.MAX_SPECTROGRAM_WIDTH), dtype=np.uint8), "L").save(path)
    return str(path)


@pytest.fixture
def counted_inversions(studio, monkeypatch):
    """Counts studio.spectrogram_to_audio calls in progress (the inversion itself), keeping the most at once."""
    seen = {"active": 0, "most": 0, "calls": 0}
    lock = threading.Lock()
    real = studio.spectrogram_to_audio

    def counting(*args, **kwargs):
        with lock:
            seen["active"] += 1
            seen["calls"] += 1
            seen["most"] = max(seen["most"], seen["active"])
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                seen["active"] -= 1

    monkeypatch.setattr(studio, "spectrogram_to_audio", counting)
    return seen


@pytest.fixture
def own_outputs(tmp_path, monkeypatch):
    """Result folders of this test only (the default root is shared with every app on the machine)."""
    monkeypatch.setattr(outputs, "OUTPUT_ROOT", tmp_path / "outputs")
    return tmp_path / "outputs"


@pytest.mark.slow
def test_six_cancelled_inversions_never_pass_the_per_user_limit_and_write_nothing(
        served_app, wide_spectrogram, counted_inversions, own_outputs, monkeypatch):
    """Submit, cancel once the inversion runs, submit again at once: six times in one session."""
    from gradio_client import Client, handle_file

    # one run per user: a cancelled run still finishing its Griffin-Lim iteration while the next starts
    # (its place given back at the cancel, not when it stopped) shows as two at once
    monkeypatch.setattr(common, "RUN_LIMITS", common.RunLimits(max_seconds=600, per_user=1))
    client = Client(served_app, verbose=False)  # one session
    cancelled, busy, deadline = 0, 0, time.monotonic() + 180
    while cancelled < 6:
        assert time.monotonic() < deadline, f"only {cancelled} runs started in 3 minutes ({busy} refused as busy)"
        calls = counted_inversions["calls"]
        job = client.submit(handle_file(wide_spectrogram), "riffusion", api_name="/spectrogram_to_audio")
        while counted_inversions["calls"] == calls and not job.done():  # the inversion has begun, or was refused
            time.sleep(0.02)
        if counted_inversions["calls"] == calls:
            with pytest.raises(Exception, match="a cancelled run counts until it has stopped"):
                job.result()
            busy += 1  # the previous, cancelled run is still stopping: refused, and tried again at once
            continue
        time.sleep(0.3)  # some Griffin-Lim iterations in
        started = time.monotonic()
        job.cancel()
        assert time.monotonic() - started < 3  # the cancel answers at once; the work stops at its next check
        cancelled += 1
    deadline = time.monotonic() + 60
    while counted_inversions["active"] or common.running_events():  # every cancelled run stops soon
        assert time.monotonic() < deadline, f"{counted_inversions['active']} inversions still running"
        time.sleep(0.1)
    assert counted_inversions["most"] <= common.RUN_LIMITS.per_user
    time.sleep(0.5)
    assert list(own_outputs.rglob("*.wav")) == []  # no cancelled run wrote its sound


def test_a_result_is_not_saved_once_its_run_was_told_to_stop(own_outputs):
    from core import runs
    from core.errors import Cancelled
    from pipelines.schema.results import SpectrogramResult
    from pipelines.signal.spectrogram import RIFFUSION

    result = SpectrogramResult(image=Image.new("L", (8, 512)), params=RIFFUSION, audio=np.zeros((1, 100), np.float32),
                               sample_rate=RIFFUSION.sample_rate, parameters={})
    flag = threading.Event()
    token = runs.current_stop.set(flag)
    try:
        assert common.save(result, "kept").audio  # not stopped: written
        flag.set()
        with pytest.raises(Cancelled):
            common.save(result, "dropped")
    finally:
        runs.current_stop.reset(token)


@pytest.fixture
def stopped_run():
    """The run in progress (core.runs), its stop flag returned unset."""
    from core import runs

    flag = threading.Event()
    token = runs.current_stop.set(flag)
    yield flag
    runs.current_stop.reset(token)


def test_griffin_lim_stops_between_iterations(stopped_run):
    from core.errors import Cancelled
    from pipelines.signal import spectrogram

    mel = np.ones((1, spectrogram.RIFFUSION.n_mels, 64), np.float32)
    assert spectrogram.mel_to_audio(mel, iterations=2).shape[0] == 1  # not stopped: it runs
    stopped_run.set()
    with pytest.raises(Cancelled):
        spectrogram.mel_to_audio(mel, iterations=2)


def test_a_classifier_stops_between_its_features_and_its_network(stopped_run):
    from types import SimpleNamespace

    from classifiers.keras_model import KerasClassifier
    from core.errors import Cancelled

    ran = []

    def features(samples):  # the cancel arrives while the features are computed
        stopped_run.set()
        return samples

    model = SimpleNamespace(features=features, predict_features=lambda f: ran.append(f), labels=("a", "b"))
    with pytest.raises(Cancelled):
        KerasClassifier.classify(model, np.zeros(100, np.float32))
    assert ran == []
