"""What every tab shares: per-event stop flags and limits, the queue's admission, controls built from
settings, model events. The error boundary and gradio's own refusals in our words are ``ui.errors``.

The UI layer converts widgets to arguments and results to widgets; it never touches a torch device.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from core import runs
from core.errors import Cancelled
from pipelines.schema import limits
from pipelines.schema.outputs import SavedResult, save_result

from . import binding, errors

log = logging.getLogger("studio")

ASSETS = Path(__file__).resolve().parents[1] / "assets"
GPU = "gpu"  # one concurrency id for every event that runs a model: a queue-level GPU lock


def image_upload(**kwargs: Any) -> gr.Image:
    """A ``gr.Image`` (same widget: upload, webcam, clipboard) whose upload reaches our loader untouched.

    gradio's own preprocessing opens the file with PIL first (a text file named .png or a
    30000x30000 PNG then fails as "Could not preprocess input component ...") and converts the mode
    (alpha lost, 16 bits clipped). Here the handler gets the uploaded file's path and
    ``pipelines.signal.images.open_image`` does all of that with our checks and messages. Webcam snapshots
    sent as data URLs still go through gradio's decoder. (An instance override, not a subclass:
    gradio writes a .pyi stub beside the source of every component subclass.)
    """
    image = gr.Image(type="filepath", image_mode=None, **kwargs)
    image.preprocess = functools.partial(_uploaded_path, image.preprocess)
    return image


def _uploaded_path(gradio_preprocess: Callable, payload: Any) -> str | None:
    if payload is None or payload.path is not None:
        return None if payload is None else str(payload.path)
    try:
        return gradio_preprocess(payload)
    except Exception as error:  # noqa: BLE001  (a data URL gradio cannot decode)
        raise refusal("The picture could not be read; please upload a PNG, JPEG or WebP file.") from error


def refusal(message: str, status: int | None = 422) -> gr.Error:
    """The error that refuses a request as expected behaviour (busy, over a limit, nothing to act on yet):
    one log line, and a gr.Error that gradio shows without printing a traceback (``raise refusal(...)``).
    ``status``: what ``/gradio_api/run/<name>`` answers it with (``errors.Refused``: 422 for what the
    caller sent, 429 for busy); None where the caller did nothing wrong (gradio's 500)."""
    log.warning("request refused: %s", message)
    return gr.Error(message, print_exception=False) if status is None else errors.Refused(message, status)


# -- per-result metrics: a checkbox to compute the CLAP ones, a table to show them ------------------------------
def metrics_checkbox(studio: Any) -> gr.Checkbox:
    """"Compute metrics": on by default on a GPU, off on a CPU (CLAP takes seconds per result there)."""
    return gr.Checkbox(value=studio.metrics_by_default(), label="Compute CLAP metrics (loads CLAP, 0.6 GB)")


def metrics_table(label: str = "Metrics", studio: Any = None) -> gr.Dataframe:
    """A read-only two-column table (metric, value) for ``metrics_rows``, hidden until ``shown_when_filled``
    shows it with rows. With ``studio``, the label says when CLAP is a random model."""
    if studio is not None and random_weights(studio):
        label += random_note(studio, "CLAP")
    return gr.Dataframe(headers=["metric", "value"], datatype=["str", "str"], label=label, interactive=False,
                        wrap=True, visible=False)


def shown_when_filled(event: Any, output: Any) -> None:
    """After ``event``, show ``output`` (built with ``visible=False``) when it holds something, and hide it
    when empty: an empty "metric | value" table or file box says nothing."""
    def show(value: Any) -> Any:
        if hasattr(value, "values"):  # a table (pandas): any cell with text
            value = [cell for row in value.values.tolist() for cell in row if str(cell).strip()]
        return type(output)(visible=bool(value))

    event.then(show, output, output, queue=False, api_visibility="private")


# -- honest labels where the models have random weights (the tiny and fullsize profiles) -----------------
def random_weights(studio: Any) -> bool:
    """Whether the studio's models are random stand-ins built on this machine (not trained weights)."""
    from pipelines.models.registry import BUILT_PROFILES

    return studio.info.profile in BUILT_PROFILES


def random_note(studio: Any, what: str = "model") -> str:
    """" (random <what>: tiny profile)" beside a label whose numbers come from a random model; "" otherwise."""
    return f" (random {what}: {studio.info.profile} profile)" if random_weights(studio) else ""


def metrics_rows(result: Any) -> list[list[str]]:
    from pipelines.signal.metrics import metrics_table as rows

    return rows(result.metrics)


def save(result: Any, name: str) -> SavedResult:
    """Write a result's files (WAV and PNGs with their parameters) into a fresh output folder.

    Raises ``Cancelled`` instead when the run has been told to stop (a run cancelled after its last
    step writes nothing)."""
    runs.raise_if_stopped()
    return save_result(result, name)


# -- runs: one stop flag per event, set whenever the request ends ------------------------------------------
@dataclass
class RunLimits:
    """Limits on every event: ``max_seconds`` of run time per request (then it is stopped and the caller
    told), ``per_user`` runs of one session at a time (more are refused with a "busy" message)."""

    max_seconds: float = limits.MAX_RUN_SECONDS
    per_user: int = limits.MAX_RUNS_PER_USER


RUN_LIMITS = RunLimits()  # app.py sets these from its flags
_running: dict[str, dict[threading.Event, str]] = {}  # session -> {stop flag: event name} of its events in progress
_running_lock = threading.Lock()
_threads = ThreadPoolExecutor(max_workers=40, thread_name_prefix="studio-event")  # gradio's own thread limit


def running_events() -> int:
    """Events in progress, all sessions together (their flags are dropped when they end)."""
    with _running_lock:
        return sum(len(flags) for flags in _running.values())


def start_run(studio: Any) -> threading.Event:
    """Begin a model run: this event's stop flag (set when the request ends for any reason: Cancel,
    API cancel, closed tab, time limit), and a note when real models run on a CPU."""
    if studio.info.device == "cpu" and studio.info.profile != "tiny":
        gr.Info("Running on the CPU: with the real models this takes minutes. Fewer steps make it faster.")
    flag = runs.current_stop.get()
    return flag if flag is not None else threading.Event()  # called outside an event (scripts, tests)


def _session(request: Any) -> str:
    return getattr(request, "session_hash", None) or "default"


def stop_session(request: gr.Request = None, name: str | None = None) -> None:
    """Stop the session's events in progress: all of them (the page closed: ``demo.unload``), or
    those of the event ``name`` (its Cancel button)."""
    with _running_lock:
        flags = [flag for flag, event in _running.get(_session(request), {}).items() if name in (None, event)]
    for flag in flags:
        flag.set()


def guarded(fn: Callable, name: str | None = None) -> Callable:
    """Run a (sync) handler as one event: its own stop flag, the per-user limit and the time limit.

    Gradio cancels the event's asyncio task (Cancel button, API ``job.cancel()``), but a thread it runs
    keeps going; here the handler runs in a thread we await, and whatever ends the wait (cancel,
    time limit, error) sets the flag (``core.runs.current_stop`` in the thread), which the pipeline
    polls after every step. The cancel itself returns at once, but limits count work until it has
    stopped: the run keeps its place in the session's count until its thread returns, and the
    thread holds a slot of the event's concurrency group (gradio's ``concurrency_id`` and limit, read
    from the running app), so the next run of the group waits for a cancelled one still finishing
    its step. Raises gr.Error when the session already has ``RUN_LIMITS.per_user`` events running
    or the run passes ``max_seconds``. ``name`` (default: the handler's) is what
    ``stop_session(request, name)`` stops.
    """
    name = name or fn.__name__

    @functools.wraps(fn)
    async def event(*args, **kwargs):
        from gradio.context import LocalContext  # the request of the event being run (set by gradio)

        session = _session(LocalContext.request.get(None))
        flag = threading.Event()
        with _running_lock:
            mine = _running.setdefault(session, {})
            if len(mine) >= RUN_LIMITS.per_user:
                busy = len(mine)
            else:
                busy = 0
                mine[flag] = name
        if busy:
            raise refusal(f"Busy: you already have {busy} run(s) in progress (at most {RUN_LIMITS.per_user} "
                          "at a time; a cancelled run counts until it has stopped). Try again when one finishes.", 429)

        def release(_: Any) -> None:  # when the thread has returned, not when the request ended
            with _running_lock:
                mine.pop(flag, None)
                if not mine and _running.get(session) is mine:
                    del _running[session]

        slot = _work_slot(LocalContext.blocks.get(None), event)
        context = copy_context()  # gradio's request, progress and toasts follow the handler into its thread
        context.run(runs.current_stop.set, flag)
        thread = _threads.submit(context.run, _in_slot, slot, flag, fn, *args, **kwargs)
        thread.add_done_callback(release)
        work = asyncio.wrap_future(thread)
        work.add_done_callback(_retrieved)
        try:
            return await asyncio.wait_for(asyncio.shield(work), RUN_LIMITS.max_seconds)
        except TimeoutError:
            raise refusal(f"This run passed the time limit of {RUN_LIMITS.max_seconds:g} s per request and was "
                          "stopped. Try fewer steps or a shorter input.", None) from None
        finally:
            flag.set()  # ended for whatever reason: the pipeline stops at its next step

    return event


_work_slots: dict[tuple[int, str], threading.BoundedSemaphore] = {}


def _work_slot(blocks: Any, event: Callable) -> threading.BoundedSemaphore | None:
    """The semaphore of ``event``'s concurrency group in ``blocks``' queue (None outside a queued app)."""
    queue = getattr(blocks, "_queue", None)
    block_fn = next((f for f in getattr(blocks, "fns", {}).values() if f.fn is event), None)
    if queue is None or block_fn is None:
        return None
    limit = getattr(queue.event_queue_per_concurrency_id.get(block_fn.concurrency_id), "concurrency_limit", None)
    if not limit:
        return None
    with _running_lock:
        return _work_slots.setdefault((id(blocks), block_fn.concurrency_id), threading.BoundedSemaphore(limit))


def _in_slot(slot: threading.BoundedSemaphore | None, flag: threading.Event, fn: Callable, *args: Any,
             **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` holding ``slot``; a run stopped while it waits for the slot never starts."""
    if slot is None:
        return fn(*args, **kwargs)
    while not slot.acquire(timeout=0.05):
        if flag.is_set():
            raise Cancelled()
    try:
        return fn(*args, **kwargs)
    finally:
        slot.release()


def _retrieved(work: asyncio.Future) -> None:
    """Mark a run's outcome as seen (nobody awaits a cancelled run's result; asyncio would log it)."""
    if not work.cancelled():
        work.exception()


QUEUE_FULL_RETRY_SECONDS = 60  # a full queue's Retry-After (its message says "in a minute")


def admit_requests(demo: gr.Blocks, per_user: int = limits.MAX_QUEUED_PER_USER) -> gr.Blocks:
    """Refuse a request before it joins the queue when the queue is full or its session already has
    ``per_user`` requests waiting (``limits.MAX_QUEUED_PER_USER``, or app.py's flag), in our words.

    Neither is the caller's mistake, and neither takes a queue slot. How each client hears it, by the
    header it sends (``x-gradio-user``: ``app`` for the page, ``api`` for gradio_client):

    * a full queue: HTTP 503 with ``Retry-After`` and our message as the detail, to gradio_client (its
      ``QueueError``, which callers catch and retry) and plain HTTP callers; the page, which shows fixed
      words of its own for a 503, gets our message as the request's answer (below);
    * a visitor over their own limit: plain HTTP callers (``/gradio_api/call/<name>``) get HTTP 429 with
      our message; the page and gradio_client get it as the request's answer: an event id that never joins
      the queue, whose error the session's stream delivers at once (what gradio itself does for a cached
      answer). gradio_client raises it as ``AppError`` with our text, not ``QueueError``'s fixed "Queue is
      full!", which would be wrong: the queue is not full, and a blind retry is refused again until one of
      the visitor's own requests starts.

    This wraps ``demo._queue.push``, gradio 6's admission point (tests/test_reliability_queue.py checks it
    still is). Call after ``demo.queue()``; running events are limited in ``guarded``.
    """
    queue = demo._queue
    push = queue.push

    async def admit(body: Any, request: Any, username: str | None) -> tuple:
        from fastapi import HTTPException

        caller = getattr(request, "headers", {}).get("x-gradio-user")
        session = getattr(body, "session_hash", None)
        if queue.max_size is not None and len(queue) >= queue.max_size:
            message = (f"Busy: the studio's queue is full ({len(queue)} requests waiting, at most {queue.max_size}). "
                       "Please try again in a minute.")
            if caller == "app" and session:
                return await _answered_at_once(queue, session, message)
            log.warning("request refused: %s", message)
            raise HTTPException(503, detail=message, headers={"Retry-After": str(QUEUE_FULL_RETRY_SECONDS)})
        if session and per_user:
            waiting = sum(event.session_hash == session
                          for events in list(queue.event_queue_per_concurrency_id.values())
                          for event in list(events.queue))
            if waiting >= per_user:
                message = (f"Busy: you already have {waiting} request(s) waiting in the studio's queue, and a visitor "
                           f"may have at most {per_user} waiting. Wait until one of them starts or finishes, then send "
                           "this one again.")
                if caller in ("app", "api"):
                    return await _answered_at_once(queue, session, message)
                log.warning("request refused: %s", message)
                raise HTTPException(429, detail=message)
        return await push(body, request, username)

    queue.push = admit
    return demo


async def _answered_at_once(queue: Any, session: str, message: str) -> tuple:
    """Admit a request as an event that never joins ``queue``: its id is answered at once on the session's
    stream with ``message`` as its error (gradio's own /cancel answers an event the same way)."""
    import uuid

    from gradio.server_messages import ProcessCompletedMessage

    log.warning("request refused: %s", message)
    event_id = uuid.uuid4().hex
    async with queue.pending_message_lock:
        if session not in queue.pending_messages_per_session:
            queue.pending_messages_per_session[session] = asyncio.Queue()
        queue.pending_event_ids_session.setdefault(session, set()).add(event_id)
    queue.pending_messages_per_session[session].put_nowait(ProcessCompletedMessage(
        output={"error": message, "visible": True, "title": "Busy"}, success=False, title="Busy",
        event_id=event_id))
    return True, event_id, "success"


def progress_callback(progress: gr.Progress) -> Callable[[float, str], None]:
    return lambda fraction, message: progress(fraction, desc=message)


# -- controls built from a pipeline's settings dataclass -------------------------------------------------
def slider(settings: type, name: str, step: float, note: str = "", **kwargs: Any) -> gr.Slider:
    """A slider whose limits, default and name are the settings dataclass's own (``settings.RANGES[name]``,
    ``binding.label``: the name, then ``note``); a whole-number range gives a whole-number slider
    (precision 0: the API lists it as an integer, and ``ui.errors`` refuses 3.7 where 3.0 passes as 3)."""
    valid = settings.RANGES[name]
    return gr.Slider(valid.low, valid.high, value=settings.default(name), step=step,
                     label=binding.label(settings, name, note), precision=0 if valid.integer else None, **kwargs)


def seed_control(settings: type) -> gr.Number:
    """A seed box (default from ``settings``) with a button that rolls a new one."""
    with gr.Row(equal_height=True):  # the button as tall as the box beside it
        seed = gr.Number(value=settings.default("seed"), precision=0, minimum=limits.SEED.low,
                         maximum=limits.SEED.high, label=binding.label(settings, "seed"), scale=3)
        roll = gr.Button("Random seed", size="sm", scale=1, min_width=120)
    roll.click(lambda: random.randint(0, int(limits.SEED.high)), outputs=seed, api_visibility="private")
    return seed


def prompt_box(label: str, value: str = "", **kwargs: Any) -> gr.Textbox:
    return gr.Textbox(label=label, value=value, max_length=limits.MAX_PROMPT_CHARS, **kwargs)


def run_and_cancel_buttons(label: str) -> tuple[gr.Button, gr.Button]:
    with gr.Row():
        run = gr.Button(label, variant="primary")
        stop = gr.Button("Cancel", variant="stop")
    return run, stop


# -- one way to wire a model event ------------------------------------------------------------------------
def model_event(studio: Any, button: gr.Button, fn: Callable, inputs: list, outputs: list, *, api_name: str,
                api_description: str, gpu_seconds: int | Callable = 60, stop: gr.Button | None = None,
                live: gr.Audio | None = None) -> Any:
    """Wire ``button`` to ``fn`` as a model run: the shared GPU concurrency id (one at a time), the
    ZeroGPU wrapper with its duration estimate, the named API endpoint and its one-line ``api_description``
    (what ``view_api()`` shows), the Cancel button, the
    session history (``history.recording``) and, given ``live`` (``streaming.live_player()``), a player
    that plays the run's parts as the pipeline finishes them (``ui/streaming.py``)."""
    from . import history  # every finished run joins its session's history (recorded in this process)
    from . import streaming

    if live is not None:
        fn = streaming.streams(api_name)(fn)
        streaming.listen_along(button, api_name, live)  # before the run's click: the page runs them in order
    event = button.click(
        guarded(history.recording(studio.gpu_task(fn, duration=gpu_seconds), api_name), api_name), inputs, outputs,
        api_name=api_name, api_description=api_description, concurrency_id=GPU, concurrency_limit=1,
    )
    if stop is not None:
        # Two ways, as either can miss: gradio cancels the event's task (then ``guarded`` sets its stop
        # flag), but the page sends the event's id, which it lacks until its join request has been
        # answered (a click early in a run on a busy server: the run went on to the end); so the click
        # also stops this session's run of ``api_name`` on the server, outside the queue.
        def cancel(request: gr.Request) -> None:
            stop_session(request, api_name)
            if live is not None:
                streaming.close(api_name, request)

        stop.click(cancel, None, None, cancels=[event], queue=False, api_visibility="private")
    if live is not None:
        streaming.close_after(event, api_name)
    return event
