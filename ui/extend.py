"""Extend tab: any track continued after its end or before its start (endpoint ``/extend_music``).

Every music output's "Send to Extend" button brings its result here; an upload or a recording works too.
"""

from __future__ import annotations

import gradio as gr

from pipelines.schema import limits
from pipelines.systems.extend import ENGINES, SIDES, ExtendSettings

from .common import model_event, progress_callback, prompt_box, run_and_cancel_buttons, save, seed_control, slider
from .common import start_run
from .errors import user_errors
from . import binding
from .binding import gpu_estimate, settings_from
from .send_to import AUDIO, buttons, target

ENGINE_LABELS = {"riffusion": "Riffusion", "musicgen": "MusicGen"}  # the intro says how each continues
SIDE_LABELS = {"after": "After its end", "before": "Before its start"}


def build(studio) -> None:
    @user_errors
    def extend_music(audio_path, prompt, seconds, engine, side, seed, steps, guidance, negative_prompt="",
                     progress=gr.Progress(track_tqdm=True)):
        """A track continued by some seconds after its end or before its start, with Riffusion or MusicGen.

        Args:
            audio_path: URL (http or https) of an audio file, 1.28 to 60 s: the track to continue (kept unchanged up to a short crossfade at the seam).
            prompt: How the music goes on, in words, for example "jazzy saxophone solo".
            seconds: Seconds of new music to add, 1 to 60.
            engine: Which model continues it: "riffusion" (spectrogram windows keeping the track's last 1.28 s) or "musicgen" (prompted with the track's last seconds).
            side: Where the new music goes: "after" its end or "before" its start.
            seed: Random seed; the same track, settings and seed give the same audio.
            steps: Denoising steps per Riffusion window (MusicGen ignores it).
            guidance: Classifier-free guidance scale; empty for the engine's default (7 Riffusion, 3 MusicGen).
            negative_prompt: What to keep out of the new music, in words (Riffusion only; may be empty).
        """
        settings = settings_from(ExtendSettings, locals())  # by name; guidance None: the engine's default
        flag = start_run(studio)
        result = studio.extend_music(audio_path, settings, on_progress=progress_callback(progress),
                                     should_stop=flag.is_set)
        files = save(result, "extended")
        return files.audio, files.images.get("spectrogram")

    gpu_seconds = gpu_estimate(extend_music, ExtendSettings, lambda chosen, args: chosen.gpu_seconds(),
                               ExtendSettings(seconds=ExtendSettings.RANGES["seconds"].high,
                                              steps=ExtendSettings.RANGES["steps"].high))

    with gr.Tab("Extend"):
        gr.Markdown(
            "Continue any track (an upload, a recording, or any music result sent here) by up to "
            f"{ExtendSettings.RANGES['seconds'].high:g} s after its end or before its start. The track itself is "
            "kept unchanged up to a short crossfade at the seam. Riffusion paints new 5.12 s spectrogram "
            "windows that keep the track's last 1.28 s and go on under the prompt; MusicGen is prompted with "
            "the track's last seconds and writes what follows (before the start, it continues the track played "
            "backwards).",
            elem_classes=["studio-intro"],
        )
        # The track, prompt, length, engine and side, the button and the result in the first screen; the
        # sampling settings folded below the button
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(label="Track to extend", sources=["upload", "microphone"], type="filepath")
                target("extend", audio_in)
                with gr.Row():
                    prompt = prompt_box(binding.label(ExtendSettings, "prompt"), ExtendSettings.default("prompt"), min_width=240)
                    seconds = slider(ExtendSettings, "seconds", 0.5, min_width=240)
                with gr.Row():
                    engine = gr.Radio([(ENGINE_LABELS[key], key) for key in ENGINES],
                                      value=ExtendSettings.default("engine"), label=binding.label(ExtendSettings, "engine"),
                                      min_width=240)
                    side = gr.Radio([(SIDE_LABELS[key], key) for key in SIDES], value=ExtendSettings.default("side"),
                                    label=binding.label(ExtendSettings, "side"), min_width=240)
                run, stop = run_and_cancel_buttons("Extend")
                with gr.Accordion("Seed, steps, guidance, negative prompt", open=False):
                    seed = seed_control(ExtendSettings)
                    steps = slider(ExtendSettings, "steps", 1, "Riffusion")
                    guidance = gr.Number(value=None, minimum=limits.GUIDANCE.low, maximum=limits.GUIDANCE.high,
                                         label=binding.label(ExtendSettings, "guidance",
                                                             "empty: the engine default, 7 Riffusion, 3 MusicGen"))
                    negative = prompt_box(binding.label(ExtendSettings, "negative_prompt", "Riffusion"))
            with gr.Column():
                music = gr.Audio(label="Extended track", type="filepath", interactive=False)
                buttons(music, AUDIO)
                image = gr.Image(label="New windows' spectrogram (Riffusion)", type="filepath", format="png",
                                 height=240, interactive=False)
        inputs = binding.inputs(extend_music, {
            "audio_path": audio_in, "prompt": prompt, "seconds": seconds, "engine": engine, "side": side,
            "seed": seed, "steps": steps, "guidance": guidance, "negative_prompt": negative})
        model_event(studio, run, extend_music, inputs, [music, image], api_name="extend_music",
                    api_description="A track continued by N seconds after its end or before its start, with "
                                    "Riffusion or MusicGen; the track is kept up to a short crossfade at the seam.",
                    gpu_seconds=gpu_seconds, stop=stop)
