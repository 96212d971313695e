"""Listen while it is made: long pipelines hand each finished part of their audio to a listener.

A pipeline that makes audio part by part (text to music window by window, MusicGen 30 s window by
window) calls ``Progressive.update(audio so far that will not change)``; the new samples since the
last call go to the sink that the caller installed with ``listening(sink)`` for the current context
(a ``ContextVar``: the UI's handler thread, not other requests). Without a sink nothing is computed
or sent, so API calls and scripts pay nothing.

The final result is normalised to its peak only once it is complete, so the parts are sent at one
fixed gain, set from the first part (its peak to -1 dBFS) and clipped after: the live preview
sounds like the file that follows, which arrives as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

Sink = Callable[[np.ndarray, int], None]  # (samples (channels, n) float32 in [-1, 1], sample rate in Hz)
_sink: ContextVar[Sink | None] = ContextVar("studio_audio_sink", default=None)
PEAK = 10 ** (-1.0 / 20)  # -1 dBFS, as every result is normalised


@contextmanager
def listening(sink: Sink) -> Iterator[None]:
    """Within the block, parts of audio made in this context go to ``sink``."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


def active() -> bool:
    """Whether someone listens in this context (pipelines skip the extra work otherwise)."""
    return _sink.get() is not None


class Progressive:
    """Sends the growing, final prefix of a result as increments, at one gain (see the module doc)."""

    def __init__(self, sample_rate: int):
        self.sample_rate = int(sample_rate)
        self.sent = 0
        self.gain: float | None = None
        self.sink = _sink.get()

    def update(self, prefix: np.ndarray) -> None:
        """``prefix``: (channels, n) or (n,) audio from the start that later parts will not change."""
        if self.sink is None:
            return
        prefix = np.atleast_2d(np.asarray(prefix, dtype=np.float32))
        new = prefix[:, self.sent :]
        if new.shape[-1] == 0:
            return
        if self.gain is None:
            peak = float(np.abs(new).max())
            self.gain = PEAK / peak if peak > 1e-6 else 1.0
        self.sent = prefix.shape[-1]
        self.sink(np.clip(new * self.gain, -1.0, 1.0), self.sample_rate)
