"""Listen while it is made, and loop playback.

A tab with a long-running music event adds ``live_player()`` beside its result, decorates the
handler with ``streams(api_name)`` and calls ``listen_along(button, event, api_name, player)``. A click
then starts two events: the model run as before (its final file arrives as today) and a listener
(private, outside the GPU queue) that opens a channel for its session and endpoint and yields every
part the pipeline finishes (``pipelines.schema.streaming``) to the ``gr.Audio(streaming=True)`` player as
16-bit WAV bytes. The run's handler finds that channel and installs it as the pipeline's sink; its
end (or the event's ``then``, whatever ended it) closes the channel and the listener stops. API calls
open no channel and stream nothing.

Gradio encodes a streamed output with ffmpeg, so without ffmpeg on the PATH (Spaces have it) there is
no live player and everything else is unchanged. On ZeroGPU the pipeline runs in another process,
which the channel does not reach: the live player then stays silent until the file arrives.

``loop_music(demo)`` switches loop playback on for every audio player but the live ones.
"""

from __future__ import annotations

import functools
import io
import queue
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from pipelines.schema import streaming

WAIT_SECONDS = 1800.0  # a listener whose run never comes (refused, queue full) gives up after this
_channels: dict[tuple[str, str], _Channel] = {}
_lock = threading.Lock()


class _Channel:
    def __init__(self) -> None:
        self.parts: queue.Queue = queue.Queue()

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


def listen(api_name: str, request: gr.Request = None, wait: float = WAIT_SECONDS):
    """The listener: opens this session's channel for ``api_name`` and yields each part as WAV bytes
    until the run closes it (or ``wait`` seconds pass without a run)."""
    key, channel = (_session(request), api_name), _Channel()
    with _lock:
        old = _channels.get(key)
        _channels[key] = channel
    if old is not None:
        old.close()
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            try:
                part = channel.parts.get(timeout=0.25)
            except queue.Empty:
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
    """Decorate a handler: while it runs, the pipeline's finished parts go to the listener of its
    session and endpoint, when one is open (a click on the page; never an API call)."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def handler(*args, **kwargs):
            with _lock:
                channel = _channels.get((_session(), api_name))
            if channel is None:
                return fn(*args, **kwargs)
            try:
                with streaming.listening(channel.put):
                    return fn(*args, **kwargs)
            finally:
                channel.close()

        return handler

    return wrap


def live_player(label: str = "Listen while it is made") -> gr.Audio | None:
    """The streaming player (None where gradio cannot stream: no ffmpeg)."""
    if not available():
        return None
    return gr.Audio(label=label, streaming=True, autoplay=True, interactive=False, sources=["microphone"])


def listen_along(button: gr.Button, event: Any, api_name: str, player: gr.Audio | None) -> None:
    """Wire ``player`` to stream ``api_name``'s runs started by ``button`` (nothing when ``player`` is None)."""
    if player is None:
        return

    def listener(request: gr.Request):
        yield from listen(api_name, request)

    def closer(request: gr.Request) -> None:
        close(api_name, request)

    button.click(listener, None, player, api_visibility="private", show_progress="hidden",
                 concurrency_id=f"listen-{api_name}", concurrency_limit=None)
    event.then(closer, None, None, api_visibility="private", queue=False)


def loop_music(demo: gr.Blocks) -> gr.Blocks:
    """Loop playback on every audio player of ``demo`` (not the live ones: a stream has no end to loop)."""
    for block in demo.blocks.values():
        if isinstance(block, gr.Audio) and not block.streaming:
            block.loop = True
    return demo
