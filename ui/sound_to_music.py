"""Sound to music tab: masked (differential) img2img on Riffusion spectrograms (endpoint ``/masked_img2img``)."""

from __future__ import annotations

import gradio as gr

from pipelines.schema import limits
from pipelines.schema.settings import SCHEDULERS, SOUND_TO_MUSIC_PRESETS, MaskSettings, SoundToMusicSettings
from pipelines.studio import SOUND_TO_MUSIC_MODELS

from .common import ASSETS, model_event, progress_callback, prompt_box, run_and_cancel_buttons, save, seed_control
from .common import guarded, metrics_checkbox, metrics_rows, metrics_table, shown_when_filled, slider, start_run
from .errors import user_errors
from .history import session_of
from . import binding
from .binding import gpu_estimate, settings_from
from .send_to import AUDIO, buttons
from .streaming import live_player

MODEL_LABELS = {"mask_model": "Mask paper's (sd-music-25)", "riffusion": "Riffusion v1"}
INSTALLED_LORA = "the installed one (STUDIO_MODEL_S2M_LORA)"


def build(studio) -> None:
    # The signatures are the endpoints' public parameter orders; every control reaches the settings
    # field of its parameter's name (ui/binding.py), and the inputs lists follow from the names.
    @user_errors
    def preview_mask(audio_path, invert, brightness, contrast, downshift, preprocessing="paper"):
        """The change map alone, before any diffusion: the sound's spectrogram and where the model may repaint it.

        Args:
            audio_path: URL (http or https) of an audio file (at most the app's input length): the everyday sound to turn into music.
            invert: How far the spectrogram is blended with its inverse before the map is made (1: fully inverted, so loud parts are kept; a negative value skips this step).
            brightness: Brightness factor applied to the map (small values darken it: more of the sound is repainted; negative skips the step).
            contrast: Contrast factor applied to the map (high values make it black and white; negative skips the step).
            downshift: Intensity subtracted from the map, 0 to 255: larger values give the model more freedom (negative skips the step).
            preprocessing: "paper" (the paper's notebook: scale by the rounded-up loudness, plain resize) or "exact" (the exact loudness and an antialiased resize).
        """
        chosen = settings_from(MaskSettings, locals())
        files = save(studio.preview_mask(audio_path, chosen), "mask")
        return files.images["input-spectrogram"], files.images["mask"]

    def live_preview(*args):
        return (None, None) if not args[0] else preview_mask(*args)

    @user_errors
    def masked_img2img(audio_path, model, prompt, negative_prompt, invert, brightness, contrast, downshift,
                       steps, strength, guidance, seed, scheduler, preprocessing="paper", lora_scale=0.0, compute_metrics=None,
                       lora="", progress=gr.Progress(track_tqdm=True)):
        """Sound to music: the sound's spectrogram repainted by Riffusion where the change map allows, turned back into audio.

        Args:
            audio_path: URL (http or https) of an audio file (at most the app's input length): the everyday sound to turn into music; long sounds are done in 5.12 s windows.
            model: Which model repaints: "mask_model" (the paper's fine-tune) or "riffusion" (plain Riffusion).
            prompt: The music to hear, in words, for example "instrumental , saxophone , flute".
            negative_prompt: What to keep out of the music, in words (may be empty).
            invert: How far the spectrogram is blended with its inverse before the change map is made (1: fully inverted; negative skips the step).
            brightness: Brightness factor of the change map (negative skips the step).
            contrast: Contrast factor of the change map (negative skips the step).
            downshift: Intensity subtracted from the change map, 0 to 255: larger gives the model more freedom (negative skips the step).
            steps: Denoising steps; more is slower and finer.
            strength: How much of the sound is redrawn, 0 to 1 (higher: further from the original sound).
            guidance: How closely the music follows the prompt (classifier-free guidance scale).
            seed: Random seed; the same seed and settings give the same music.
            scheduler: Sampler: "repo" (the model's own), "ddim" or "dpm++" (fast at 25 steps).
            preprocessing: "paper" (as the paper's notebooks) or "exact" change-map preprocessing.
            lora_scale: Strength of the genre LoRA, if one is installed; 0 uses the model alone.
            compute_metrics: Also score the result with CLAP (slower on a CPU).
            lora: Which genre LoRA the scale applies to: "" the installed one, or the name of one this session trained (/train_style with kind "genre_lora").
        """
        chosen = settings_from(SoundToMusicSettings, locals())
        flag = start_run(studio)
        result = studio.sound_to_music(audio_path, chosen, model=model, on_progress=progress_callback(progress),
                                       should_stop=flag.is_set, clap=compute_metrics, session=session_of())
        files = save(result, "music")
        images = files.images
        return (files.audio, images["input-spectrogram"], images["mask"], images["output-spectrogram"],
                metrics_rows(result))

    zero_gpu_seconds = gpu_estimate(masked_img2img, SoundToMusicSettings,
                                    lambda chosen, args: chosen.gpu_seconds(studio.audio_seconds(args["audio_path"])))

    def available_loras(current, request: gr.Request = None):
        """The genre LoRA choice: the installed one, then the shared ones and those this visitor trained."""
        names = list(studio.genre_loras(session_of(request)))
        return gr.Dropdown(choices=[(INSTALLED_LORA, ""), *names], value=current if current in names else "")

    with gr.Tab("Sound to music") as tab:
        gr.Markdown(
            "Turn an everyday sound into music. The sound's own spectrogram makes a mask: bright parts stay tied "
            "to the original for more of the denoising steps, dark parts are repainted in the prompt's style "
            "(Mask-Based Diffusion for Music Generation From Everyday Sounds, ECAI'25). "
            f"Sounds up to {int(limits.MAX_INPUT_SECONDS)} s, processed in 5.12 s windows.",
            elem_classes=["studio-intro"],
        )
        # Inputs, the button and the music together in the first screen; below, examples and the folded
        # settings beside the spectrograms the mask is made from (a narrow page stacks them in this order).
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(label="Everyday sound", sources=["upload", "microphone"], type="filepath")
                with gr.Row():
                    prompt = prompt_box(binding.label(SoundToMusicSettings, "prompt"), SoundToMusicSettings.default("prompt"), min_width=240)
                    model = gr.Dropdown([(label, key) for key, label in MODEL_LABELS.items()],
                                        value=SOUND_TO_MUSIC_MODELS[0], label="Model", min_width=240)
                run, stop = run_and_cancel_buttons("Make music")
            with gr.Column():
                music = gr.Audio(label="Music", type="filepath", interactive=False)
                live = live_player()
                buttons(music, AUDIO)
                output_image = gr.Image(label="Output spectrogram", type="filepath", format="png", height=240,
                                        interactive=False)
                metrics_out = metrics_table("Similarity to the input (SSIM, chroma CENS; CLAP when asked)", studio)
        with gr.Row():
            with gr.Column():
                negative = prompt_box(binding.label(SoundToMusicSettings, "negative_prompt"), render=False)  # shown in the folded settings below
                gr.Examples(
                    [
                        [str(ASSETS / "kettle.wav"), "mask_model", "instrumental , saxophone , flute", ""],
                        [str(ASSETS / "knocks.wav"), "mask_model", "funk drums , bass", ""],
                        [str(ASSETS / "rain.wav"), "riffusion", "ambient piano", "noise"],
                        [str(ASSETS / "birds.wav"), "mask_model", "jazz violin", ""],
                    ],
                    inputs=[audio_in, model, prompt, negative],
                    cache_examples=False,
                )
                with gr.Accordion("Mask (a negative value skips that step)", open=False):
                    invert = slider(MaskSettings, "invert", 0.05)
                    brightness = slider(MaskSettings, "brightness", 0.01)
                    contrast = slider(MaskSettings, "contrast", 1)
                    downshift = slider(MaskSettings, "downshift", 1, "higher gives the model more freedom")
                    preprocessing = gr.Radio(list(MaskSettings.CHOICES["preprocessing"]),
                                             value=MaskSettings.default("preprocessing"),
                                             label=binding.label(MaskSettings, "preprocessing",
                                                                 "paper: its image scale and mask resize; "
                                                                 "exact: exact peak, antialiased resize"))
                    preview = gr.Button("Preview mask")
                with gr.Accordion("Negative prompt, diffusion, seed and metrics", open=False):
                    negative.render()
                    speed = gr.Radio([("paper: 50 steps, the repo's PNDM (41 run)", "paper"),
                                      ("fast: 25 steps, DPM-Solver++ (20 run, about half the time; coarser mask)",
                                       "fast")],
                                     value="paper", label="Speed preset (sets steps and scheduler below)")
                    steps = slider(SoundToMusicSettings, "steps", 1)
                    strength = slider(SoundToMusicSettings, "strength", 0.01)
                    guidance = slider(SoundToMusicSettings, "guidance", 0.5)
                    seed = seed_control(SoundToMusicSettings)
                    scheduler = gr.Dropdown(list(SCHEDULERS), value=SoundToMusicSettings.default("scheduler"),
                                            label=binding.label(SoundToMusicSettings, "scheduler", "repo: the model's own"))
                    lora_scale = slider(SoundToMusicSettings, "lora_scale", 0.05,
                                        "0: off; needs a genre LoRA trained for this app")
                    # names are checked by the studio (an API caller's own LoRA is in no page's list)
                    lora = gr.Dropdown([(INSTALLED_LORA, "")], value=SoundToMusicSettings.default("lora"),
                                       allow_custom_value=True,
                                       label=binding.label(SoundToMusicSettings, "lora",
                                                           "yours appear here once trained in the Train tab"))
                    compute_metrics = metrics_checkbox(studio)
            with gr.Column(), gr.Row(equal_height=True):
                input_image = gr.Image(label="Input spectrogram", type="filepath", format="png", height=300,
                                       interactive=False)
                mask_image = gr.Image(label="Mask (bright = kept longer)", type="filepath", format="png", height=300,
                                      interactive=False)
        mask_controls = {"audio_path": audio_in, "invert": invert, "brightness": brightness, "contrast": contrast,
                         "downshift": downshift, "preprocessing": preprocessing}
        mask_inputs = binding.inputs(preview_mask, mask_controls)
        all_inputs = binding.inputs(masked_img2img, {
            **mask_controls, "model": model, "prompt": prompt, "negative_prompt": negative, "steps": steps,
            "strength": strength, "guidance": guidance, "seed": seed, "scheduler": scheduler,
            "lora_scale": lora_scale, "compute_metrics": compute_metrics, "lora": lora})
        tab.select(available_loras, lora, lora, api_visibility="private")
        # picking a trained LoRA while the scale is 0 (off) sets it to 1
        lora.change(lambda name, scale: 1.0 if name and not scale else scale, [lora, lora_scale], lora_scale,
                    api_visibility="private", queue=False)
        speed.change(lambda name: tuple(SOUND_TO_MUSIC_PRESETS[name][key] for key in ("steps", "scheduler")),
                     speed, [steps, scheduler], api_visibility="private")
        preview.click(guarded(preview_mask), mask_inputs, [input_image, mask_image], api_name="preview_mask",
                      api_description="The mask alone, no diffusion: the sound's riffusion spectrogram and the mask "
                                      "made from it (invert, brightness, contrast, downshift).")
        # live preview while the sliders move or a sound arrives (nothing to show without a sound)
        for trigger in (invert.release, brightness.release, contrast.release, downshift.release, preprocessing.change,
                        audio_in.change):
            trigger(live_preview, mask_inputs, [input_image, mask_image], api_visibility="private")
        ran = model_event(studio, run, masked_img2img, all_inputs,
                          [music, input_image, mask_image, output_image, metrics_out],
                          api_name="masked_img2img",
                          api_description="Sound to music: the sound's spectrogram repainted by masked (differential) "
                                          "img2img with a style prompt, back to audio; also the input, mask and output "
                                          "spectrograms and the metrics table.",
                          gpu_seconds=zero_gpu_seconds, stop=stop, live=live)
        shown_when_filled(ran, metrics_out)
