"""Listen while it is made: pipelines hand out finished parts, the UI streams them; loop playback."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import soundfile

from pipelines.schema import streaming
from pipelines.schema.settings import ImageToMusicSettings, TextToMusicSettings


def collect(run):
    """(parts, result) of ``run()`` with a listener installed."""
    parts = []
    with streaming.listening(lambda samples, rate: parts.append((samples, rate))):
        result = run()
    return parts, result


def same_up_to_gain(parts, final):
    """The parts, joined, are the final audio at one gain (where neither clipped)."""
    joined = np.concatenate([samples for samples, _ in parts], axis=-1)
    assert joined.shape == final.shape
    kept = (np.abs(joined) < 0.999) & (np.abs(final) > 1e-3)
    ratio = joined[kept] / final[kept]
    assert kept.mean() > 0.5 and np.allclose(ratio, np.median(ratio), rtol=1e-3)


@pytest.mark.slow
def test_text_to_music_hands_out_each_window_as_it_is_done(studio):
    settings = TextToMusicSettings(prompt="funk", seconds=12.0, steps=2, seed=5)
    parts, result = collect(lambda: studio.text_to_music(settings))
    assert len(parts) == 3 and all(rate == 44100 for _, rate in parts)  # one part per window
    assert parts[0][0].shape[-1] == 512 * 441 - 1 - round(1.28 * 44100)  # up to the next window's crossfade
    same_up_to_gain(parts, result.audio)
    assert collect(lambda: studio.text_to_music(settings))[1].audio.tobytes() == result.audio.tobytes()
    alone = studio.text_to_music(settings)  # without a listener: the same file
    assert np.array_equal(alone.audio, result.audio)


def test_long_musicgen_hands_out_each_window(studio, monkeypatch):
    from pipelines.systems import image_to_music as i2m

    monkeypatch.setattr(i2m, "WINDOW_SECONDS", 3.0)  # windows of 3 s prompted with 1 s: 3 + 2 + 2 s
    monkeypatch.setattr(i2m, "OVERLAP_SECONDS", 1.0)
    parts, result = collect(lambda: studio.image_to_music(None, "calm piano", ImageToMusicSettings(seconds=7.0)))
    assert len(parts) == 3 and parts[0][1] == 32000
    same_up_to_gain(parts, result.audio)


def test_a_handler_streams_to_its_sessions_listener_and_ends_it(monkeypatch):
    from ui import streaming as ui_streaming

    monkeypatch.setattr(ui_streaming, "_session", lambda request=None: "session-a")
    chunks = []
    listener = threading.Thread(target=lambda: chunks.extend(ui_streaming.listen("demo", wait=30)))
    listener.start()
    while ("session-a", "demo") not in ui_streaming._channels:
        threading.Event().wait(0.01)

    @ui_streaming.streams("demo")
    def handler():
        live = streaming.Progressive(8000)
        live.update(np.full((1, 800), 0.25, dtype=np.float32))
        live.update(np.full((1, 2000), 0.25, dtype=np.float32))
        return "file.wav"

    assert handler() == "file.wav"
    listener.join(timeout=10)
    assert not listener.is_alive()  # the run's end closed the channel
    decoded = [soundfile.read(io.BytesIO(chunk), dtype="float32") for chunk in chunks]
    assert [len(samples) for samples, _ in decoded] == [800, 1200] and decoded[0][1] == 8000
    assert np.allclose(np.concatenate([samples for samples, _ in decoded]), 10 ** (-1 / 20), atol=1 / 32768)
    assert ("session-a", "demo") not in ui_streaming._channels
    assert handler() == "file.wav"  # no listener: runs as before


@pytest.mark.parametrize("ffmpeg", [True, False])
def test_live_players_where_gradio_can_stream_and_every_player_loops(studio, monkeypatch, ffmpeg):
    import gradio as gr

    import app
    from ui import streaming as ui_streaming

    monkeypatch.setattr(ui_streaming, "available", lambda: ffmpeg)
    demo = app.build_demo(studio)
    players = [block for block in demo.blocks.values() if isinstance(block, gr.Audio)]
    live = [player for player in players if player.streaming]
    assert len(live) == (4 if ffmpeg else 0)  # sound to music, style interpolation, text to music, image to music
    assert all(player.loop for player in players if not player.streaming) and len(players) > 10
    names = set(demo.get_api_info()["named_endpoints"])
    assert not any("listen" in name for name in names)  # the listeners are not API endpoints


def test_sound_to_music_hands_out_each_window_as_it_is_done(studio):
    """Every windowed pipeline (``windows.render_windows``: sound to music, style interpolation) streams."""
    from pipelines.schema.settings import SoundToMusicSettings

    t = np.arange(int(9.0 * 44100)) / 44100
    sound = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    parts, result = collect(lambda: studio.sound_to_music((44100, sound), SoundToMusicSettings(steps=2)))
    assert len(parts) == 2 and parts[0][0].shape[-1] == 512 * 441 - 1 - round(0.2 * 44100)
    same_up_to_gain(parts, result.audio)
