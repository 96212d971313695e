"""Listen while it is made: pipelines hand out finished parts, the UI streams them; loop playback."""

from __future__ import annotations

import asyncio
import io
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

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


def _listening(ui_streaming, chunks: list) -> threading.Thread:
    """The page's listener (an async generator) draining into ``chunks``, in a thread of its own."""

    async def drain():
        async for chunk in ui_streaming.listen("demo", wait=30):
            chunks.append(chunk)

    listener = threading.Thread(target=lambda: asyncio.run(drain()))
    listener.start()
    return listener


def _taken(ui_streaming) -> bool:
    channel = ui_streaming._channels.get(("session-a", "demo"))
    return channel is not None and channel.taken


def test_a_handler_streams_to_its_sessions_listener_and_ends_it(monkeypatch):
    from ui import streaming as ui_streaming

    monkeypatch.setattr(ui_streaming, "_session", lambda request=None: "session-a")
    halfway = threading.Event()

    @ui_streaming.streams("demo")
    def handler():
        live = streaming.Progressive(8000)
        live.update(np.full((1, 800), 0.25, dtype=np.float32))
        halfway.wait(10)
        live.update(np.full((1, 2000), 0.25, dtype=np.float32))
        return "file.wav"

    # the page opens the channel, then submits the listener and the run, which may start in either order
    for listener_first in (True, False):
        chunks, halfway = [], threading.Event()
        ui_streaming.open_channel("demo")
        if listener_first:
            listener = _listening(ui_streaming, chunks)
            while not _taken(ui_streaming):
                time.sleep(0.01)
            halfway.set()
            assert handler() == "file.wav"
        else:  # the run starts first; the listener takes the channel while it runs
            run = threading.Thread(target=handler)
            run.start()
            listener = _listening(ui_streaming, chunks)
            while not _taken(ui_streaming):
                time.sleep(0.01)
            halfway.set()
            run.join(timeout=10)
        listener.join(timeout=10)
        assert not listener.is_alive()  # the run's end closed the channel
        decoded = [soundfile.read(io.BytesIO(chunk), dtype="float32") for chunk in chunks]
        assert [len(samples) for samples, _ in decoded] == [800, 1200] and decoded[0][1] == 8000
        assert np.allclose(np.concatenate([samples for samples, _ in decoded]), 10 ** (-1 / 20), atol=1 / 32768)
        assert ("session-a", "demo") not in ui_streaming._channels
    halfway.set()
    assert handler() == "file.wav"  # no channel (an API call): runs as before


def test_a_channel_nobody_took_is_dropped_when_its_run_ends(monkeypatch):
    from ui import streaming as ui_streaming

    monkeypatch.setattr(ui_streaming, "_session", lambda request=None: "session-a")

    @ui_streaming.streams("demo")
    def handler():
        streaming.Progressive(8000).update(np.full((1, 800), 0.25, dtype=np.float32))
        return "file.wav"

    ui_streaming.open_channel("demo")
    assert handler() == "file.wav"
    assert ("session-a", "demo") not in ui_streaming._channels  # its parts are not kept
    chunks, started = [], time.monotonic()
    _listening(ui_streaming, chunks).join(timeout=10)  # a listener that comes too late ends at once
    assert chunks == [] and time.monotonic() - started < 5


def test_open_channels_are_bounded_the_oldest_ends(monkeypatch):
    from ui import streaming as ui_streaming

    sessions = iter(range(10**6))
    monkeypatch.setattr(ui_streaming, "_session", lambda request=None: f"session-{next(sessions)}")
    monkeypatch.setattr(ui_streaming, "MAX_CHANNELS", 3)
    monkeypatch.setattr(ui_streaming, "_channels", {})
    opened = []
    for n in range(5):
        ui_streaming.open_channel("demo")
        opened.append(ui_streaming._channels[(f"session-{n}", "demo")])
    assert list(ui_streaming._channels) == [(f"session-{n}", "demo") for n in (2, 3, 4)]
    assert [channel.parts.qsize() for channel in opened] == [1, 1, 0, 0, 0]  # the two oldest ended (None sent)
    assert opened[0].parts.get_nowait() is None


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


# -- the page, end to end: the live player plays the parts before the file arrives ------------------------
@dataclass
class LongRun:
    tab: str
    button: str
    result: str  # the final file's name
    seconds: float  # its length
    fill: Callable  # (page, a 14 s sound to upload) -> None


def _upload(label: str) -> Callable:
    def upload(page, sound: Path) -> None:
        block = page.locator(".block", has=page.get_by_text(label, exact=True)).locator("visible=true").first
        block.locator("input[type=file]").first.set_input_files(str(sound))
        page.wait_for_function("(name) => [...document.querySelectorAll(`a[href*='${name}'], audio[src*='${name}']`)]"
                               ".some(element => element.offsetParent !== null)", arg=sound.name, timeout=60_000)
    return upload


def _length(label: str, seconds: float) -> Callable:
    return lambda page, sound: page.get_by_label(label).locator("visible=true").first.fill(f"{seconds:g}")


def _thumbnail(name: str, seconds: float) -> Callable:
    def pick(page, sound: Path) -> None:
        page.locator(f"img[src*='{name}']").locator("visible=true").first.click()
        page.wait_for_function(f"() => [...document.querySelectorAll(\"img[src*='{name}']\")]"
                               ".filter(img => img.offsetParent && img.naturalWidth > 0).length >= 2")
        _length("Duration (s)", seconds)(page, sound)
    return pick


LONG_RUNS = [  # each makes 3 parts (3 windows) on the tiny profile
    LongRun("Text to music", "Make music", "text-to-music.wav", 12.0, _length("Length (s)", 12)),
    LongRun("Sound to music", "Make music", "music.wav", 14.0, _upload("Everyday sound")),
    LongRun("Style interpolation", "Apply styles", "styled.wav", 14.0, _upload("Content audio")),
    LongRun("Image to music", "Make music", "image-to-music.wav", 66.0, _thumbnail("sunset.png", 66)),  # 30 + 18 + 18 s
]


@pytest.fixture(scope="module")
def streaming_app(studio, ffmpeg):
    """The app built and served with ffmpeg on the PATH, so with its live players."""
    import app
    from conftest import serving

    with serving(app.build_demo(studio)) as url:
        yield url


class PlaylistWatch:
    """Polls the live player's HLS playlist (once the page asked for it) from a thread: when each segment
    was listed, until the stream ends."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.listed: dict[str, float] = {}  # segment -> time.monotonic() it was first listed
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def saw(self, request) -> None:
        if self.url is None and request.url.endswith("/playlist.m3u8"):
            self.url = request.url

    def _run(self) -> None:
        import httpx

        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not self.ended.is_set():
            if self.url is not None:
                text = httpx.get(self.url, timeout=10).text
                for line in text.splitlines():
                    if line and not line.startswith("#"):
                        self.listed.setdefault(line, time.monotonic())
                if "#EXT-X-ENDLIST" in text:
                    self.ended.set()
            time.sleep(0.05)


def _decoded(ffmpeg: str, data: bytes, sample_rate: int) -> np.ndarray:
    """AAC (ADTS) bytes as mono float32 samples at ``sample_rate``."""
    out = subprocess.run([ffmpeg, "-v", "error", "-i", "pipe:0", "-f", "f32le", "-ac", "1", "-ar", str(sample_rate),
                          "pipe:1"], input=data, capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.float32)


def _aligned(final: np.ndarray, live: np.ndarray, most: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``live`` shifted by the lag (0 to ``most`` samples: the AAC encoder's priming, 1024) that best matches
    ``final``, and both cut to the same length."""
    head = final[: 2 * most * 8]
    lags = [abs(float(np.dot(head[: len(head) - most], live[lag: lag + len(head) - most]))) for lag in range(most)]
    lag = int(np.argmax(lags))
    live = live[lag:]
    n = min(len(final), len(live))
    return final[:n], live[:n]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("run", LONG_RUNS, ids=lambda run: run.tab)
def test_a_long_run_plays_part_by_part_before_its_file_arrives(run, streaming_app, browser, ffmpeg, tmp_path):
    import httpx
    from conftest import open_page

    t = np.arange(int(14.0 * 44100)) / 44100
    sound = tmp_path / "fourteen-seconds.wav"
    soundfile.write(sound, 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2, 44100)
    page = open_page(browser, streaming_app, 1400, 1800)
    watch = PlaylistWatch()  # the live player's playlist: the segments it may fetch, as they are listed
    page.on("request", watch.saw)
    try:
        page.get_by_role("tab", name=run.tab, exact=True).click()
        run.fill(page, sound)
        page.get_by_role("button", name=run.button, exact=True).locator("visible=true").first.click()
        final = page.locator(f"audio[src*='{run.result}'], a[href*='{run.result}']").first
        final.wait_for(state="attached", timeout=300_000)
        arrived = time.monotonic()
        assert watch.ended.wait(60), ("the live player got no stream" if watch.url is None
                                      else "the live player's stream did not end after the run")
        href = final.get_attribute("src") or final.get_attribute("href")
        final_audio, rate = soundfile.read(io.BytesIO(httpx.get(urljoin(streaming_app, href)).content), dtype="float32")
        base = watch.url.rsplit("/", 1)[0]
        segments = [httpx.get(f"{base}/{name}").content for name in watch.listed]
    finally:
        watch.ended.set()
        page.close()
    before = [name for name, when in watch.listed.items() if when < arrived]
    assert len(before) >= 2, f"{len(before)} of the stream's {len(watch.listed)} segments came before the file"
    assert abs(len(final_audio) / rate - run.seconds) < 1e-3  # the file arrives as before
    live = _decoded(ffmpeg, b"".join(segments), rate)
    assert abs(len(live) / rate - run.seconds) < 3 * 1024 / rate  # all of it, give or take AAC's frames
    final_audio, live = _aligned(final_audio, live)
    assert len(live) / rate > run.seconds - 0.05
    assert np.corrcoef(final_audio, live)[0, 1] > 0.9  # the same sound, through a lossy encoder
    # and so is nearly every second of it, in order (a part missing or twice would misalign the rest); the
    # tiny models' noise, nearly DC for MusicGen, makes AAC misplace a frame here and there
    seconds = np.array_split(np.arange(len(live)), int(run.seconds))
    alike = [np.corrcoef(final_audio[second], live[second])[0, 1] > 0.9 for second in seconds]
    assert np.mean(alike) > 0.9, f"{len(alike) - sum(alike)} of {len(alike)} seconds differ"


@pytest.mark.browser
def test_the_music_player_loops_in_the_page(streaming_app, browser):
    """Loop playback reaches the page: a 1 s result, played, is still playing 2.5 s later, from its start again."""
    from conftest import open_page

    page = open_page(browser, streaming_app, 1400, 1800)
    try:
        page.get_by_role("tab", name="Text to music", exact=True).click()
        _length("Length (s)", 1)(page, None)
        page.get_by_role("button", name="Make music", exact=True).locator("visible=true").first.click()
        page.locator("audio[src*='text-to-music.wav'], a[href*='text-to-music.wav']").first.wait_for(
            state="attached", timeout=300_000)
        player = page.locator(".block", has=page.get_by_text("Music", exact=True)).locator("visible=true").first
        player.get_by_role("button", name="Play", exact=True).click()
        shown, started = [], time.monotonic()
        while time.monotonic() - started < 2.5:  # (position, button) as the page shows them
            shown.append((player.locator("#time").inner_text(), player.locator(".play-pause-button").get_attribute(
                "aria-label")))
            time.sleep(0.1)
    finally:
        page.close()
    assert shown[-1][1] == "Pause", f"the player stopped: {shown}"  # still playing, at over twice its length
    positions = [position for position, _ in shown]
    assert "0:01" in positions and "0:00" in positions[positions.index("0:01"):], f"it never started again: {shown}"


@pytest.mark.slow
def test_api_calls_stream_nothing_and_get_their_file_where_the_page_streams(streaming_app, monkeypatch):
    """With ffmpeg on the PATH (the live players there), a gradio_client call of a streaming endpoint gets
    its file as before, opens no channel, and its pipeline hands out no part."""
    from gradio_client import Client

    from ui import streaming as ui_streaming

    parts = []
    real = streaming.Progressive.update
    monkeypatch.setattr(streaming.Progressive, "update", lambda live, prefix: (
        parts.append(live.sink is not None), real(live, prefix)))
    wav, png = Client(streaming_app, verbose=False).predict("funk", "", 12.0, 2, 7.0, 5, "riffusion",
                                                             api_name="/text_to_music")
    samples, rate = soundfile.read(wav, dtype="float32")
    assert len(samples) == 12 * rate and png.endswith(".png")
    assert parts == [False] and not ui_streaming._channels  # the final update only, with no sink
