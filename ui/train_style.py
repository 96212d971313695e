"""Train tab: learn a MusicTI style from 3-20 clips (endpoint ``/train_style``).

The training runs in its own process (``pipelines.systems.train_style``), one at a time: the progress bar
shows the queue position, then the step and loss; Cancel stops the process. The new style is listed
in the Style interpolation tab the next time it opens.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from contextvars import copy_context

import gradio as gr

from core.errors import Cancelled, StudioError
from core.runs import current_stop
from pipelines.schema import limits
from pipelines.models.device import ZERO_GPU
from pipelines.schema.outputs import new_output_dir
from pipelines.systems.train_style import KINDS, TrainStyleSettings

from .common import run_and_cancel_buttons, slider, user_errors

KIND_LABELS = {"musicti": "MusicTI style (for the Style interpolation tab)"}
POLL_SECONDS = 0.5


def loss_plot(losses: list[tuple[int, float]], name: str, size: tuple[int, int] = (640, 300)) -> str | None:
    """The loss per step as a PNG line plot drawn with PIL, as the app's other plots (None before the
    first step); the y range is the losses' own, the first and last step on the x axis."""
    if not losses:
        return None
    from PIL import Image, ImageDraw

    width, height, margin = size[0], size[1], 50
    image = Image.new("RGB", size, (250, 250, 247))
    draw = ImageDraw.Draw(image)
    steps, values = [s for s, _ in losses], [v for _, v in losses]
    low, high = min(values), max(values)
    span, last = (high - low) or 1.0, max(steps[-1] - steps[0], 1)
    points = [(margin + (s - steps[0]) / last * (width - 2 * margin),
               height - margin - (v - low) / span * (height - 2 * margin)) for s, v in losses]
    draw.rectangle([margin, margin, width - margin, height - margin], outline=(40, 40, 40))
    draw.line(points if len(points) > 1 else points * 2, fill=(31, 119, 180), width=2)
    draw.text((margin, 10), f"Training {name}: loss per step", fill=(40, 40, 40))
    draw.text((4, margin), f"{high:.4f}", fill=(40, 40, 40))
    draw.text((4, height - margin - 10), f"{low:.4f}", fill=(40, 40, 40))
    draw.text((margin, height - margin + 8), f"step {steps[0]}", fill=(40, 40, 40))
    draw.text((width - margin - 60, height - margin + 8), f"step {steps[-1]}", fill=(40, 40, 40))
    path = new_output_dir() / "loss.png"
    image.save(path)
    return str(path)


def estimate(studio, steps) -> str:
    try:
        seconds = TrainStyleSettings(steps=int(steps)).estimate_seconds(studio.info.profile, studio.info.device)
    except (TypeError, ValueError, StudioError):
        return ""
    where = "the CPU" if studio.info.device == "cpu" else "this GPU"
    return f"About {max(1, round(seconds / 60))} min on {where} for {int(steps)} steps, plus a minute to start."


_stops: dict[str, set[threading.Event]] = {}  # session -> the stop flags of its trainings in progress
_stops_lock = threading.Lock()


def _session(request) -> str:
    return getattr(request, "session_hash", None) or "default"


def stoppable(handler):
    """The handler as an event whose run ends, however the event ends (Cancel, API cancel, closed page),
    with its stop flag set; unlike ``common.guarded`` no run-time limit (a training may wait its turn
    for long; the training itself has ``limits.TRAIN_MAX_SECONDS``) and no GPU lock."""

    async def event(clips, name, kind, steps, request: gr.Request = None, progress=gr.Progress()):
        flag, session = threading.Event(), _session(request)
        with _stops_lock:
            _stops.setdefault(session, set()).add(flag)
        context = copy_context()  # gradio's request, progress and toasts follow the handler into its thread
        context.run(current_stop.set, flag)  # decoding the clips stops with it too (core.runs)
        call = functools.partial(context.run, handler, clips, name, kind, steps, flag, progress)
        try:
            return await asyncio.get_running_loop().run_in_executor(None, call)
        finally:
            flag.set()
            with _stops_lock:
                _stops.get(session, set()).discard(flag)

    event.__doc__ = handler.__doc__  # the endpoint's description (API page, MCP), not its signature
    event.__name__ = event.__qualname__ = handler.__name__  # the MCP tool's name (gradio names tools after functions)
    return event


def stop_trainings(request: gr.Request) -> None:
    """Cancel: stop the session's trainings (waiting or running)."""
    with _stops_lock:
        flags = list(_stops.get(_session(request), ()))
    for flag in flags:
        flag.set()


def build(studio) -> None:
    @user_errors
    def train_style(clips, name, kind, steps, flag, progress):
        """Learn a MusicTI music style from 3 to 20 clips, in a training process of its own, one at a time.

        Args:
            clips: URLs (http or https) of 3 to 20 audio files in the style to learn.
            name: The new style's name, as the Style interpolation tab will list it, for example "accordion".
            kind: What to learn: "musicti" (a MusicTI style for style interpolation).
            steps: Optimizer steps, 1 to 10000 (MusicTI trains 10000; a few hundred already give a usable style).
        """
        settings = TrainStyleSettings(name=(name or "").strip(), kind=kind, steps=steps)
        job = studio.train_style(clips, settings)
        if studio.info.device == "cpu":
            gr.Info(f"Training on the CPU. {estimate(studio, steps)}")
        while not job.wait(POLL_SECONDS):
            if flag.is_set():  # Cancel, a closed page or the time limit: the process is stopped
                job.cancel()
                job.wait()
                raise Cancelled()
            ahead = studio_trainer().position(job)
            if job.state == "waiting":
                progress(0.0, desc=f"waiting for the training ahead ({ahead} in the queue before this one)")
            else:
                loss = f", loss {job.losses[-1][1]:.4f}" if job.losses else ""
                progress(job.step / settings.steps, desc=f"step {job.step} of {settings.steps}{loss}")
        if job.state == "cancelled":
            raise Cancelled()
        if job.state != "done":
            raise StudioError(job.error or "The training failed.")
        last = f"; last loss {job.losses[-1][1]:.4f}" if job.losses else ""
        return (f"Trained the style **{settings.name}** in {job.step} steps{last}. It is in the Style interpolation "
                "tab's list now.", loss_plot(job.losses, settings.name), settings.name)

    def studio_trainer():
        from pipelines.systems.train_style import TRAINER

        return TRAINER

    with gr.Tab("Train a style"):
        if ZERO_GPU:
            gr.Markdown("Training is off on ZeroGPU: the GPU is lent to the app's own process one call at a time, "
                        "and a training needs it for minutes in a process of its own. Run `python -m training.style` "
                        "on a GPU machine and point `STUDIO_MODEL_MUSIC_STYLES` at its styles folder.")
            return
        gr.Markdown(
            "Teach the studio a music style from 3 to 20 clips of it (MusicTI's time-varying textual inversion on "
            "Riffusion, `training/style.py`). The training runs in its own process, one at a time; when it is done "
            "the style is listed in the Style interpolation tab. MusicTI trains 10 000 steps; a few hundred already "
            "give a usable style."
        )
        with gr.Row():
            with gr.Column():
                clips = gr.File(label=f"Clips of the style ({int(limits.TRAIN_CLIPS.low)} to "
                                f"{int(limits.TRAIN_CLIPS.high)} audio files)", file_count="multiple",
                                file_types=["audio"])
                name = gr.Textbox(label="Style name", value=TrainStyleSettings.default("name"), max_length=64)
                kind = gr.Radio([(KIND_LABELS[key], key) for key in KINDS], value=KINDS[0], label="What to learn")
                steps = slider(TrainStyleSettings, "steps", "Steps", 10)
                note = gr.Markdown(estimate(studio, TrainStyleSettings.default("steps")))
                run, stop = run_and_cancel_buttons("Train")
            with gr.Column():
                status = gr.Markdown()
                plot = gr.Image(label="Loss", type="filepath", interactive=False)
                made = gr.Textbox(label="Style name (as the Style interpolation tab lists it)", interactive=False)
        steps.change(lambda value: estimate(studio, value), steps, note, api_visibility="private", queue=False)
        # its own queue (the trainings queue in pipelines.systems.train_style), not the GPU lock the models share
        event = run.click(stoppable(train_style), [clips, name, kind, steps], [status, plot, made],
                          api_name="train_style",
                          api_description="Learn a MusicTI style from 3-20 audio clips in a process of its own, one "
                                          "training at a time; the style then appears in /style_interpolation.",
                          concurrency_id="train", concurrency_limit=None)
        stop.click(stop_trainings, None, None, cancels=[event], queue=False, api_visibility="private")


