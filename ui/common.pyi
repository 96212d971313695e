"""What every tab shares: error boundary, cancel flags, controls built from settings, model events.

The UI layer converts widgets to arguments and results to widgets; it never touches a torch device.
Pipelines raise the project's errors (``core.errors``); ``user_errors`` turns them into ``gr.Error``
with the same message (API callers read it too), and a ``Cancelled`` run into an information toast.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from core.errors import Cancelled, StudioError
from pipelines import limits
from pipelines.outputs import SavedResult, save_result

log = logging.getLogger("studio")

ASSETS = Path(__file__).resolve().parents[1] / "assets"
GPU = "gpu"  # one concurrency id for every event that runs a model: a queue-level GPU lock


# -- error handling -------------------------------------------------------------------------------------
def user_errors(fn: Callable) -> Callable:
    """Turn the project's errors into gr.Error (shown in the UI and sent to API callers); a cancelled
    run is not an error: it says so and leaves every output as it was."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Cancelled as stopped:
            gr.Info(str(stopped))
            return gr.skip()
        except StudioError as error:
            raise gr.Error(str(error)) from error
        except Exception as error:  # noqa: BLE001  (the app must keep running)
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(
                f"Something unexpected went wrong ({type(error).__name__}: {str(error)[:200]}). "
                "The app is still running; please try again or report this."
            ) from error

    return wrapper

from gradio.events import Dependency

class ImageUpload(gr.Image):
    """``gr.Image`` (same widget: upload, webcam, clipboard) whose upload reaches our loader untouched.

    gradio's own preprocessing opens the file with PIL first (a text file named .png or a
    30000x30000 PNG then fails as "Could not preprocess input component ...") and converts the mode
    (alpha lost, 16 bits clipped). Here the handler gets the uploaded file's path and
    ``pipelines.images.open_image`` does all of that with our checks and messages. Webcam snapshots
    sent as data URLs still go through gradio's decoder.
    """

    is_template = True  # gradio's mechanism for a subclass that keeps its parent's frontend

    def __init__(self, **kwargs: Any):
        super().__init__(type="filepath", image_mode=None, **kwargs)

    def preprocess(self, payload: Any) -> str | None:
        if payload is None or payload.path is not None:
            return None if payload is None else str(payload.path)
        try:
            return super().preprocess(payload)
        except Exception as error:  # noqa: BLE001  (a data URL gradio cannot decode)
            raise gr.Error("The picture could not be read; please upload a PNG, JPEG or WebP file.") from error
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


def save(result: Any, name: str) -> SavedResult:
    """Write a result's files (WAV and PNGs with their parameters) into a fresh output folder."""
    return save_result(result, name)


# -- cancelling -------------------------------------------------------------------------------------------
_stop_flags: dict[str, threading.Event] = {}


def stop_flag(request: gr.Request | None) -> threading.Event:
    key = getattr(request, "session_hash", None) or "default"
    return _stop_flags.setdefault(key, threading.Event())


def start_run(studio: Any, request: gr.Request | None) -> threading.Event:
    """Begin a model run: clear this session's cancel flag, and say so when real models run on a CPU."""
    if studio.info.device == "cpu" and studio.info.profile != "tiny":
        gr.Info("Running on the CPU: with the real models this takes minutes. Fewer steps make it faster.")
    flag = stop_flag(request)
    flag.clear()
    return flag


def cancel(request: gr.Request = None) -> None:
    """The Cancel buttons: the running pipeline polls this session's flag after every step."""
    stop_flag(request).set()


def progress_callback(progress: gr.Progress) -> Callable[[float, str], None]:
    return lambda fraction, message: progress(fraction, desc=message)


# -- controls built from a pipeline's settings dataclass -------------------------------------------------
def slider(settings: type, name: str, label: str, step: float, **kwargs: Any) -> gr.Slider:
    """A slider whose limits and default are the settings dataclass's own (``settings.RANGES[name]``)."""
    valid = settings.RANGES[name]
    return gr.Slider(valid.low, valid.high, value=settings.default(name), step=step, label=label, **kwargs)


def seed_control(settings: type) -> gr.Number:
    """A seed box (default from ``settings``) with a button that rolls a new one."""
    with gr.Row():
        seed = gr.Number(value=settings.default("seed"), precision=0, minimum=limits.SEED.low,
                         maximum=limits.SEED.high, label="Seed")
        roll = gr.Button("🎲 Random seed", size="sm")
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
                gpu_seconds: int | Callable = 60, stop: gr.Button | None = None) -> Any:
    """Wire ``button`` to ``fn`` as a model run: the shared GPU concurrency id (one at a time), the
    ZeroGPU wrapper with its duration estimate, the named API endpoint, and the Cancel button."""
    event = button.click(
        studio.gpu_task(fn, duration=gpu_seconds), inputs, outputs,
        api_name=api_name, concurrency_id=GPU, concurrency_limit=1,
    )
    if stop is not None:
        stop.click(cancel, None, None, cancels=[event], api_visibility="private")
    return event