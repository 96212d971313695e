"""Spectrogram tab: sound <-> spectrogram image in the riffusion and audio-diffusion presets
(endpoints ``/audio_to_spectrogram`` and ``/spectrogram_to_audio``)."""

from __future__ import annotations

import gradio as gr

from pipelines.signal import spectrogram
from pipelines.signal.spectrogram_plot import plot_spectrogram

from . import history
from .common import ASSETS, guarded, save
from .errors import user_errors
from .send_to import buttons, target


def build(studio) -> None:
    presets = list(spectrogram.PRESETS)

    @user_errors
    def audio_to_spectrogram(audio_path, preset, stereo=False):
        """A sound's spectrogram as an image (Riffusion's or audio-diffusion's format) and a plot of it.

        Args:
            audio_path: URL (http or https) of an audio file (at most the app's input length).
            preset: The image format: "riffusion" or "audio-diffusion".
            stereo: Keep both channels (Riffusion's format only).
        """
        result = studio.audio_to_spectrogram(audio_path, preset, stereo=bool(stereo))
        (png,) = save(result, "spectrogram").images.values()
        return png, plot_spectrogram(result.image, result.params)

    @user_errors
    def spectrogram_to_audio(image_path, preset):
        """A spectrogram image turned back into sound.

        Args:
            image_path: URL (http or https) of a spectrogram image (PNG), for example one this app made.
            preset: The image's format: "auto" reads it from the image, else "riffusion" or "audio-diffusion".
        """
        image = spectrogram.load_image(image_path)
        result = studio.spectrogram_to_audio(image, None if preset == "auto" else preset)
        return save(result, "from-spectrogram").audio, plot_spectrogram(image, result.params)

    with gr.Tab("Spectrogram"):
        gr.Markdown(
            "Sound as a picture and back. **riffusion**: 44.1 kHz, 512 mel bands up to 10 kHz, 5.12 s per 512 px "
            "(the image every Riffusion model paints). **audio-diffusion**: 22.05 kHz, 256x256, dB scale.",
            elem_classes=["studio-intro"],
        )
        gr.Markdown("### Sound → spectrogram")
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(label="Sound", sources=["upload", "microphone"], type="filepath")
                target("spectrogram", audio_in)
                preset_in = gr.Radio(presets, value="riffusion", label="Preset")
                stereo_in = gr.Checkbox(False, label="Stereo (riffusion: left channel in green, right in blue)")
                to_image = gr.Button("Sound → spectrogram", variant="primary")
                gr.Examples([[str(ASSETS / "kettle.wav"), "riffusion"], [str(ASSETS / "birds.wav"), "audio-diffusion"]],
                            inputs=[audio_in, preset_in], cache_examples=False)
            with gr.Column():
                image_out = gr.Image(label="Spectrogram image (PNG with its parameters)", type="filepath", format="png",
                                     interactive=False, height=360)
                # the plot carries its own title and axes
                plot_out = gr.Image(type="pil", format="png", label="Plot with axes", show_label=False, interactive=False)
        gr.Markdown("### Spectrogram → sound")
        with gr.Row():
            with gr.Column():
                # a File, not an Image: the PNG arrives untouched (metadata kept), and a broken file reaches our checks
                image_in = gr.File(label="Spectrogram image (PNG)", file_types=["image"], type="filepath")
                preset_back = gr.Radio(["auto", *presets], value="auto", label="Preset (auto reads the image's metadata)")
                to_audio = gr.Button("Spectrogram → sound", variant="primary")
            with gr.Column():
                audio_out = gr.Audio(label="Sound", type="filepath", interactive=False)
                buttons(audio_out, ("music_to_image", "playlist"))
                plot_back = gr.Image(type="pil", format="png", label="Plot with axes", show_label=False, interactive=False)
        # both conversions join the session's History, as every model run does
        to_image.click(guarded(history.recording(audio_to_spectrogram, "audio_to_spectrogram")), [audio_in, preset_in, stereo_in], [image_out, plot_out],
                       api_name="audio_to_spectrogram",
                       api_description="A sound's spectrogram image (riffusion or audio-diffusion preset) and a plot "
                                       "of it with axes.")
        to_audio.click(guarded(history.recording(spectrogram_to_audio, "spectrogram_to_audio")), [image_in, preset_back], [audio_out, plot_back],
                       api_name="spectrogram_to_audio",
                       api_description="A spectrogram image back to sound (Griffin-Lim); preset 'auto' reads the "
                                       "image's own parameters.")
        image_out.change(lambda path: path, image_out, image_in, api_visibility="private")
