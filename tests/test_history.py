"""Session history and "Download all" (/download_session): per session, bounded, a zip with the files and parameters."""

import json
import zipfile

import pytest
from PIL import Image
from gradio_client import Client
from gradio_client.exceptions import AppError

from pipelines.schema.outputs import new_output_dir, save_png, save_wav
from core.errors import InputError
from ui import history


def t2m(client, prompt, seed):
    return client.predict(prompt, "", 1.0, 1, 7.0, seed, "riffusion", api_name="/text_to_music")


@pytest.fixture
def own_outputs(monkeypatch, tmp_path):
    """Output folders of this test alone: other processes on the machine sweep the shared one (64 newest)."""
    from pipelines.schema import outputs

    monkeypatch.setattr(outputs, "OUTPUT_ROOT", tmp_path / "outputs")


def test_download_all_gives_the_sessions_audio_images_and_parameters(served_app, own_outputs):
    mine, other = Client(served_app, verbose=False), Client(served_app, verbose=False)
    with pytest.raises(AppError, match="no results yet"):
        mine.predict(api_name="/download_session")
    first_wav, first_png = t2m(mine, "slow violin", 11)
    second_wav, _ = t2m(mine, "fast drums", 12)
    archive = mine.predict(api_name="/download_session")
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
        listing = json.loads(zipped.read("session.json"))["results"]
        assert {"01-text_to_music/text-to-music.wav", "01-text_to_music/spectrogram.png",
                "02-text_to_music/text-to-music.wav", "02-text_to_music/spectrogram.png", "session.json"} == names
        packed = zipped.read("01-text_to_music/text-to-music.wav")
    assert [r["parameters"]["prompt"] for r in listing] == ["slow violin", "fast drums"]  # oldest first
    assert [r["parameters"]["seed"] for r in listing] == [11, 12]
    assert listing[0]["parameters"]["model"] == "riffusion" and listing[0]["expired"] == []
    with open(first_wav, "rb") as handle:
        assert handle.read() == packed  # the very file the caller got
    with pytest.raises(AppError, match="no results yet"):  # another session sees none of it
        other.predict(api_name="/download_session")


def test_history_keeps_the_newest_entries_and_sessions(monkeypatch, own_outputs):
    monkeypatch.setattr(history, "_sessions", type(history._sessions)())
    monkeypatch.setattr(history, "MAX_SESSIONS", 3)
    folder = new_output_dir()
    wav = save_wav([[0.0, 0.1, -0.1]], 44100, folder / "a.wav", {"seed": 1})
    for n in range(history.MAX_ENTRIES + 5):
        history.record("text_to_music", (wav,), session="s1")
    kept = history.entries("s1")
    assert len(kept) == history.MAX_ENTRIES and kept[0].parameters == {"seed": 1}
    for name in ("s2", "s3", "s4"):
        history.record("text_to_music", wav, session=name)
    assert history.entries("s1") == [] and len(history.entries("s4")) == 1  # the least recently active went


def test_only_the_studios_saved_files_are_recorded(tmp_path, own_outputs):
    outside = save_png(Image.new("L", (4, 4)), tmp_path / "x.png", {"a": 1})
    assert history.record("x", (outside, "text", None, {"label": 1}), session="t") is None
    folder = new_output_dir()
    inside = save_png(Image.new("L", (4, 4)), folder / "y.png", {"a": 2})
    entry = history.record("y", [None, [inside]], session="t")
    assert entry.files == [inside] and entry.parameters == {"a": 2}


def test_expired_files_are_listed_not_packed(tmp_path, own_outputs):
    folder = new_output_dir()
    wav = save_wav([[0.0, 0.2]], 44100, folder / "gone.wav", {"seed": 3})
    entry = history.record("text_to_music", wav, session="expiry")
    (folder / "gone.wav").unlink()
    with zipfile.ZipFile(history.write_zip([entry], tmp_path)) as zipped:
        listing = json.loads(zipped.read("session.json"))["results"]
        assert zipped.namelist() == ["session.json"]
    assert listing[0]["expired"] == ["gone.wav"] and listing[0]["parameters"]["seed"] == 3


def test_a_result_runs_again_with_the_same_arguments(monkeypatch, own_outputs):
    monkeypatch.setattr(history, "_sessions", type(history._sessions)())
    calls = []

    def handler(prompt, seed, request=None):
        calls.append((prompt, seed))
        return save_wav([[0.0, 0.1 * seed]], 44100, new_output_dir() / "m.wav", {"prompt": prompt, "seed": seed})

    wrapped = history.recording(handler, "fake_endpoint")
    wrapped("bells", 7, object())  # as gradio calls it: its request object after the handler's own arguments
    (entry,) = history.entries("default")
    assert entry.inputs == ("bells", 7)
    again = history.rerun(entry, session="default")
    assert calls == [("bells", 7), ("bells", 7)]
    assert again.parameters == entry.parameters == {"prompt": "bells", "seed": 7} and again.files != entry.files
    assert history.entries("default") == [again, entry]
    with pytest.raises(InputError, match="cannot be run again"):
        history.rerun(history.Entry("unknown_endpoint", 0.0, []), session="default")


def test_the_spectrogram_tabs_results_join_the_history(served_app, own_outputs):
    """Both conversions of the Spectrogram tab appear in the session's history, as every other tab's runs do."""
    from gradio_client import handle_file

    from ui.common import ASSETS

    mine = Client(served_app, verbose=False)
    png, _plot = mine.predict(handle_file(str(ASSETS / "knocks.wav")), "riffusion", False, api_name="/audio_to_spectrogram")
    mine.predict(handle_file(png), "auto", api_name="/spectrogram_to_audio")
    archive = mine.predict(api_name="/download_session")
    with zipfile.ZipFile(archive) as zipped:
        folders = sorted({name.split("/")[0] for name in zipped.namelist() if "/" in name})
    assert folders == ["01-audio_to_spectrogram", "02-spectrogram_to_audio"]
