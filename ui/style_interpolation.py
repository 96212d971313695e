"""Style interpolation tab: content audio in a weighted mix of MusicTI styles (endpoint ``/style_interpolation``)."""

from __future__ import annotations

import gradio as gr

from core.errors import InputError, StudioError
from pipelines.schema import limits
from pipelines.schema.settings import StyleInterpolationSettings

from .common import ASSETS, model_event, progress_callback, run_and_cancel_buttons, save, seed_control, slider
from .common import metrics_checkbox, metrics_rows, metrics_table, shown_when_filled
from .common import start_run
from .errors import user_errors
from .history import session_of
from . import binding
from .binding import gpu_estimate, settings_from
from .send_to import AUDIO, buttons
from .streaming import live_player


def parse_weights(text: str | None, count: int) -> list[float] | None:
    """'0.7, 0.3' (commas or semicolons) -> [0.7, 0.3]; empty -> None (equal weights). InputError otherwise."""
    if text is None or not str(text).strip():
        return None
    try:
        weights = [float(part) for part in str(text).replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise InputError(f"Weights must be numbers separated by commas, like 0.7, 0.3; "
                         f"got {limits.shown(text)}.") from None
    if len(weights) != count:
        raise InputError(f"Give one weight per style: {count} styles, {len(weights)} weights.")
    return weights


def build(studio) -> None:
    @user_errors
    def style_interpolation(audio_path, styles, weights, strength, steps, guidance, seed, compute_metrics=None,
                            progress=gr.Progress(track_tqdm=True)):
        """A piece of audio played in a weighted mix of learned music styles (MusicTI on Riffusion).

        Args:
            audio_path: URL (http or https) of an audio file (at most the app's input length): the content to restyle.
            styles: One to four style names, for example ["accordion", "chime"]: built-in ones or those this session trained (/train_style); an unknown name is refused with the list of names available.
            weights: One weight per style, separated by commas, for example "0.7, 0.3"; empty mixes them equally.
            strength: How far the result moves from the content, above 0 and up to 1.
            steps: Denoising (DDIM) steps; more is slower and finer.
            guidance: How strongly the styles steer the result (classifier-free guidance scale).
            seed: Random seed; the same seed and settings give the same audio.
            compute_metrics: Also score the result with CLAP: content kept and fit to each style (slower on a CPU).
        """
        settings = settings_from(StyleInterpolationSettings, locals())
        if isinstance(styles, str):  # an API caller's "jazz" or "jazz, rock", not its letters
            styles = [name.strip() for name in styles.split(",") if name.strip()]
        styles = list(styles or [])
        mix = parse_weights(weights, len(styles))
        flag = start_run(studio)
        result = studio.style_interpolation(audio_path, styles, mix, settings, should_stop=flag.is_set,
                                            on_progress=progress_callback(progress), clap=compute_metrics,
                                            session=session_of())  # built-in styles and this session's own
        files = save(result, "styled")
        return (files.audio, files.images["content-spectrogram"], files.images["output-spectrogram"],
                metrics_rows(result))

    zero_gpu_seconds = gpu_estimate(
        style_interpolation, StyleInterpolationSettings,
        lambda chosen, args: chosen.gpu_seconds(studio.audio_seconds(args["audio_path"])),
        StyleInterpolationSettings(strength=1.0, steps=int(limits.STEPS.high)))

    def available_styles(request: gr.Request = None):
        try:
            names = studio.style_names(session_of(request))  # the built-in ones and those this visitor trained
        except StudioError as error:
            gr.Warning(str(error))
            names = []
        return gr.Dropdown(choices=names, value=names[:2])

    with gr.Tab("Style interpolation") as tab:
        gr.Markdown(
            "Play a piece of audio in a mix of learned music styles (MusicTI time-varying textual inversion on "
            "Riffusion, with the interpolation of *Style Embedding Interpolation in Music Generation*). Each style "
            "is a small network that gives the placeholder token a different embedding at every denoising step; "
            "the weights mix the styles before the text encoder.",
            elem_classes=["studio-intro"],
        )
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(label="Content audio", sources=["upload", "microphone"], type="filepath")
                with gr.Row():
                    # names are checked by the style library; the choices arrive when the tab opens
                    styles = gr.Dropdown([], multiselect=True, max_choices=limits.MAX_STYLES, allow_custom_value=True,
                                         label=f"Styles (1 to {limits.MAX_STYLES})", min_width=240)
                    weights = gr.Textbox(label="Weights (one per style; empty: equal)", placeholder="0.5, 0.5",
                                         min_width=240)
                run, stop = run_and_cancel_buttons("Apply styles")
            with gr.Column():
                music = gr.Audio(label="Styled audio", type="filepath", interactive=False)
                live = live_player()
                buttons(music, AUDIO)
                output_image = gr.Image(label="Output spectrogram", type="filepath", format="png", height=240,
                                        interactive=False)
                metrics_out = metrics_table("Metrics (CLAP content preservation, style fit mean and max)", studio)
        with gr.Row():
            with gr.Column():
                gr.Examples([[str(ASSETS / "groove.wav"), "0.5, 0.5"]], inputs=[audio_in, weights],
                            cache_examples=False)
                with gr.Accordion("Strength, diffusion, seed and metrics", open=False):
                    strength = gr.Slider(0.05, limits.STRENGTH.high,
                                         value=StyleInterpolationSettings.default("strength"),
                                         step=0.05, label=binding.label(StyleInterpolationSettings, "strength",
                                                                        "how far from the content"))
                    steps = slider(StyleInterpolationSettings, "steps", 1, "DDIM")
                    guidance = slider(StyleInterpolationSettings, "guidance", 0.5)
                    seed = seed_control(StyleInterpolationSettings)
                    compute_metrics = metrics_checkbox(studio)
            with gr.Column():
                content_image = gr.Image(label="Content spectrogram", type="filepath", format="png", height=240,
                                         interactive=False)
        tab.select(available_styles, None, styles, api_visibility="private")
        ran = model_event(studio, run, style_interpolation,
                          binding.inputs(style_interpolation, {
                              "audio_path": audio_in, "styles": styles, "weights": weights, "strength": strength,
                              "steps": steps, "guidance": guidance, "seed": seed, "compute_metrics": compute_metrics}),
                          [music, content_image, output_image, metrics_out], api_name="style_interpolation",
                          api_description="Content audio in a weighted mix of MusicTI styles; an unknown style name is "
                                          "refused with the list of the names available.",
                          gpu_seconds=zero_gpu_seconds, stop=stop, live=live)
        shown_when_filled(ran, metrics_out)
