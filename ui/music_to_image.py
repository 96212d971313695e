"""Music to image tab: genre, emotion and tempo -> a sentence -> Stable Diffusion 1.5 with the TechJam LoRA
(endpoints ``/describe_music`` and ``/music_to_image``)."""

from __future__ import annotations

import gradio as gr

from pipelines.settings import MusicToImageSettings

from .common import ASSETS, model_event, prompt_box, run_and_cancel_buttons, save, seed_control, slider, start_run
from .common import guarded, user_errors
from .send_to import IMAGE, buttons, target


def _labels(pairs) -> dict[str, float]:
    return {label: round(float(p), 4) for label, p in pairs}


def build(studio) -> None:
    @user_errors
    def describe_music(audio_path):
        """Genre and emotion of a piece of music (TechJam's classifiers), its tempo, and the sentence that prompts the picture.

        Args:
            audio_path: URL (http or https) of an audio file (at most the app's input length): the music to describe (the whole track is used).
        """
        described = studio.describe_music(audio_path)
        return _labels(described.genres), _labels(described.emotions), described.tempo_text, described.sentence

    @user_errors
    def music_to_image(audio_path, description, steps, guidance, width, height, seed, lora_scale,
                       request: gr.Request = None, progress=gr.Progress(track_tqdm=True)):
        """A picture from music, or from a description: Stable Diffusion 1.5 with TechJam's LoRA, prompted by the music's genre, emotion and tempo.

        Args:
            audio_path: URL (http or https) of an audio file (at most the app's input length): the music to picture; may be empty when a description is given.
            description: Your own description of the picture; when given it replaces the sentence made from the music.
            steps: Denoising steps; more is slower and finer.
            guidance: How closely the picture follows the sentence (classifier-free guidance scale).
            width: Picture width in pixels, a multiple of 8.
            height: Picture height in pixels, a multiple of 8.
            seed: Random seed; the same seed and settings give the same picture.
            lora_scale: Strength of TechJam's music-to-image LoRA; 0 is plain Stable Diffusion 1.5.
        """
        settings = MusicToImageSettings(steps=steps, guidance=guidance, width=width, height=height, seed=seed,
                                        lora_scale=lora_scale)
        flag = start_run(studio, request)
        result = studio.music_to_image(audio_path, description, settings, should_stop=flag.is_set)
        return save(result, "music-to-image").images["music-to-image"], result.prompt

    def zero_gpu_seconds(audio_path, description, steps, guidance, width, height, *rest, **kwargs) -> int:
        try:
            return MusicToImageSettings(steps=int(steps), width=int(width), height=int(height)).gpu_seconds()
        except (TypeError, ValueError):
            return MusicToImageSettings(steps=100, width=1024, height=1024).gpu_seconds()

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
                    [audio_in, description, steps, guidance, width, height, seed, lora_scale], [image, used],
                    api_name="music_to_image",
                    api_description="A picture from music, or from a description: Stable Diffusion 1.5 with the "
                                    "TechJam LoRA.", gpu_seconds=zero_gpu_seconds, stop=stop)
