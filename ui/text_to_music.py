"""Text to music tab: Riffusion's own generation (endpoints ``/text_to_music`` and ``/interpolate_prompts``)."""

from __future__ import annotations

import gradio as gr

from pipelines.schema import limits
from pipelines.schema.settings import PromptInterpolationSettings, TextToMusicSettings
from pipelines.studio import TEXT_TO_MUSIC_MODELS

from .common import model_event, progress_callback, prompt_box, run_and_cancel_buttons, save, seed_control, slider
from .common import start_run
from .errors import user_errors
from . import binding
from .binding import gpu_estimate, settings_from
from .send_to import AUDIO, buttons
from .streaming import live_player

MODEL_LABELS = {"riffusion": "Riffusion v1", "mask_model": "Mask paper's (sd-music-25)"}
# prompt, seconds, model: a few styles to start from (short, so that a CPU answers quickly)
EXAMPLES = [["lofi hip hop beat with a warm electric piano", 5.0, "riffusion"],
            ["upbeat funk with slap bass and a brass section", 8.0, "riffusion"],
            ["slow ambient synth pads, calm and wide", 10.0, "riffusion"],
            ["acoustic folk guitar and a soft violin", 5.0, "mask_model"]]


def build(studio) -> None:
    @user_errors
    def text_to_music(prompt, negative_prompt, seconds, steps, guidance, seed, model,
                      progress=gr.Progress(track_tqdm=True)):
        """Music from a text prompt with Riffusion, in 5.12 s windows each continuing the one before.

        Args:
            prompt: The music to hear, in words, for example "funk bassline with a jazzy saxophone solo".
            negative_prompt: What to keep out of the music, in words (may be empty).
            seconds: Length of the music in seconds.
            steps: Denoising steps per window; more is slower and finer.
            guidance: How closely the music follows the prompt (classifier-free guidance scale).
            seed: Random seed; the same seed and settings give the same music.
            model: Which model makes it: "riffusion" or "mask_model".
        """
        settings = settings_from(TextToMusicSettings, locals())
        flag = start_run(studio)
        result = studio.text_to_music(settings, model=model, on_progress=progress_callback(progress),
                                      should_stop=flag.is_set)
        files = save(result, "text-to-music")
        return files.audio, files.images["spectrogram"]

    @user_errors
    def interpolate_prompts(prompt_a, prompt_b, seed_a, seed_b, windows, steps, guidance,
                            progress=gr.Progress(track_tqdm=True)):
        """Music that moves from one prompt to another over several 5.12 s windows (Riffusion's interpolation).

        Args:
            prompt_a: The prompt the music starts from.
            prompt_b: The prompt the music ends at.
            seed_a: Random seed of the first window.
            seed_b: Random seed of the last window.
            windows: How many 5.12 s windows the journey takes.
            steps: Denoising steps per window.
            guidance: How closely each window follows its prompt (classifier-free guidance scale).
        """
        settings = settings_from(PromptInterpolationSettings, locals())
        flag = start_run(studio)
        result = studio.interpolate_prompts(settings, on_progress=progress_callback(progress), should_stop=flag.is_set)
        files = save(result, "interpolation")
        return files.audio, files.images["spectrogram"]

    t2m_gpu_seconds = gpu_estimate(text_to_music, TextToMusicSettings, lambda chosen, args: chosen.gpu_seconds(),
                                   TextToMusicSettings(seconds=TextToMusicSettings.RANGES["seconds"].high))
    interpolation_gpu_seconds = gpu_estimate(
        interpolate_prompts, PromptInterpolationSettings, lambda chosen, args: chosen.gpu_seconds(),
        PromptInterpolationSettings(windows=int(PromptInterpolationSettings.RANGES["windows"].high)))

    with gr.Tab("Text to music"):
        gr.Markdown(
            "Type a prompt, hear music: Riffusion paints 5.12 s spectrograms and each new window continues the last "
            "(img2img from its final 1.28 s, which is kept and crossfaded), for any length up to "
            f"{TextToMusicSettings.RANGES['seconds'].high:g} s. Below, Riffusion's interpolation walks from one prompt "
            "and seed to another, one window per step (text embeddings mixed linearly, start noise by slerp).",
            elem_classes=["studio-intro"],
        )
        with gr.Row():
            with gr.Column():
                prompt = prompt_box(binding.label(TextToMusicSettings, "prompt"), TextToMusicSettings.default("prompt"))
                with gr.Row():
                    seconds = slider(TextToMusicSettings, "seconds", 0.5, "s", min_width=240)
                    model = gr.Dropdown([(MODEL_LABELS[key], key) for key in TEXT_TO_MUSIC_MODELS],
                                        value=TEXT_TO_MUSIC_MODELS[0], label="Model", min_width=240)
                run, stop = run_and_cancel_buttons("Make music")
                with gr.Accordion("Negative prompt, diffusion and seed", open=False):
                    negative = prompt_box(binding.label(TextToMusicSettings, "negative_prompt"))
                    steps = slider(TextToMusicSettings, "steps", 1)
                    guidance = slider(TextToMusicSettings, "guidance", 0.5)
                    seed = seed_control(TextToMusicSettings)
            with gr.Column():
                music = gr.Audio(label="Music", type="filepath", interactive=False)
                live = live_player()
                buttons(music, AUDIO)
                image = gr.Image(label="Spectrogram (the windows side by side)", type="filepath", format="png",
                                 height=240, interactive=False)
        gr.Examples(EXAMPLES, inputs=[prompt, seconds, model], cache_examples=False)
        gr.Markdown("### Interpolate between two prompts")
        with gr.Row():
            with gr.Column():
                prompt_a = prompt_box(binding.label(PromptInterpolationSettings, "prompt_a", "alpha 0"),
                                      PromptInterpolationSettings.default("prompt_a"))
                prompt_b = prompt_box(binding.label(PromptInterpolationSettings, "prompt_b", "alpha 1"),
                                      PromptInterpolationSettings.default("prompt_b"))
                with gr.Row():
                    seed_a = gr.Number(value=PromptInterpolationSettings.default("seed_a"), precision=0,
                                       minimum=limits.SEED.low, maximum=limits.SEED.high,
                                       label=binding.label(PromptInterpolationSettings, "seed_a"))
                    seed_b = gr.Number(value=PromptInterpolationSettings.default("seed_b"), precision=0,
                                       minimum=limits.SEED.low, maximum=limits.SEED.high,
                                       label=binding.label(PromptInterpolationSettings, "seed_b"))
                windows = slider(PromptInterpolationSettings, "windows", 1, "5.12 s each")
                with gr.Accordion("Diffusion", open=False):
                    steps_i = slider(PromptInterpolationSettings, "steps", 1)
                    guidance_i = slider(PromptInterpolationSettings, "guidance", 0.5)
                run_i, stop_i = run_and_cancel_buttons("Interpolate")
            with gr.Column():
                music_i = gr.Audio(label="Interpolation", type="filepath", interactive=False)
                buttons(music_i, AUDIO)
                image_i = gr.Image(label="Interpolation spectrogram (alpha 0 on the left)", type="filepath",
                                   format="png", height=240, interactive=False)
        model_event(studio, run, text_to_music,
                    binding.inputs(text_to_music, {"prompt": prompt, "negative_prompt": negative,
                                                   "seconds": seconds, "steps": steps, "guidance": guidance,
                                                   "seed": seed, "model": model}),
                    [music, image], api_name="text_to_music",
                    api_description="Riffusion text to music: the seconds asked for, in 5.12 s windows, each "
                                    "continuing the last.", gpu_seconds=t2m_gpu_seconds, stop=stop, live=live)
        model_event(studio, run_i, interpolate_prompts,
                    binding.inputs(interpolate_prompts, {
                        "prompt_a": prompt_a, "prompt_b": prompt_b, "seed_a": seed_a, "seed_b": seed_b,
                        "windows": windows, "steps": steps_i, "guidance": guidance_i}), [music_i, image_i],
                    api_name="interpolate_prompts",
                    api_description="Riffusion's interpolation: 5.12 s windows moving from one prompt and seed to the"
                                    " other.", gpu_seconds=interpolation_gpu_seconds, stop=stop_i)
