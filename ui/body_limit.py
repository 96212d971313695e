"""Every request body but an upload's is at most ``limits.MAX_REQUEST_BODY_BYTES`` (ASGI middleware).

An API call's body is JSON of texts, numbers and file paths (files travel by ``/gradio_api/upload``,
which has its own budgets: ``ui.uploads``): a few kB from the page or gradio_client. gradio (FastAPI's
JSON parsing) and our own call checks read a body whole, so one POST of gigabytes, with or without a
Content-Length, could fill the server's memory for everyone. Here a body announced larger is refused
before it is read, and one that streams past the limit is refused once it does (HTTP 413, our words,
one log line); the routes that take files in their body (``UPLOAD_ROUTES``) keep their own limits.
"""

from __future__ import annotations

import logging
from typing import Any

from pipelines.schema import limits
from ui import http_errors

log = logging.getLogger("studio")
UPLOAD_ROUTES = ("/upload", "/process_recording")  # multipart files: ui.uploads' budgets, gradio's max_file_size


def _message() -> str:
    return (f"The request's body is larger than the {limits.MAX_REQUEST_BODY_BYTES // 1024} kB an API call may "
            "send. Send files with gradio_client.handle_file(path) (they are uploaded apart), not inside the "
            "call; see docs/API.md.")


class BodyLimit:
    """ASGI middleware: refuse (413) a request body over ``limits.MAX_REQUEST_BODY_BYTES`` on every route
    but the uploads'; the body read here is replayed to the app unchanged."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS") or \
                scope.get("path", "").rstrip("/").endswith(UPLOAD_ROUTES):
            return await self.app(scope, receive, send)
        limit = limits.MAX_REQUEST_BODY_BYTES
        headers = dict(scope.get("headers") or [])
        try:
            announced = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            announced = 0
        if announced > limit:
            return await _refuse(send, scope)
        try:
            body, complete = await http_errors.read_body(receive, limit)
        except http_errors.BodyTooLarge:  # no Content-Length, or a false one: not read further
            return await _refuse(send, scope)
        if not complete:  # the caller went away
            return None
        return await self.app(scope, http_errors.replayed(body, receive), send)


async def _refuse(send: Any, scope: dict) -> None:
    log.warning("API call refused (HTTP 413): a body over %d bytes to %s", limits.MAX_REQUEST_BODY_BYTES,
                scope.get("path", "")[:200])
    await http_errors.json_answer(send, 413, {"detail": _message()})
