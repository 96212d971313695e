"""Files given as an http(s) address (``gradio_client.handle_file("https://...")``), fetched like uploads.

gradio fetches such an address itself, in full (safehttpx reads the whole body into memory, then it
is written to the cache), with no limit on its size or its time, and outside the upload budgets: one
caller could fill the memory and the disk with one endless file, or hold a queue slot with a server
that drips a byte at a time. ``ui.fetch_first`` calls :func:`fetch_into_cache` for every file input
given by address when its request joins the queue, before the event takes a slot; ``ui.errors`` calls
it for any address still in the event when it runs (one that ran without the queue), before gradio's
own pass (which then finds the file in its cache). Either way:

* a file over ``limits.MAX_UPLOAD_BYTES`` (the uploads' limit) is refused from its Content-Length
  before a byte of its body is read, and cut off where its streamed bytes pass it (a server that says
  no size, or a wrong one): the body goes chunk by chunk to a temporary file in gradio's cache, never
  whole into memory, and is removed when the download is stopped;
* the whole download, redirects included, has ``limits.URL_FETCH_SECONDS``;
* its bytes spend the caller's upload budgets (``ui.uploads.UploadBudget``: bytes per minute, files
  waiting, the temp folder's total), found in the scope of the request that queued the event;
* every hop (the address, then each redirect, at most gradio's ``MAX_REDIRECTS``) is checked as gradio
  checks it: http(s) only, a name resolving to a private or local address refused (safehttpx's
  validation, the connection pinned to the address it validated), gradio's Hugging Face allow-list
  kept.

Every refusal is a :class:`FetchRefused` whose message names the control, its API parameter and the
limit ("Sound (parameter audio_path): the file at ... is 120 MB, over the limit of 50 MB per file ...").
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from core import files
from pipelines.schema import limits
from ui import uploads

log = logging.getLogger("studio.file_urls")

# TEST-ONLY: "host:port" addresses fetched without the private-address check, so that a test can serve
# files from a loopback HTTP server. Empty, always, in the app: no flag or environment variable sets it,
# only a test's monkeypatch, naming its own server's exact host and port (a redirect from there to any
# other local address is still refused).
TEST_SERVERS: frozenset[str] = frozenset()

_RULE = "Files must be uploaded, or come from a public http(s) address"
_THIS = "the file at this address"  # how a budget's message names the file


class FetchRefused(Exception):
    """A file given by address was not fetched; the message, in our words, says why."""


class _RedirectRefused(Exception):
    """A redirect's hop failed its check: ``hop`` is where it pointed, ``error`` why."""

    def __init__(self, hop: str, error: Exception):
        super().__init__(str(error))
        self.hop, self.error = hop, error


def _megabytes(size: float) -> str:
    return f"{size / 2**20:.0f} MB"


async def fetch_into_cache(url: str, cache_dir: str | os.PathLike, where: str, scope: dict | None) -> str:
    """Download ``url`` into gradio's cache (``<cache_dir>/<hash of url>/<name>``, gradio's own layout)
    and return the file's path; an address already fetched whole is not fetched again. ``where`` names
    the input in messages ("Sound (parameter audio_path)"); ``scope`` is the ASGI scope of the request
    that queued the event, whose ``UploadBudget`` counts the bytes (None, or no budget in it: only the
    per-file and time limits apply). Raises :class:`FetchRefused`."""
    from gradio import processing_utils
    from gradio_client.utils import strip_invalid_filename_characters

    address = url[:200]
    folder = Path(cache_dir) / processing_utils.hash_url(url)
    name = strip_invalid_filename_characters(Path(urlparse(url).path.rstrip("/")).name).lstrip(".") or "file"
    target = folder / name
    if target.is_file():
        return str(target)
    budget = scope.get(uploads.SCOPE_KEY) if scope else None
    key = budget.client_key(scope) if budget is not None else None
    folder.mkdir(parents=True, exist_ok=True)
    handle, part = tempfile.mkstemp(dir=folder, prefix=".part-")
    transfer = {"client": None, "streamed": 0}
    done = False
    try:
        with os.fdopen(handle, "wb") as sink:
            async with asyncio.timeout(limits.URL_FETCH_SECONDS):
                await _download(url, sink, where, address, budget, key, transfer)
        files.readable(part)  # mkstemp's 0600, like an upload's usual mode (core/files.py)
        os.replace(part, target)  # whole: only now under the name gradio looks for
        done = True
    except TimeoutError:
        raise FetchRefused(
            f"{where}: the file at {address} did not finish downloading within {limits.URL_FETCH_SECONDS:g} s, the "
            "limit for a file given by address, so the download was stopped. Upload the file instead "
            "(gradio_client.handle_file(path) with a local path), or give an address that serves it faster."
        ) from None
    except uploads.Refused as refused:
        raise FetchRefused(f"{where}: {refused.message}") from None
    except FetchRefused:
        raise
    except _RedirectRefused as refused:
        raise FetchRefused(_fetch_refused(where, address, refused.error, via=refused.hop[:200])) from None
    except Exception as error:  # noqa: BLE001  (any failure to fetch an address: the caller's to fix)
        raise FetchRefused(_fetch_refused(where, address, error)) from None
    finally:
        if not done:
            Path(part).unlink(missing_ok=True)
        if transfer["client"] is not None:  # the streamed bytes spent the minute's budget; only a whole file stays
            budget.settle(transfer["client"], transfer["streamed"], transfer["streamed"] if done else 0,
                          [str(target)] if done else [])
        log.info("fetched %s: %d bytes%s", address, transfer["streamed"], "" if done else " (stopped)")
    return str(target)


async def _download(url: str, sink: Any, where: str, address: str, budget: Any, key: str | None,
                    transfer: dict) -> None:
    """Follow ``url``'s redirects (each hop checked), then stream the body into ``sink``, counting it."""
    import httpx
    from gradio import processing_utils

    limit = limits.MAX_UPLOAD_BYTES
    for hop in range(processing_utils.MAX_REDIRECTS + 1):
        try:
            transport = await _checked_transport(url)
        except ValueError as error:
            if hop:
                raise _RedirectRefused(url, error) from None
            raise
        async with httpx.AsyncClient(transport=transport) as client, client.stream(
                "GET", url, headers={"Accept-Encoding": "identity"}, follow_redirects=False) as response:
            if response.has_redirect_location:
                url = urljoin(url, response.headers["Location"])  # against the address asked, not the pinned IP
                continue
            if response.status_code != 200:
                raise ValueError(f"Status code: {response.status_code}")
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise FetchRefused(f"{where}: the server of {address} sent the file compressed (Content-Encoding: "
                                   f"{encoding[:40]}), which the studio does not unpack. {_RULE} that serves the "
                                   "file as it is.")
            declared = _declared_length(response)
            if declared is not None and declared > limit:
                raise FetchRefused(f"{where}: the file at {address} is {_megabytes(declared)}, over the limit of "
                                   f"{_megabytes(limit)} per file (uploaded or given by address). Send a smaller "
                                   "file, for example a shorter or compressed clip.")
            if budget is not None:
                transfer["client"] = budget.admit(key, declared or 0, this=_THIS)
            async for chunk in response.aiter_raw():
                if transfer["streamed"] + len(chunk) > limit:
                    raise FetchRefused(
                        f"{where}: the file at {address} passed the limit of {_megabytes(limit)} per file (uploaded "
                        "or given by address) while it downloaded, so the download was stopped"
                        f"{' (the server did not say its size)' if declared is None else ''}. Send a smaller "
                        "file, for example a shorter or compressed clip.")
                if transfer["client"] is not None:
                    budget.take(transfer["client"], len(chunk), this=_THIS)
                transfer["streamed"] += len(chunk)
                sink.write(chunk)
            return
    raise ValueError("too many redirects")


def _declared_length(response: Any) -> int | None:
    try:
        declared = int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None
    return declared if declared >= 0 else None


async def _checked_transport(url: str) -> Any:
    """The transport for one hop, as gradio's ``async_ssrf_protected_get`` picks it: gradio's own
    transport when one is set, none for its allow-listed Hugging Face hosts, else safehttpx's, pinned
    to the public address the host name was validated to (``Hostname ... failed validation`` for a
    private or local one)."""
    import httpx
    import safehttpx
    from gradio import processing_utils

    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an http(s) address: {url[:100]}")
    if processing_utils.async_transport:
        return processing_utils.async_transport
    if TEST_SERVERS and f"{parsed.host}:{parsed.port}" in TEST_SERVERS:
        return None
    if safehttpx.matches_domain_whitelist(parsed.host, processing_utils.PUBLIC_HOSTNAME_WHITELIST):
        return None
    # shielded: safehttpx caches its DNS look-up as a task, which the time limit must not cancel for others
    verified = await asyncio.shield(safehttpx.async_validate_url(parsed.host))
    return safehttpx.AsyncSecureTransport(verified)


def _fetch_refused(where: str, address: str, error: Exception, via: str | None = None) -> str:
    """Why the file at ``address`` was not fetched, in our words (safehttpx refuses private and local
    addresses: "Hostname ... failed validation"); ``via``: the redirect whose hop failed."""
    import httpx

    text = str(error)
    if "failed validation" in text:
        what = f"{address} redirects to {via}, a private or local address" if via else \
            f"{address} is a private or local address"
        return (f"{where}: {what}, which the studio does not fetch. {_RULE} "
                "(gradio_client.handle_file(path) uploads a local file).")
    if "Unable to resolve" in text:
        reason = "its host name is not known"
    elif "Status code:" in text:
        reason = f"the server answered HTTP {text.rsplit(':', 1)[1].strip()}"
    elif isinstance(error, httpx.TimeoutException):
        reason = "the server did not answer in time"
    elif "redirects" in text:
        reason = "too many redirects"
    elif "not an http(s) address" in text:
        reason = "not an http(s) address"
    else:
        reason = "the server could not be reached"
    if via:
        reason += f", at its redirect to {via}"
    return f"{where}: the file at {address} could not be downloaded ({reason}). {_RULE} that serves it."
