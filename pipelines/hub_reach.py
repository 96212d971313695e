"""Whether the Hugging Face Hub can be reached, asked once in a while with a short timeout.

Without network the Hub client retries every file with backoff (five tries, up to 8 s apart, for
each of a model's files): a tab took minutes to say a model is missing. ``offline_if_unreachable``
runs a load with the Hub client's offline switch on when a 3 s connection to the Hub fails, so the
load takes cached files only and a missing model is reported at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0
REMEMBER_S = 30.0  # how long an answer is trusted before the Hub is asked again

_lock = threading.Lock()
_last: tuple[float, bool] | None = None


def hub_reachable() -> bool:
    """A TCP connection to the Hub's endpoint (``HF_ENDPOINT``) within 3 s; the answer is kept 30 s."""
    global _last
    from huggingface_hub import constants

    with _lock:
        if _last is not None and time.monotonic() - _last[0] < REMEMBER_S:
            return _last[1]
        url = urlparse(constants.ENDPOINT)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            with socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S):
                reachable = True
        except OSError:
            reachable = False
        _last = (time.monotonic(), reachable)
        return reachable


@contextlib.contextmanager
def offline_if_unreachable() -> Iterator[bool]:
    """Yield True when the Hub is offline for this block (switched off already, or not reachable)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        yield True
        return
    if hub_reachable():
        yield False
        return
    constants.HF_HUB_OFFLINE = True  # every Hub request now fails at once and cached files are used
    try:
        yield True
    finally:
        constants.HF_HUB_OFFLINE = False
