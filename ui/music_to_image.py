"""Music to image tab: genre, emotion and tempo -> a sentence -> Stable Diffusion 1.5 with the TechJam LoRA
(endpoints ``/describe_music`` and ``/music_to_image``)."""

from __future__ import annotations

import gradio as gr

from pipelines.systems.music_to_image import tempo_text
from pipelines.schema.outputs import read_png_parameters
from pipelines.schema.settings import MusicToImageSettings

from .common import ASSETS, model_event, prompt_box, run_and_cancel_buttons, save, seed_control, slider, start_run
from .common import guarded, random_note
from .errors import user_errors
from . import binding
from .binding import gpu_estimate, settings_from
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
                       progress=gr.Progress(track_tqdm=True)):
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
        settings = settings_from(MusicToImageSettings, locals())
        flag = start_run(studio)
        result = studio.music_to_image(audio_path, description, settings, should_stop=flag.is_set)
        return save(result, "music-to-image").images["music-to-image"], result.prompt

    most = {name: MusicToImageSettings.RANGES[name].high for name in ("steps", "width", "height")}
    zero_gpu_seconds = gpu_estimate(music_to_image, MusicToImageSettings, lambda chosen, args: chosen.gpu_seconds(),
                                    MusicToImageSettings(**most))

    def heard_in(image_path):
        """The genre, emotion and tempo panels from a generated picture's own parameters (its PNG keeps what
        the music was heard as); unchanged when the picture came from the user's own description."""
        try:
            saved = read_png_parameters(image_path) if image_path else {}
        except Exception:  # noqa: BLE001  (no parameters: leave the panels as they are)
            saved = {}
        if not saved.get("genres"):
            return gr.skip(), gr.skip(), gr.skip()
        return (_labels(saved["genres"]), _labels(saved.get("emotions", [])),
                tempo_text(saved.get("bpm"), saved.get("refined_bpm")))

    random = random_note(studio)
    with gr.Tab("Music to image"):
        gr.Markdown(
            "Listen, describe, paint. Genre (GTZAN CNN) and emotion (Emotify CNN) are averaged over the whole "
            "track, the tempo comes from beat tracking, and the sentence prompts Stable Diffusion 1.5 with the "
            "TechJam LoRA. Edit the description before you generate, or write your own.",
            elem_classes=["studio-intro"],
        )
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(label="Music", sources=["upload", "microphone"], type="filepath")
                target("music_to_image", audio_in)
                description = prompt_box("Description (editable; empty: made from the music)", lines=2)
                with gr.Row():
                    describe = gr.Button("Describe", variant="secondary", scale=1, min_width=100)
                    with gr.Column(scale=2, min_width=200):
                        generate, stop = run_and_cancel_buttons("Generate image")
            with gr.Column():
                image = gr.Image(label="Image", type="filepath", format="png", height=300, interactive=False)
                buttons(image, IMAGE)
                used = gr.Textbox(label=f"Description used{random_note(studio, 'genre and emotion')}",
                                  interactive=False)
                with gr.Row():
                    genres = gr.Label(label=f"Genre{random}", num_top_classes=3, min_width=140)
                    emotions = gr.Label(label=f"Emotion{random}", num_top_classes=3, min_width=140)
                    tempo = gr.Textbox(label="Tempo (beat tracking; refined by a fit through the beats)",
                                       interactive=False, min_width=140)
        with gr.Row():
            with gr.Column():
                gr.Examples([[str(ASSETS / "groove.wav")]], inputs=[audio_in], cache_examples=False)
            with gr.Column():
                with gr.Accordion("Image settings", open=False):
                    steps = slider(MusicToImageSettings, "steps", 1)
                    guidance = slider(MusicToImageSettings, "guidance", 0.5)
                    with gr.Row():
                        width = slider(MusicToImageSettings, "width", 8)
                        height = slider(MusicToImageSettings, "height", 8)
                    seed = seed_control(MusicToImageSettings)
                    lora_scale = slider(MusicToImageSettings, "lora_scale", 0.05, "0: plain Stable Diffusion")
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
                                    "TechJam LoRA.", gpu_seconds=zero_gpu_seconds, stop=stop,
                    ).success(heard_in, image, [genres, emotions, tempo], api_visibility="private")
