"""Listen while it is made, and loop playback.

A tab with a long-running music event adds ``live_player()`` beside its result and passes it to
``common.model_event(..., live=player)``, which wires it here. A click on the run button then starts,
in this order (gradio's page runs the events of one click one after the other, each to its end, and
the ``then`` events of a finished one at once, side by side):

1. ``open_channel`` (outside the queue, instant): a channel for the click's session and endpoint;
2. as its ``then``, the listener (``listen``, private, outside the GPU queue), which yields every part
   that arrives in the channel to the ``gr.Audio(streaming=True)`` player as 16-bit WAV bytes;
3. beside it, the model run as before (its final file arrives as today). Its handler, decorated with
   ``streams(api_name)``, finds the channel and installs it as the pipeline's sink
   (``pipelines.schema.streaming``); its end closes the channel, and the listener stops.

The channel is opened before the run is submitted, so the run finds it however the two are scheduled.
The run's end (or the event's ``then``, or Cancel, whatever ended it) closes the channel. API calls open
no channel and stream nothing; a channel that no listener took is dropped when its run ends.

Gradio encodes a streamed output with ffmpeg (AAC in an HLS playlist: ``gradio/audio_stream_encoder.py``),
so without ffmpeg on the PATH (Spaces have it) there is no live player and everything else is
unchanged. On ZeroGPU the pipeline runs in another process, which the channel does not reach: the
live player then stays silent until the file arrives.

``loop_music(demo)`` switches loop playback on for every audio player but the live ones.
"""

from __future__ import annotations

import asyncio
import functools
import io
import queue
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr
import numpy as np

from pipelines.schema import streaming

WAIT_SECONDS = 1800.0  # a listener whose run never ends (refused, queue full, page gone) gives up after this
POLL_SECONDS = 0.1  # how often the listener looks for a new part (it holds no thread while it waits)
MAX_CHANNELS = 200  # open at once, all sessions together; past it the oldest closes (its page keeps the file)
_channels: dict[tuple[str, str], _Channel] = {}
_lock = threading.Lock()


class _Channel:
    """Parts of one run, from the run's thread to the listener's coroutine (a thread-safe queue; None ends it)."""

    def __init__(self) -> None:
        self.parts: queue.Queue = queue.Queue()
        self.taken = False  # a listener reads it

    def put(self, samples: np.ndarray, sample_rate: int) -> None:
        self.parts.put((np.asarray(samples, dtype=np.float32), int(sample_rate)))

    def close(self) -> None:
        self.parts.put(None)


def available() -> bool:
    """Whether gradio can stream audio here (it encodes the stream with ffmpeg)."""
    return shutil.which("ffmpeg") is not None


def _session(request: Any = None) -> str:
    from .history import session_of

    return session_of(request)


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """(channels, n) float samples as a 16-bit WAV file in memory (gradio's streaming chunk format)."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(np.atleast_2d(samples), -1, 1).T, sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def open_channel(api_name: str, request: Any = None) -> None:
    """A new channel for the session's next run of ``api_name`` (one before it is ended; the oldest of
    all is ended past ``MAX_CHANNELS``)."""
    key = (_session(request), api_name)
    with _lock:
        ended = [_channels.pop(key)] if key in _channels else []
        _channels[key] = _Channel()
        while len(_channels) > MAX_CHANNELS:  # the page's events are callable by any client: a bounded number
            ended.append(_channels.pop(next(iter(_channels))))
    for channel in ended:
        channel.close()


async def listen(api_name: str, request: Any = None, wait: float = WAIT_SECONDS) -> AsyncIterator[bytes]:
    """The listener: takes the session's open channel for ``api_name`` and yields each part as WAV bytes
    until the run closes it (or ``wait`` seconds pass). Ends at once when no channel is open (or its
    run already ended without a listener)."""
    key = (_session(request), api_name)
    with _lock:
        channel = _channels.get(key)
        if channel is None or channel.taken:
            return
        channel.taken = True
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            try:
                part = channel.parts.get_nowait()
            except queue.Empty:
                await asyncio.sleep(POLL_SECONDS)
                continue
            if part is None:
                return
            yield wav_bytes(*part)
    finally:
        with _lock:
            if _channels.get(key) is channel:
                del _channels[key]


def close(api_name: str, request: Any = None) -> None:
    """End the session's listener for ``api_name`` (its run is over, however it ended)."""
    with _lock:
        channel = _channels.get((_session(request), api_name))
    if channel is not None:
        channel.close()


def streams(api_name: str) -> Callable[[Callable], Callable]:
    """Decorate a handler: while it runs, the pipeline's finished parts go to the channel of its
    session and endpoint, when one is open (a click on the page; never an API call)."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def handler(*args, **kwargs):
            key = (_session(), api_name)
            with _lock:
                channel = _channels.get(key)
            if channel is None:
                return fn(*args, **kwargs)
            try:
                with streaming.listening(channel.put):
                    return fn(*args, **kwargs)
            finally:
                channel.close()
                with _lock:  # nobody took it: nobody will (the listener ends when it finds it gone)
                    if not channel.taken and _channels.get(key) is channel:
                        del _channels[key]

        return handler

    return wrap


def live_player(label: str = "Listen while it is made") -> gr.Audio | None:
    """The streaming player (None where gradio cannot stream: no ffmpeg)."""
    if not available():
        return None
    return gr.Audio(label=label, streaming=True, autoplay=True, interactive=False, sources=["microphone"])


def listen_along(button: gr.Button, api_name: str, player: gr.Audio) -> None:
    """Wire ``player`` to stream the runs of ``api_name`` that ``button`` starts: call it before the run's
    own ``button.click`` is wired (the channel must open first: see the module doc), then ``close_after``."""

    def opener(request: gr.Request) -> None:
        open_channel(api_name, request)

    async def listener(request: gr.Request):
        async for part in listen(api_name, request):
            yield part

    opened = button.click(opener, None, None, api_visibility="private", show_progress="hidden", queue=False)
    opened.then(listener, None, player, api_visibility="private", show_progress="hidden",
                concurrency_id=f"listen-{api_name}", concurrency_limit=None)


def close_after(event: Any, api_name: str) -> None:
    """However the run ``event`` ended, end its listener."""

    def closer(request: gr.Request) -> None:
        close(api_name, request)

    event.then(closer, None, None, api_visibility="private", queue=False)


def loop_music(demo: gr.Blocks) -> gr.Blocks:
    """Loop playback on every audio player of ``demo`` (not the live ones: a stream has no end to loop)."""
    for block in demo.blocks.values():
        if isinstance(block, gr.Audio) and not block.streaming:
            block.loop = True
    return demo
