"""Train tab: learn a MusicTI style or a genre LoRA from 3-20 clips (endpoint ``/train_style``).

The training runs in its own process (``pipelines.systems.train_style``), one at a time: the progress bar
shows the queue position, then the step and loss; Cancel stops the process. The result is the
visitor's own (``pipelines.models.trained``): the Style interpolation tab (a style) or Sound to music's genre
LoRA choice (a LoRA) lists it for this session the next time the tab opens, and for no one else;
closing the page cancels the session's training and removes what it trained (``forget``).
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
from pipelines.systems.train_style import KINDS, TRAINER, TrainStyleSettings

from . import binding
from .binding import settings_from
from .common import run_and_cancel_buttons, slider
from .errors import user_errors
from .history import session_of

KIND_LABELS = {"musicti": "MusicTI style (Style interpolation)", "genre_lora": "Genre LoRA (Sound to music)"}
WHERE = {"musicti": "the Style interpolation tab's list", "genre_lora": "Sound to music's genre LoRA choice"}
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


def estimate(studio, steps, kind: str = KINDS[0]) -> str:
    try:
        settings = TrainStyleSettings(kind=kind, steps=int(steps))
        seconds = settings.estimate_seconds(studio.info.profile, studio.info.device)
    except (TypeError, ValueError, KeyError, StudioError):
        return ""
    where = "the CPU" if studio.info.device == "cpu" else "this GPU"
    return f"About {max(1, round(seconds / 60))} min on {where} for {int(steps)} steps, plus a minute to start."


_stops: dict[str, set[threading.Event]] = {}  # session -> the stop flags of its trainings in progress
_stops_lock = threading.Lock()


def stoppable(handler):
    """The handler as an event whose run ends, however the event ends (Cancel, API cancel, closed page),
    with its stop flag set (``core.runs.current_stop`` in the handler's thread); unlike
    ``common.guarded`` no run-time limit (a training may wait its turn for long; the training itself
    has ``limits.TRAIN_MAX_SECONDS``) and no GPU lock. Same signature as ``handler`` (bound by name)."""

    @functools.wraps(handler)
    async def event(*args, **kwargs):
        flag, session = threading.Event(), session_of()
        with _stops_lock:
            _stops.setdefault(session, set()).add(flag)
        context = copy_context()  # gradio's request, progress and toasts follow the handler into its thread
        context.run(current_stop.set, flag)  # decoding the clips stops with it too (core.runs)
        call = functools.partial(context.run, handler, *args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(None, call)
        finally:
            flag.set()
            with _stops_lock:
                _stops.get(session, set()).discard(flag)

    return event


def stop_trainings(request: gr.Request) -> None:
    """Cancel: stop the session's trainings (waiting or running)."""
    with _stops_lock:
        flags = list(_stops.get(session_of(request), ()))
    for flag in flags:
        flag.set()


def forget_session(studio):
    """The ``demo.unload`` handler: a closed page cancels its session's trainings (their processes stop,
    their staging folders go) and removes the styles and LoRAs it trained (``train_style.forget``)."""
    from pipelines.systems import train_style

    def forget(request: gr.Request = None) -> None:
        stop_trainings(request)
        train_style.forget(studio, session_of(request))

    return forget


def build(studio) -> None:
    @user_errors
    def train_style(clips, name, kind, steps, progress=gr.Progress()):
        """Learn a music style from 3 to 20 clips, in a training process of its own, one at a time: a MusicTI style
        for style interpolation or a genre LoRA for sound to music. It is yours: listed for your session only, and
        removed when your session ends.

        Args:
            clips: URLs (http or https) of 3 to 20 audio files in the style to learn.
            name: The new style's name, as the Style interpolation tab (or Sound to music's genre LoRA choice) will list it, for example "my_accordion"; a genre LoRA's prompt word too.
            kind: What to learn: "musicti" (a MusicTI style for style interpolation) or "genre_lora" (a genre LoRA for sound to music).
            steps: Optimizer steps, 1 to 10000 (MusicTI trains 10000; a few hundred already give a usable style).
        """
        settings = settings_from(TrainStyleSettings, locals())  # the name is stripped and checked by the pipeline
        flag = current_stop.get() or threading.Event()
        job = studio.train_style(clips, settings, session=session_of())
        if studio.info.device == "cpu":
            gr.Info(f"Training on the CPU. {estimate(studio, settings.steps, settings.kind)}")
        while not job.wait(POLL_SECONDS):
            if flag.is_set():  # Cancel, a closed page or the time limit: the process is stopped
                job.cancel()
                job.wait()
                raise Cancelled()
            ahead = TRAINER.position(job)
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
        whose = ("It is in " + WHERE[settings.kind] + " now, for everyone." if studio.trained.shared else
                 f"It is in {WHERE[settings.kind]} now, for you only, until you close this page.")
        made = settings.name.strip()
        return f"Trained **{made}** in {job.step} steps{last}. {whose}", loss_plot(job.losses, made), made

    with gr.Tab("Train a style"):
        if ZERO_GPU:
            gr.Markdown("Training is off on ZeroGPU: the GPU is lent to the app's own process one call at a time, "
                        "and a training needs it for minutes in a process of its own. Run `python -m training.style` "
                        "on a GPU machine and point `STUDIO_MODEL_MUSIC_STYLES` at its styles folder.")
            return
        gr.Markdown(
            "Teach the studio a music style from 3 to 20 clips of it: a MusicTI style (time-varying textual "
            "inversion on Riffusion, `training/style.py`) for the Style interpolation tab, or a genre LoRA "
            "(DreamBooth-LoRA on Riffusion, `training/riffusion_lora.py`) for Sound to music, whose name is its "
            "prompt word. One training at a time, in a process of its own. "
            + ("What you train is listed for everyone and kept." if studio.trained.shared else
               f"What you train is yours: listed only for you, and removed when you close the page (at most "
               f"{limits.TRAIN_PER_SESSION} per visitor). ")
            + "MusicTI trains 10 000 steps; a few hundred already give a usable style.",
            elem_classes=["studio-intro"],
        )
        # The clips, name, kind, steps, the button and the loss plot together in the first screen (a narrow
        # page stacks the result after the button)
        with gr.Row():
            with gr.Column():
                clips = gr.File(label=f"Clips of the style ({int(limits.TRAIN_CLIPS.low)} to "
                                f"{int(limits.TRAIN_CLIPS.high)} audio files)", file_count="multiple",
                                file_types=["audio"], height=150)
                with gr.Row():
                    name = gr.Textbox(label=binding.label(TrainStyleSettings, "name"), value=TrainStyleSettings.default("name"), max_length=64,
                                      min_width=200)
                    kind = gr.Radio([(KIND_LABELS[key], key) for key in KINDS],
                                    value=TrainStyleSettings.default("kind"), label=binding.label(TrainStyleSettings, "kind"),
                                    min_width=240)
                steps = slider(TrainStyleSettings, "steps", 10)
                note = gr.Markdown(estimate(studio, TrainStyleSettings.default("steps")), elem_classes=["studio-intro"])
                run, stop = run_and_cancel_buttons("Train")
            with gr.Column():
                status = gr.Markdown()
                plot = gr.Image(label="Loss", type="filepath", height=240, interactive=False)
                made = gr.Textbox(label="Name (as the Style interpolation tab or Sound to music lists it)",
                                  interactive=False)
        for control in (steps, kind):
            control.change(lambda count, which: estimate(studio, count, which), [steps, kind], note,
                           api_visibility="private", queue=False)
        # its own queue (the trainings queue in pipelines.systems.train_style), not the GPU lock the models share
        event = run.click(stoppable(train_style),
                          binding.inputs(train_style, {"clips": clips, "name": name, "kind": kind, "steps": steps}),
                          [status, plot, made], api_name="train_style",
                          api_description="Learn a MusicTI style or a genre LoRA from 3-20 audio clips in a process "
                                          "of its own, one training at a time; it then appears in /style_interpolation "
                                          "(or /masked_img2img's lora) for this session only.",
                          concurrency_id="train", concurrency_limit=None)
        stop.click(stop_trainings, None, None, cancels=[event], queue=False, api_visibility="private")
