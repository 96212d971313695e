"""Playlist to music tab: a playlist's taste (AMUSE VAE) conditions a spectrogram UNet (endpoint ``/playlist_to_music``)."""

from __future__ import annotations

import gradio as gr

from core.errors import StudioError
from pipelines.schema import limits
from pipelines.models.registry import ROLES
from pipelines.schema.settings import PlaylistToMusicSettings

from .common import ASSETS, model_event, progress_callback, run_and_cancel_buttons, save, seed_control, slider
from .common import metrics_checkbox, metrics_rows, metrics_table, shown_when_filled
from .common import start_run
from .errors import user_errors
from . import binding
from .binding import gpu_estimate, settings_from
from .send_to import AUDIO, buttons, target


def vae_missing(studio) -> str | None:
    """Why the playlist VAE cannot load, said when the page opens (the hub profile without a
    STUDIO_MODEL_AMUSE_VAE folder: AMUSE's VAE is published nowhere); None when one is set or built."""
    if studio.info.profile != "hub":
        return None
    try:
        studio.registry.resolve("amuse_vae")  # a folder override resolves without loading anything
    except StudioError:
        return f"{ROLES['amuse_vae'].purpose}."  # the page names no settings; the error a run gives does
    return None


def build(studio) -> None:
    @user_errors
    def playlist_to_music(files, steps, guidance, seed, compute_metrics=None, progress=gr.Progress(track_tqdm=True)):
        """New music in the taste of a playlist (AMUSE): a VAE sums up the songs, and that taste steers a spectrogram diffusion model.

        Args:
            files: URLs (http or https) of the playlist's audio files, one or more.
            steps: Denoising steps; more is slower and finer.
            guidance: How strongly the playlist's taste steers the music (classifier-free guidance scale).
            seed: Random seed; the same seed and settings give the same music.
            compute_metrics: Also score the music's similarity to the playlist with CLAP (slower on a CPU).
        """
        settings = settings_from(PlaylistToMusicSettings, locals())
        paths = [getattr(f, "name", f) for f in (files or [])]
        flag = start_run(studio)
        result = studio.playlist_to_music(paths, settings, should_stop=flag.is_set,
                                          on_progress=progress_callback(progress), clap=compute_metrics)
        saved = save(result, "playlist-music")
        tracks = [path for name, path in saved.images.items() if name.startswith("track-")]
        return saved.audio, saved.images["generated-spectrogram"], tracks, metrics_rows(result)

    zero_gpu_seconds = gpu_estimate(playlist_to_music, PlaylistToMusicSettings, lambda chosen, args: chosen.gpu_seconds(),
                                    PlaylistToMusicSettings(steps=limits.MAX_PLAYLIST_STEPS))

    with gr.Tab("Playlist to music"):
        gr.Markdown(
            "Upload a few songs you like. A VAE turns each into a *taste* vector (from a 5.9 s slice of its "
            "spectrogram); their average conditions a spectrogram diffusion model that makes new music in that "
            f"taste (AMUSE). 1 to {limits.MAX_PLAYLIST_TRACKS} tracks. The original ran 1000 DDPM steps; 50 is "
            "the default here so a CPU can keep up. The AMUSE VAE's weights are not published: with the real "
            "models this tab needs a VAE you trained or were given (the manual's docs/TRAINING.md says how to train one).",
            elem_classes=["studio-intro"],
        )
        notice = vae_missing(studio)
        if notice:
            gr.Markdown(f"**This tab cannot run here yet.** {notice}", elem_id="playlist-vae-missing")
        with gr.Row():
            with gr.Column():
                files = gr.File(label="Playlist (audio files)", file_count="multiple", file_types=["audio"],
                                type="filepath", height=240)
                target("playlist", files, append=True)
                run, stop = run_and_cancel_buttons("Make music")
                gr.Examples([[[str(ASSETS / "groove.wav"), str(ASSETS / "rain.wav")]]], inputs=[files],
                            cache_examples=False)
                with gr.Accordion("Diffusion, seed and metrics", open=False):
                    steps = slider(PlaylistToMusicSettings, "steps", 1, "DDPM")
                    guidance = slider(PlaylistToMusicSettings, "guidance", 0.5, "how strongly the taste steers")
                    seed = seed_control(PlaylistToMusicSettings)
                    compute_metrics = metrics_checkbox(studio)
            with gr.Column():
                music = gr.Audio(label="Music", type="filepath", interactive=False)
                buttons(music, AUDIO)
                generated = gr.Image(label="Generated spectrogram", type="filepath", format="png", height=240,
                                     interactive=False)
                metrics_out = metrics_table("Metrics (CLAP similarity of the music to the playlist)", studio)
                track_images = gr.Gallery(label="The slice of each track the VAE saw", columns=5, height=200,
                                           object_fit="contain", interactive=False)
        ran = model_event(studio, run, playlist_to_music,
                          binding.inputs(playlist_to_music, {"files": files, "steps": steps, "guidance": guidance,
                                                             "seed": seed, "compute_metrics": compute_metrics}),
                          [music, generated, track_images, metrics_out],
                          api_name="playlist_to_music",
                          api_description="New music in a playlist's taste: the AMUSE VAE's taste vector conditions a "
                                          "spectrogram diffusion UNet.", gpu_seconds=zero_gpu_seconds, stop=stop)
        shown_when_filled(ran, metrics_out)
