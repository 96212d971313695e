"""A cancel stops the one job it names, and a job whose run is stopped always ends.

gradio's ``POST /gradio_api/cancel`` (what ``gradio_client``'s ``job.cancel()`` sends, and the page's
Cancel button: the session, the endpoint's ``fn_index`` and the job's ``event_id``) cancels the asyncio
task of *every* job the session has running on that endpoint (``gradio.utils.cancel_tasks`` matches the
tasks named ``<session>_<fn_index>``, whatever their event), yet answers only the job it names. A client's
other job on that endpoint then had its run stopped (``ui.common.guarded`` sets a run's stop flag when its
task is cancelled) and was never told: it stayed in ``Status.PROGRESS`` for ever, ``result()`` never
returned, and nothing was logged.

``cancel_named_jobs_only`` changes two things on the app's queue (as ``ui.common.admit_requests`` wraps its
``push``; tests/test_cancel_jobs.py checks that gradio still calls them so):

- each run's task is named after its own job (``<session>_<fn_index>#<event_id>``), so gradio's match by
  session and endpoint finds none; ``remove_from_queue(event_id)``, which gradio's ``/cancel`` calls with
  the id it was given (and nothing else calls), also cancels that job's running task, and the route then
  answers the job as gradio does (``Status.CANCELLED`` in ``gradio_client``). A cancel with an id that
  names no job stops nothing.
- a run whose task is cancelled any other way (a later gradio, the queue stopping) is answered with an
  error ("stopped before it finished"), so no client waits for an answer that never comes.

The page's Cancel button also stops the tab's run by session and endpoint (``ui.common.stop_session``):
that run's pipeline raises ``Cancelled`` at its next step, an error its caller is told.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import gradio as gr

log = logging.getLogger("studio")

SEPARATOR = "<gradio-sep>"  # gradio.utils.set_task_name: "<session>_<fn_index><gradio-sep><event_id>"
STOPPED = ("This run was stopped on the server before it finished, and has no result. Send it again if you "
           "still want it.")


def task_name(session: str | None, fn_index: Any, event_id: str) -> str:
    """The name of the task running job ``event_id``: gradio's, with the job's id in the part that gradio's
    ``/cancel`` compares with ``<session>_<fn_index>`` (so that it matches no task)."""
    return f"{session}_{fn_index}#{event_id}{SEPARATOR}{event_id}"


def cancel_named_jobs_only(demo: gr.Blocks) -> gr.Blocks:
    """Make a cancel stop only the job whose event id it names, and answer every job whose run was
    cancelled (module docstring). Call after ``demo.queue()``; returns ``demo``."""
    queue = demo._queue
    process_events = queue.process_events
    remove_from_queue = queue.remove_from_queue
    named: set[str] = set()  # jobs being cancelled by /cancel: the route itself answers them

    async def run(events: list, batch: bool, *args: Any, **kwargs: Any) -> Any:
        task = asyncio.current_task()
        if task is not None and events and SEPARATOR in task.get_name():  # gradio names single jobs only
            task.set_name(task_name(events[0].session_hash, getattr(events[0].fn, "_id", None), events[0]._id))
        try:
            return await process_events(events, batch, *args, **kwargs)
        except asyncio.CancelledError:
            for event in events:
                if event._id not in named:
                    _answer_stopped(queue, event)
            raise
        finally:
            for event in events:
                named.discard(event._id)

    async def remove(event_id: str) -> None:
        await remove_from_queue(event_id)  # a job still waiting leaves the queue
        ending = f"{SEPARATOR}{event_id}"
        tasks = [task for task in asyncio.all_tasks() if event_id and task.get_name().endswith(ending)]
        for task in tasks:  # a job already running: its task is cancelled, which stops its run
            named.add(event_id)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    queue.process_events = run
    queue.remove_from_queue = remove
    return demo


def _answer_stopped(queue: Any, event: Any) -> None:
    """Tell ``event``'s client that its run was stopped (an error in every client)."""
    from gradio.server_messages import ProcessCompletedMessage

    log.warning("a run was stopped on the server before it finished (event %s); its caller is told", event._id)
    try:
        queue.send_message(event, ProcessCompletedMessage(
            output={"error": STOPPED, "visible": True, "title": "Stopped"}, success=False, title="Stopped"))
    except Exception:  # noqa: BLE001  (the session's stream is gone: nobody is waiting)
        log.debug("no stream to tell event %s", event._id, exc_info=True)
