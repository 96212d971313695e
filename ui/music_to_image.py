"""Music to image tab: genre, emotion and tempo -> a sentence -> Stable Diffusion 1.5 with the TechJam LoRA
(endpoints ``/describe_music`` and ``/music_to_image``)."""

from __future__ import annotations

import gradio as gr

from pipelines.settings import MusicToImageSettings

from .common import ASSETS, model_event, prompt_box, run_and_cancel_buttons, save, seed_control, slider, start_run
from .common import guarded, user_errors
from . import binding
from .binding import gpu_estimate, settings_from
from .send_to import IMAGE, buttons, target


def _labels(pairs) -> dict[str, float]:
    return {label: round(float(p), 4) for label, p in pairs}


def build(studio) -> None:
    @user_errors
    def describe_music(audio_path):
        described = studio.describe_music(audio_path)
        return _labels(described.genres), _labels(described.emotions), described.tempo_text, described.sentence

    @user_errors
    def music_to_image(audio_path, description, steps, guidance, width, height, seed, lora_scale,
                       progress=gr.Progress(track_tqdm=True)):
        settings = settings_from(MusicToImageSettings, locals())
        flag = start_run(studio)
        result = studio.music_to_image(audio_path, description, settings, should_stop=flag.is_set)
        return save(result, "music-to-image").images["music-to-image"], result.prompt

    most = {name: MusicToImageSettings.RANGES[name].high for name in ("steps", "width", "height")}
    zero_gpu_seconds = gpu_estimate(music_to_image, MusicToImageSettings, lambda chosen, args: chosen.gpu_seconds(),
                                    MusicToImageSettings(**most))

    with gr.Tab("Music to image"):
        gr.Markdown(
            "Listen, describe, paint. Genre (GTZAN CNN) and emotion (Emotify CNN) are averaged over the whole "
            "track, the tempo comes from beat tracking, and the sentence prompts Stable Diffusion 1.5 with the "
            "TechJam LoRA. Edit the description before you generate, or write your own."
        )
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(label="Music", sources=["upload", "microphone"], type="filepath")
                gr.Examples([[str(ASSETS / "groove.wav")]], inputs=[audio_in], cache_examples=False)
                target("music_to_image", audio_in)
                describe = gr.Button("Describe", variant="secondary")
                with gr.Row():
                    genres = gr.Label(label="Genre", num_top_classes=3)
                    emotions = gr.Label(label="Emotion", num_top_classes=3)
                tempo = gr.Textbox(label="Tempo (as the sentence states it; refined by a fit through the beats)",
                                   interactive=False)
                description = prompt_box("Description (editable; empty: made from the music)", lines=3)
                with gr.Accordion("Image settings", open=False):
                    steps = slider(MusicToImageSettings, "steps", "Steps", 1)
                    guidance = slider(MusicToImageSettings, "guidance", "Guidance", 0.5)
                    with gr.Row():
                        width = slider(MusicToImageSettings, "width", "Width", 8)
                        height = slider(MusicToImageSettings, "height", "Height", 8)
                    seed = seed_control(MusicToImageSettings)
                    lora_scale = slider(MusicToImageSettings, "lora_scale", "LoRA scale (0: plain Stable Diffusion)",
                                        0.05)
                generate, stop = run_and_cancel_buttons("Generate image")
            with gr.Column():
                image = gr.Image(label="Image", type="filepath", format="png")
                buttons(image, IMAGE)
                used = gr.Textbox(label="Description used", interactive=False)
        describe.click(guarded(describe_music), audio_in, [genres, emotions, tempo, description],
                       api_name="describe_music",
                       api_description="Genre and emotion (top labels with probabilities), tempo, and TechJam's "
                                       "sentence for a piece of music.")
        model_event(studio, generate, music_to_image,
                    binding.inputs(music_to_image, {
                        "audio_path": audio_in, "description": description, "steps": steps, "guidance": guidance,
                        "width": width, "height": height, "seed": seed, "lora_scale": lora_scale}), [image, used],
                    api_name="music_to_image",
                    api_description="A picture from music, or from a description: Stable Diffusion 1.5 with the "
                                    "TechJam LoRA.", gpu_seconds=zero_gpu_seconds, stop=stop)
