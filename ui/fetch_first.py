"""Files given by http(s) address are fetched before their event takes a queue slot.

``ui.file_urls`` bounds such a download (50 MB, ``limits.URL_FETCH_SECONDS``, the upload budgets, each
hop checked), but gradio fetches a file input while it preprocesses the event, inside the event's
concurrency slot: a slow server would hold one of the few slots of a model (the GPU's has one) for up
to that time while every other visitor waited. :func:`fetch_before_queue` wraps the queue's admission
(``demo._queue.push``, which ``ui.common.admit_requests`` wraps in turn) so that an event whose file
inputs name addresses joins a holding line first, fetches them there, and only then joins the line of
its concurrency group, at its end: a slow address delays its own caller and no one else.

The holding line is one more of gradio's event queues, under its own concurrency id, that never
starts an event (its one slot is marked taken). So a waiting download counts as a request waiting in
the queue (the queue's size, a session's ``MAX_QUEUED_PER_USER``), gradio's ``/cancel`` and a closed
page remove it as they remove any waiting event, and the download is then stopped (checked every
``_WATCH_SECONDS``). One client (its address, as the upload budgets count it: ``UploadBudget.client_key``)
may have ``limits.URL_FETCHES_PER_CLIENT`` requests held, all its sessions together: one more is refused
("Busy: ...") before its download starts (the per-session limit alone would let one address open
session after session). Each file goes through ``file_urls.fetch_into_cache`` with the caller's request
scope, exactly as in the slot; the event then carries the cached file, which the event's own pass finds
uploaded. A refusal answers the event at once with the same message, and it never joins its line.

What this does not cover fetches in the slot, as before, under the same bounds: an event that runs
without the queue (``queue=False``, MCP's fast path for those), or one gradio already started.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipelines.schema import limits
from ui import errors, file_urls, uploads

log = logging.getLogger("studio.file_urls")

HOLDING = "studio: fetching files given by address"  # the holding line's concurrency id
_WATCH_SECONDS = 0.25  # how often a download checks that its event is still waiting (not cancelled)


def fetch_before_queue(demo: Any) -> Any:
    """Wrap ``demo._queue.push`` so that file inputs given by address are fetched before the event joins
    its concurrency group's line (see the module's docstring). Call after ``demo.queue()`` and before
    ``common.admit_requests`` (whose checks then run first, counting the held events). Returns ``demo``."""
    from gradio.queueing import EventQueue

    queue = demo._queue
    push = queue.push
    holding = EventQueue(HOLDING, concurrency_limit=1)
    holding.current_concurrency = 1  # its one slot taken, for good: gradio never starts an event held here
    queue.event_queue_per_concurrency_id[HOLDING] = holding
    tasks: set[asyncio.Task] = set()

    async def push_then_fetch(body: Any, request: Any, username: str | None) -> tuple:
        answer = await push(body, request, username)
        success, event_id, _ = answer
        event = queue.event_ids_to_events.get(event_id) if success else None
        line = queue.event_queue_per_concurrency_id.get(getattr(event, "concurrency_id", None))
        files = _addresses(event) if event is not None and line is not None and event in line.queue else []
        if files:  # no await from push's append to here: gradio cannot have started the event
            line.queue.remove(event)
            scope = getattr(request, "scope", None)
            event.studio_client = _client_key(scope)
            refusal = _over_client_limit(holding, event.studio_client)
            if refusal is not None:
                _answer_refused(queue, event, refusal)
                return answer
            group, event.concurrency_id = event.concurrency_id, HOLDING
            holding.queue.append(event)
            task = asyncio.get_running_loop().create_task(
                _fetch_then_join(queue, holding, event, group, files, scope))
            tasks.add(task)  # held until done: the loop keeps only weak references to tasks
            task.add_done_callback(tasks.discard)
        return answer

    queue.push = push_then_fetch
    return demo


def _client_key(scope: dict | None) -> str | None:
    """Who a request counts for: its client as the upload budgets name it (``UploadBudget.client_key``: the
    IP address; on a Space the first X-Forwarded-For entry). None without the budget's middleware."""
    budget = scope.get(uploads.SCOPE_KEY) if scope else None
    return budget.client_key(scope) if budget is not None else None


def _over_client_limit(holding: Any, key: str | None) -> str | None:
    """The refusal of one more held request for client ``key`` when it already has
    ``limits.URL_FETCHES_PER_CLIENT`` waiting for their files (all its sessions together); else None."""
    limit = limits.URL_FETCHES_PER_CLIENT
    if key is None:
        return None
    held = sum(getattr(other, "studio_client", None) == key for other in list(holding.queue))
    if held < limit:
        return None
    return (f"Busy: {held} request(s) from your address are already waiting for files given by address to download "
            f"(at most {limit} per address, all its pages and clients together; each download may take up to "
            f"{limits.URL_FETCH_SECONDS:g} s). Wait until one of them has its files, or upload the file instead "
            "(gradio_client.handle_file(path) with a local path), then send this one again.")


def _addresses(event: Any) -> list[tuple[int, Any, str]]:
    """The event's file inputs whose payload names an http(s) address: (index, component, its name in
    messages). A payload that is not gradio's file dict is left to the event's own checks."""
    from gradio_client.utils import is_http_url_like

    body, fn = event.data, event.fn
    found = []
    for index, block in enumerate(fn.inputs[:len(body.data or [])]):
        payload = body.data[index]
        if (index in getattr(fn, "component_prop_inputs", ()) or not errors._takes_files(block)
                or getattr(block, "proxy_url", None)):
            continue
        items = payload if isinstance(payload, list) else [payload]
        if any(isinstance(item, dict) and is_http_url_like(item.get("path")) for item in items):
            found.append((index, block, errors._input_name(fn, index, block)))
    return found


async def _fetch_then_join(queue: Any, holding: Any, event: Any, group: str, files: list, scope: dict | None) -> None:
    """Fetch ``files`` while ``event`` waits in ``holding``; then move it to the end of ``group``'s line,
    or answer it with the refusal. A cancelled or abandoned event (gone from ``holding``) stops its
    download and is dropped."""
    fetch = asyncio.ensure_future(_fetch_all(event, files, scope))
    while not fetch.done():
        await asyncio.wait({fetch}, timeout=_WATCH_SECONDS)
        if event not in holding.queue:  # /cancel or its page's stream closed: gradio removed it
            fetch.cancel()
            log.info("a download for a cancelled request was stopped")
            return
    if event not in holding.queue:
        return
    holding.queue.remove(event)  # from here to the append or the answer: no await
    event.concurrency_id = group
    refusal = None
    try:
        event.data.data[:] = fetch.result()
    except file_urls.FetchRefused as refused:
        refusal = str(refused)
    except Exception:  # noqa: BLE001  (a fault here: the event runs, and its own pass fetches, bounded)
        log.exception("fetching a request's files before the queue failed; its slot fetches them")
    if refusal is not None:
        _answer_refused(queue, event, refusal)
        return
    line = queue.event_queue_per_concurrency_id[group]
    line.queue.append(event)
    queue.broadcast_estimations(group, len(line.queue) - 1)


async def _fetch_all(event: Any, files: list, scope: dict | None) -> list:
    """The event's inputs with every address replaced by the fetched file's path in gradio's cache."""
    from gradio_client.utils import is_http_url_like

    data = list(event.data.data)
    for index, block, where in files:
        payload = data[index]
        items = payload if isinstance(payload, list) else [payload]
        fetched = []
        for item in items:
            if isinstance(item, dict) and is_http_url_like(item.get("path")):
                path = await file_urls.fetch_into_cache(item["path"], block.GRADIO_CACHE, where, scope)
                block.temp_files.add(path)  # as gradio's own download does: removed with the app's files
                item = {**item, "path": path}
            fetched.append(item)
        data[index] = fetched if isinstance(payload, list) else fetched[0]
    return data


def _answer_refused(queue: Any, event: Any, message: str) -> None:
    """Answer ``event`` with ``message`` as its error, as gradio answers an event whose run raised it."""
    import gradio as gr
    from gradio.server_messages import ProcessCompletedMessage
    from gradio.utils import error_payload

    log.warning("request refused: %s", message)
    queue.event_ids_to_events.pop(event._id, None)
    if (analytics := queue.event_analytics.get(event._id)) is not None:
        analytics["status"] = "failed"
    if event.session_hash in queue.pending_messages_per_session:  # else its stream is gone: no one to tell
        queue.send_message(event, ProcessCompletedMessage(
            output=error_payload(gr.Error(message, print_exception=False), True), success=False))
