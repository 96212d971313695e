"""ZeroGPU start without the unpublished models: the rest is preloaded, the app serves, and the missing
models and their tabs are named."""

import pytest


@pytest.fixture
def zero_gpu(monkeypatch):
    """A simulated ZeroGPU: the flag set, and a stand-in ``spaces`` whose GPU decorator records durations."""
    import sys
    import types

    import pipelines.models.device as device
    import pipelines.host as studio_module  # preload and signal_device read the flag there

    durations = []

    def GPU(duration=60):  # noqa: N802  (spaces' own name)
        def decorate(fn):
            def on_gpu(*args, **kwargs):
                durations.append(duration)
                return fn(*args, **kwargs)
            return on_gpu
        return decorate

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    monkeypatch.setattr(device, "ZERO_GPU", True)
    monkeypatch.setattr(studio_module, "ZERO_GPU", True)
    return durations


@pytest.mark.slow
def test_zero_gpu_start_survives_missing_unpublished_models(zero_gpu, monkeypatch, tmp_path):
    """The classifiers and the AMUSE VAE absent: the rest is preloaded, the app serves, and the About
    tab names what is missing and which tabs need it; a tab that needs it says so when used."""
    from gradio_client import Client

    import app
    from conftest import free_port
    from pipelines.studio import Studio

    monkeypatch.setenv("STUDIO_MODEL_GENRE_CLASSIFIER", str(tmp_path / "no-genre"))
    monkeypatch.setenv("STUDIO_MODEL_AMUSE_VAE", str(tmp_path / "no-vae"))
    studio = Studio(profile="tiny", device="cpu")
    studio.preload()
    where = {row["name"]: row["where"] for row in studio.describe()["models"]}
    assert set(studio.unavailable) == {"genre_classifier", "amuse"}
    assert where["genre_classifier"] == where["amuse"] == "not loaded"
    assert all(place != "not loaded" for name, place in where.items() if name not in studio.unavailable)
    missing = {row["model"]: row["tabs"] for row in studio.describe()["unavailable"]}
    assert missing == {"genre_classifier": ["Music to image"], "amuse": ["Playlist to music"]}

    demo = app.queue(app.build_demo(studio))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        summary, _ = client.predict(api_name="/status")
        assert "ZeroGPU" in summary and "Not loaded at start" in summary
        assert "genre_classifier** (needed by Music to image)" in summary and "no-genre" in summary
        assert "amuse** (needed by Playlist to music)" in summary and "no-vae" in summary
        caption, songs = client.predict(None, "a quiet forest at dawn", api_name="/recommend_songs")
        assert caption == "a quiet forest at dawn" and songs  # a tab with its models keeps working
        assert zero_gpu, "the request must have run inside the stand-in spaces.GPU"
    finally:
        demo.close()


def test_preload_keeps_going_past_a_missing_model(zero_gpu):
    """Fast twin of the test above: the Studio's preload with stand-in loaders, one of them missing."""
    from core.errors import ModelUnavailableError
    from pipelines.studio import TAB_MODELS, Studio

    studio = Studio(profile="tiny", device="cpu")
    assert set(studio.manager.names()) == {name for names in TAB_MODELS.values() for name in names}

    def missing():
        raise ModelUnavailableError("The 'emotion_classifier' model is not provided.")

    for name in studio.manager.names():
        studio.manager.register(name, (lambda: torch_module()) if name != "emotion_classifier" else missing,
                                replace=True)
    studio.preload()
    assert studio.unavailable == {"emotion_classifier": "The 'emotion_classifier' model is not provided."}
    assert studio.describe()["unavailable"] == [{"model": "emotion_classifier", "tabs": ["Music to image"],
                                                 "message": "The 'emotion_classifier' model is not provided."}]
    placed = [row["name"] for row in studio.manager.status() if row["where"] == "cpu"]
    assert len(placed) == len(studio.manager.names()) - 1


def torch_module():
    import torch

    return torch.nn.Linear(2, 2)
