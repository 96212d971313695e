"""Whether the Hugging Face Hub can be reached, asked once in a while with a short timeout.

Without network the Hub client retries every file with backoff (five tries, up to 8 s apart, for
each of a model's files): a tab took minutes to say a model is missing. ``offline_if_unreachable``
runs a load with the Hub client's offline switch on when a 3 s connection to the Hub fails, so the
load takes cached files only and a missing model is reported at once. ``STUDIO_OFFLINE=1`` does the
same without asking (the studio's own switch: neither the Hub nor GitHub is asked, see originals.py).

``hub_error_reason`` reads huggingface_hub's own error out of a loader's exception chain (diffusers
and transformers wrap it in an OSError): a wrong revision, a missing file, an unknown repository,
each in words with what to do.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0
MISSING_FILE = re.compile(r"does not appear to have (?:a file|files) named (.+?)\.(?:\s|$)")
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
    from pipelines.models.originals import offline

    if not offline() and hub_reachable():
        yield False
        return
    constants.HF_HUB_OFFLINE = True  # every Hub request now fails at once and cached files are used
    try:
        yield True
    finally:
        constants.HF_HUB_OFFLINE = False


def hub_error_reason(error: BaseException, repo: str, revision: str | None, role: str) -> str | None:
    """Why a Hub load failed, in words with the remedy, when ``error``'s chain (``__cause__`` /
    ``__context__``) holds huggingface_hub's RevisionNotFoundError, RemoteEntryNotFoundError or
    RepositoryNotFoundError; None otherwise (the caller explains it)."""
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    override = f"STUDIO_MODEL_{role.upper()}"
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, RevisionNotFoundError):
            return (f"the revision {revision!r} does not exist in {repo} on the Hub. Check the revision "
                    f"({override}=owner/repo@revision; the pinned one is in docs/MODELS.md)")
        if isinstance(error, RemoteEntryNotFoundError):
            name = getattr(error.response, "url", "") if getattr(error, "response", None) is not None else ""
            name = str(name).split(f"/resolve/{revision}/", 1)[-1] if name else "a file it needs"
            return (f"{repo}@{revision} on the Hub has no {name}, which the loader needs: the repository does not "
                    f"hold this kind of model at that revision. Check {override} or the revision")
        missing = MISSING_FILE.search(str(error)) if isinstance(error, OSError) else None
        if missing:  # transformers says so itself, without huggingface_hub's error in the chain
            return (f"{repo}@{revision} on the Hub has no {missing.group(1)}, which the loader needs: the repository "
                    f"does not hold this kind of model at that revision. Check {override} or the revision")
        if isinstance(error, RepositoryNotFoundError):
            return (f"the Hub has no repository {repo} (or it is private or gated and no token is set). "
                    f"Check the name in {override}, or log in with `hf auth login`")
        error = error.__cause__ or error.__context__
    return None
