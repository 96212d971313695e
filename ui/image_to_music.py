"""Image to music tab: BLIP caption -> MusicGen, and songs whose lyrics match the caption
(endpoints ``/image_to_music`` and ``/recommend_songs``)."""

from __future__ import annotations

import gradio as gr

from pipelines.schema.settings import ImageToMusicSettings

from .common import ASSETS, GPU, guarded, image_upload, model_event, prompt_box, run_and_cancel_buttons, save
from .common import metrics_checkbox, metrics_rows, metrics_table, shown_when_filled
from .common import progress_callback, random_note, seed_control, slider, start_run
from .errors import user_errors
from . import binding
from .binding import gpu_estimate, settings_from
from .send_to import AUDIO, buttons, target
from .streaming import live_player


def build(studio) -> None:
    @user_errors
    def image_to_music(image_path, prompt, seconds, guidance, temperature, top_k, top_p, seed, melody_path=None,
                       compute_metrics=None, progress=gr.Progress(track_tqdm=True)):
        """Music for a picture: its BLIP caption (or your prompt) made into music by MusicGen, optionally following a melody.

        Args:
            image_path: URL (http or https) of a picture (PNG, JPEG or WebP) to caption; may be empty when a prompt is given.
            prompt: Your own music prompt; when given it replaces the picture's caption.
            seconds: Length of the music in seconds.
            guidance: Classifier-free guidance scale; 1 or less switches it off.
            temperature: Sampling temperature: higher is more surprising.
            top_k: Sample from the k likeliest tokens; 0 switches this off.
            top_p: Sample from the likeliest tokens whose probabilities add up to p; 0 switches this off.
            seed: Random seed; the same seed and settings give the same music.
            melody_path: URL (http or https) of an audio file whose melody the music follows (MusicGen-melody); empty for none.
            compute_metrics: Also score the music against the caption with CLAP (slower on a CPU).
        """
        settings = settings_from(ImageToMusicSettings, locals())
        flag = start_run(studio)
        result = studio.image_to_music(image_path, prompt, settings, melody_path, should_stop=flag.is_set,
                                       on_progress=progress_callback(progress), clap=compute_metrics)
        return result.prompt, save(result, "image-to-music").audio, metrics_rows(result)

    @user_errors
    def recommend_songs(image_path, caption):
        """Songs whose lyrics are closest in meaning to a picture's caption (or your own caption).

        Args:
            image_path: URL (http or https) of a picture to caption; may be empty when a caption is given.
            caption: Your own caption; when given it replaces the picture's.
        """
        found = studio.recommend_songs(image_path, caption)
        rows = [[m.artist, m.title, round(m.score, 3), " / ".join(line for line, _ in m.lines)] for m in found.matches]
        return found.caption, rows

    zero_gpu_seconds = gpu_estimate(image_to_music, ImageToMusicSettings, lambda chosen, args: chosen.gpu_seconds(),
                                    ImageToMusicSettings(seconds=ImageToMusicSettings.RANGES["seconds"].high))

    with gr.Tab("Image to music"):
        gr.Markdown(
            "A picture becomes a caption (BLIP), the caption becomes music (MusicGen), and songs whose lyrics "
            "are closest in meaning to the caption are suggested. Write your own prompt to skip the caption.",
            elem_classes=["studio-intro"],
        )
        with gr.Row():
            with gr.Column():
                image_in = image_upload(label="Picture", sources=["upload", "webcam", "clipboard"], height=260)
                target("image_to_music", image_in)
                with gr.Row():
                    prompt = prompt_box("Music prompt (empty: the picture's caption)", min_width=240)
                    seconds = slider(ImageToMusicSettings, "seconds", 1, "s", min_width=240)
                run, stop = run_and_cancel_buttons("Make music")
            with gr.Column():
                used = gr.Textbox(label=f"Prompt used (the caption, or yours){random_note(studio, 'captioner')}",
                                  interactive=False)
                music = gr.Audio(label="Music", type="filepath", interactive=False)
                live = live_player()
                buttons(music, AUDIO)
                metrics_out = metrics_table("Metrics (CLAP score against the prompt used)", studio)
        with gr.Row():
            with gr.Column():
                gr.Examples([[str(ASSETS / "sunset.png")], [str(ASSETS / "forest.png")]], inputs=[image_in],
                            cache_examples=False)
                with gr.Accordion("Follow a melody (optional)", open=False):
                    melody = gr.Audio(label="Melody: a tune to follow (its first 30 s; music up to 30 s)",
                                      type="filepath", sources=["upload", "microphone"])
                    gr.Markdown("With a melody, MusicGen-melody makes the music, following the tune's notes "
                                "(one pitch class at a time); without one, musicgen-small makes its own.")
                with gr.Accordion("Sampling, seed and metrics", open=False):
                    guidance = slider(ImageToMusicSettings, "guidance", 0.5, "classifier-free")
                    temperature = slider(ImageToMusicSettings, "temperature", 0.05)
                    top_k = slider(ImageToMusicSettings, "top_k", 1, "0: off")
                    top_p = slider(ImageToMusicSettings, "top_p", 0.01, "0: off")
                    seed = seed_control(ImageToMusicSettings)
                    compute_metrics = metrics_checkbox(studio)
            with gr.Column():
                suggest = gr.Button("Suggest songs")
                songs = gr.Dataframe(headers=["artist", "title", "score", "matching lines"], interactive=False,
                                     wrap=True,
                                     label="Songs with lyrics close to the caption (sample lyrics written for this app)"
                                           + random_note(studio, "sentence embedder"),
                                     elem_classes=["studio-table"])
        ran = model_event(studio, run, image_to_music,
                          binding.inputs(image_to_music, {
                              "image_path": image_in, "prompt": prompt, "seconds": seconds, "guidance": guidance,
                              "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed,
                              "melody_path": melody, "compute_metrics": compute_metrics}),
                          [used, music, metrics_out], api_name="image_to_music",
                          api_description="A picture's BLIP caption (or your prompt) made into music by MusicGen, "
                                          "optionally following a melody (MusicGen-melody).",
                          gpu_seconds=zero_gpu_seconds, stop=stop, live=live)
        shown_when_filled(ran, metrics_out)
        # BLIP and the sentence embedder run on the GPU: inside spaces.GPU on ZeroGPU, as model_event
        suggest.click(guarded(studio.gpu_task(recommend_songs, duration=30)), [image_in, prompt], [used, songs],
                      api_name="recommend_songs",
                      api_description="Songs whose lyrics are closest to a picture's caption (or your prompt), from "
                                      "the studio's lyric index.", concurrency_id=GPU, concurrency_limit=1)
