"""Music & image studio: one Gradio app, one tab per pipeline, one GPU shared through a device manager.

    python app.py                   # real models from the Hugging Face Hub, loaded on first use
    python app.py --profile tiny    # tiny random models built on this machine: no network, no GPU

This file is the UI layer only: it turns widgets into arguments and results into widgets. The work
happens in pipelines/, which never imports gradio; their errors (StudioError) become gr.Error here
with the same message, so API callers read them too. Importing this module loads no model.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import functools  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

from pipelines.device import import_spaces_first  # noqa: E402

import_spaces_first()  # ZeroGPU: `spaces` must be imported before torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
_T_GRADIO = time.perf_counter()
import gradio as gr  # noqa: E402

_GRADIO_IMPORT_S = time.perf_counter() - _T_GRADIO

from pipelines import audio as audio_io  # noqa: E402
from pipelines import limits, spectrogram  # noqa: E402
from core.errors import InputError, StudioError  # noqa: E402
from pipelines.masked_img2img import SCHEDULERS, GenerationSettings, MaskSettings  # noqa: E402
from pipelines.spectrogram_plot import plot_spectrogram  # noqa: E402
from pipelines.studio import SOUND_TO_MUSIC_MODELS, Studio  # noqa: E402

log = logging.getLogger("studio")

TITLE = "Sound ↔ Picture Studio"
ASSETS = Path(__file__).resolve().parent / "assets"
OUTPUT_ROOT = Path(tempfile.gettempdir()) / "studio-outputs"
OUTPUT_MAX_AGE_S = 3600
GPU = "gpu"  # one concurrency id for every event that runs a model: a queue-level GPU lock
# Handlers turn every error into gr.Error themselves; show_error lets gradio's own input checks
# (an upload that is not an image, say) reach API callers with their message too.
LAUNCH_OPTIONS = {"show_error": True}


# -- error handling -----------------------------------------------------------------------------------
def user_errors(fn):
    """Turn the project's errors into gr.Error (shown in the UI and sent to API callers)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except StudioError as error:
            raise gr.Error(str(error)) from error
        except Exception as error:  # noqa: BLE001  (the app must keep running)
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(
                f"Something unexpected went wrong ({type(error).__name__}: {str(error)[:200]}). "
                "The app is still running; please try again or report this."
            ) from error

    return wrapper


# -- files the user downloads -------------------------------------------------------------------------
def output_dir() -> Path:
    """A fresh folder for one request's files; folders older than an hour are removed."""
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in OUTPUT_ROOT.iterdir():
        try:
            if now - old.stat().st_mtime > OUTPUT_MAX_AGE_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(dir=OUTPUT_ROOT))


def save_png(image, folder: Path, name: str) -> str:
    path = folder / f"{name}.png"
    spectrogram.save_image(image, path)
    return str(path)


def png_text(data: dict):
    """PNG text chunks holding the generation parameters as JSON."""
    import json

    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in data.items():
        info.add_text(key, json.dumps(value, default=str))
    return info


def save_wav(samples, sample_rate: int, folder: Path, name: str, metadata: dict) -> str:
    return str(audio_io.write_wav(folder / f"{name}.wav", audio_io.Audio(samples, sample_rate), metadata))


# -- cancelling -----------------------------------------------------------------------------------------
_stop_flags: dict[str, threading.Event] = {}


def stop_flag(request: gr.Request | None) -> threading.Event:
    key = getattr(request, "session_hash", None) or "default"
    return _stop_flags.setdefault(key, threading.Event())


def start_run(studio: Studio, request: gr.Request | None) -> threading.Event:
    """Begin a model run: clear this session's cancel flag, and say so when real models run on a CPU."""
    if studio.info.device == "cpu" and studio.info.profile == "hub":
        gr.Info("Running on the CPU: with the real models this takes minutes. Fewer steps make it faster.")
    flag = stop_flag(request)
    flag.clear()
    return flag


def cancel(request: gr.Request = None) -> None:
    """The Cancel buttons: the running pipeline polls this session's flag after every step."""
    stop_flag(request).set()


# -- shared controls ------------------------------------------------------------------------------------
def seed_control(default: int) -> gr.Number:
    """A seed box with a button that rolls a new one; every random choice in the app comes from a seed."""
    with gr.Row():
        seed = gr.Number(value=default, precision=0, minimum=0, maximum=limits.MAX_SEED, label="Seed")
        roll = gr.Button("🎲 Random seed", size="sm")
    roll.click(lambda: random.randint(0, limits.MAX_SEED), outputs=seed, api_visibility="private")
    return seed


# -- tabs ---------------------------------------------------------------------------------------------
def about_tab(studio: Studio) -> None:
    def summary() -> str:
        info = studio.describe()
        tiny_note = (
            "\n\n**Tiny profile:** every model is a tiny random-weight stand-in built on this machine. "
            "Everything runs end to end, but the output is noise."
            if info["profile"] == "tiny"
            else ""
        )
        return (
            f"**Profile:** `{info['profile']}` · **Device:** `{info['device']}` ({info['dtype']})"
            f"{' · ZeroGPU' if info['zero_gpu'] else ''}{tiny_note}"
        )

    def loaded_models() -> list[list]:
        return [[r["name"], r["where"], r["mb"], r["uses"], r["load_s"], ", ".join(r["shares"])]
                for r in studio.manager.status()]

    def roles() -> list[list]:
        return [[r["role"], r["source"], r["purpose"]] for r in studio.registry.describe()]

    with gr.Tab("About"):
        info_md = gr.Markdown(summary())
        gr.Markdown("### Models in memory\nModels load on first use and move off the GPU when others need room.")
        models_df = gr.Dataframe(
            value=loaded_models(),
            headers=["model", "where", "MB", "uses", "load (s)", "shares weights with"],
            interactive=False,
        )
        refresh = gr.Button("Refresh", size="sm")
        refresh.click(lambda: (summary(), loaded_models()), outputs=[info_md, models_df], api_name="status")
        gr.Markdown("### Where each model comes from")
        gr.Dataframe(value=roles(), headers=["role", "source", "purpose"], interactive=False)


def spectrogram_tab(studio: Studio) -> None:
    presets = list(spectrogram.PRESETS)

    @user_errors
    def audio_to_spectrogram(audio_path, preset, stereo=False):
        image, params = studio.audio_to_spectrogram(audio_path, preset, stereo=bool(stereo))
        return save_png(image, output_dir(), f"spectrogram-{preset}"), plot_spectrogram(image, params)

    @user_errors
    def spectrogram_to_audio(image_path, preset):
        image = spectrogram.load_image(image_path)
        samples, params = studio.spectrogram_to_audio(image, None if preset == "auto" else preset)
        metadata = {"pipeline": "spectrogram_to_audio", "preset": params.name}
        wav = save_wav(samples, params.sample_rate, output_dir(), "from-spectrogram", metadata)
        return wav, plot_spectrogram(image, params)

    with gr.Tab("Spectrogram"):
        gr.Markdown(
            "Sound as a picture and back. **riffusion**: 44.1 kHz, 512 mel bands up to 10 kHz, 5.12 s per 512 px "
            "(the image every Riffusion model paints). **audio-diffusion**: 22.05 kHz, 256x256, dB scale."
        )
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(label="Sound", sources=["upload", "microphone"], type="filepath")
                preset_in = gr.Radio(presets, value="riffusion", label="Preset")
                stereo_in = gr.Checkbox(False, label="Stereo (riffusion: left channel in green, right in blue)")
                to_image = gr.Button("Sound → spectrogram", variant="primary")
                gr.Examples([[str(ASSETS / "kettle.wav"), "riffusion"], [str(ASSETS / "birds.wav"), "audio-diffusion"]],
                            inputs=[audio_in, preset_in], cache_examples=False)
            with gr.Column():
                image_out = gr.Image(label="Spectrogram image (PNG with its parameters)", type="filepath", format="png",
                                     interactive=False, height=360)
                # the plot carries its own title and axes
                plot_out = gr.Image(type="pil", format="png", show_label=False, interactive=False)
        with gr.Row():
            with gr.Column():
                # a File, not an Image: the PNG arrives untouched (metadata kept), and a broken file reaches our checks
                image_in = gr.File(label="Spectrogram image (PNG)", file_types=["image"], type="filepath")
                preset_back = gr.Radio(["auto", *presets], value="auto", label="Preset (auto reads the image's metadata)")
                to_audio = gr.Button("Spectrogram → sound", variant="primary")
            with gr.Column():
                audio_out = gr.Audio(label="Sound", type="filepath")
                plot_back = gr.Image(type="pil", format="png", show_label=False, interactive=False)
        to_image.click(audio_to_spectrogram, [audio_in, preset_in, stereo_in], [image_out, plot_out],
                       api_name="audio_to_spectrogram")
        to_audio.click(spectrogram_to_audio, [image_in, preset_back], [audio_out, plot_back], api_name="spectrogram_to_audio")
        image_out.change(lambda path: path, image_out, image_in, api_visibility="private")


def gpu_seconds_for_sound_to_music(audio_path, model, prompt, negative_prompt, invert, brightness, contrast, downshift,
                                   steps, strength, *rest, **kwargs) -> int:
    """ZeroGPU quota to ask for: about 0.1 s per step per 5.12 s window on a shared A100, plus margin."""
    try:
        seconds = min(float(audio_io.probe_duration(audio_path)), limits.MAX_INPUT_SECONDS)
    except Exception:  # noqa: BLE001  (a bad file fails properly inside the handler)
        seconds = limits.MAX_INPUT_SECONDS
    windows = max(1, int(seconds // 5) + 1)
    return int(20 + windows * float(steps) * float(strength) * 0.1)


def sound_to_music_tab(studio: Studio) -> None:
    model_labels = {"mask_model": "Mask-based paper model (stable-diffusion-music-25)", "riffusion": "Riffusion v1"}
    defaults = GenerationSettings()
    mask_defaults = MaskSettings()

    def mask_settings(invert, brightness, contrast, downshift) -> MaskSettings:
        return MaskSettings(invert=invert, brightness=brightness, contrast=contrast, downshift=downshift)

    @user_errors
    def preview_mask(audio_path, invert, brightness, contrast, downshift):
        source, mask = studio.preview_mask(audio_path, mask_settings(invert, brightness, contrast, downshift))
        folder = output_dir()
        return save_png(source, folder, "input-spectrogram"), save_png(mask, folder, "mask")

    def live_preview(audio_path, *mask_values):
        return (None, None) if not audio_path else preview_mask(audio_path, *mask_values)

    @user_errors
    def masked_img2img(audio_path, model, prompt, negative_prompt, invert, brightness, contrast, downshift,
                       steps, strength, guidance, seed, scheduler, request: gr.Request = None,
                       progress=gr.Progress(track_tqdm=True)):
        settings = GenerationSettings(
            prompt=prompt, negative_prompt=negative_prompt or "", steps=steps, strength=strength,
            guidance=guidance, seed=seed, scheduler=scheduler,
            mask=mask_settings(invert, brightness, contrast, downshift),
        )
        flag = start_run(studio, request)
        result = studio.sound_to_music(
            audio_path, settings, model=model,
            on_progress=lambda fraction, message: progress(fraction, desc=message),
            should_stop=flag.is_set,
        )
        folder = output_dir()
        metadata = {**result.parameters, "model": model, "metrics": result.metrics}
        return (
            save_wav(result.audio, result.sample_rate, folder, "music", metadata),
            save_png(result.input_spectrogram, folder, "input-spectrogram"),
            save_png(result.mask, folder, "mask"),
            save_png(result.output_spectrogram, folder, "output-spectrogram"),
            {k: round(v, 4) for k, v in result.metrics.items()},
        )

    with gr.Tab("Sound to music"):
        gr.Markdown(
            "Turn an everyday sound into music. The sound's own spectrogram makes a mask: bright parts stay tied "
            "to the original for more of the denoising steps, dark parts are repainted in the prompt's style "
            "(Mask-Based Diffusion for Music Generation From Everyday Sounds, ECAI'25). "
            f"Sounds up to {int(limits.MAX_INPUT_SECONDS)} s, processed in 5.12 s windows."
        )
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(label="Everyday sound", sources=["upload", "microphone"], type="filepath")
                model = gr.Dropdown([(label, key) for key, label in model_labels.items()], value=SOUND_TO_MUSIC_MODELS[0],
                                    label="Model")
                prompt = gr.Textbox(label="Style prompt", value=defaults.prompt, max_length=limits.MAX_PROMPT_CHARS)
                negative = gr.Textbox(label="Negative prompt", value="", max_length=limits.MAX_PROMPT_CHARS)
                with gr.Accordion("Mask (a negative value skips that step)", open=True):
                    r = MaskSettings.RANGES
                    invert = gr.Slider(*r["invert"], value=mask_defaults.invert, step=0.05, label="Invert blend")
                    brightness = gr.Slider(*r["brightness"], value=mask_defaults.brightness, step=0.01, label="Brightness")
                    contrast = gr.Slider(*r["contrast"], value=mask_defaults.contrast, step=1, label="Contrast")
                    downshift = gr.Slider(*r["downshift"], value=mask_defaults.downshift, step=1,
                                          label="Downshift (higher gives the model more freedom)")
                with gr.Accordion("Diffusion", open=False):
                    steps = gr.Slider(limits.MIN_STEPS, limits.MAX_STEPS, value=defaults.steps, step=1, label="Steps")
                    strength = gr.Slider(limits.MIN_STRENGTH, limits.MAX_STRENGTH, value=defaults.strength, step=0.01,
                                         label="Strength")
                    guidance = gr.Slider(limits.MIN_GUIDANCE, limits.MAX_GUIDANCE, value=defaults.guidance, step=0.5,
                                         label="Guidance")
                    seed = seed_control(defaults.seed)
                    scheduler = gr.Dropdown(list(SCHEDULERS), value=defaults.scheduler,
                                            label="Scheduler (repo: the model's own)")
                with gr.Row():
                    preview = gr.Button("Preview mask")
                    run = gr.Button("Make music", variant="primary")
                    stop = gr.Button("Cancel", variant="stop")
            with gr.Column():
                music = gr.Audio(label="Music", type="filepath")
                metrics_out = gr.JSON(label="Similarity to the input (SSIM of spectrograms, chroma CENS)")
        with gr.Row(equal_height=True):
            input_image = gr.Image(label="Input spectrogram", type="filepath", format="png", height=320)
            mask_image = gr.Image(label="Mask (bright = kept longer)", type="filepath", format="png", height=320)
            output_image = gr.Image(label="Output spectrogram", type="filepath", format="png", height=320)
        mask_inputs = [audio_in, invert, brightness, contrast, downshift]
        all_inputs = [audio_in, model, prompt, negative, invert, brightness, contrast, downshift, steps, strength,
                      guidance, seed, scheduler]
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
        preview.click(preview_mask, mask_inputs, [input_image, mask_image], api_name="preview_mask")
        # live preview while the sliders move or a sound arrives (nothing to show without a sound)
        for trigger in (invert.release, brightness.release, contrast.release, downshift.release, audio_in.change):
            trigger(live_preview, mask_inputs, [input_image, mask_image], api_visibility="private")
        # on ZeroGPU the handler must hold the GPU (spaces.GPU); elsewhere gpu_task returns it unchanged
        event = run.click(
            studio.manager.gpu_task(masked_img2img, duration=gpu_seconds_for_sound_to_music), all_inputs,
            [music, input_image, mask_image, output_image, metrics_out],
            api_name="masked_img2img", concurrency_id=GPU, concurrency_limit=1,
        )
        stop.click(cancel, None, None, cancels=[event], api_visibility="private")


def music_to_image_tab(studio: Studio) -> None:
    # pipelines.music_to_image imports no keras or diffusers at module level: safe at start
    from pipelines import music_to_image as m2i

    def labels(pairs) -> dict[str, float]:
        return {label: round(float(p), 4) for label, p in pairs}

    @user_errors
    def describe_music(audio_path):
        described = studio.describe_music(audio_path)
        return labels(described.genres), labels(described.emotions), described.bpm, described.sentence

    @user_errors
    def music_to_image(audio_path, description, steps, guidance, width, height, seed, lora_scale,
                       request: gr.Request = None, progress=gr.Progress(track_tqdm=True)):
        flag = start_run(studio, request)
        result, _ = studio.music_to_image(audio_path, description, steps=steps, guidance=guidance, width=width,
                                          height=height, seed=seed, lora_scale=lora_scale, should_stop=flag.is_set)
        path = output_dir() / "music-to-image.png"
        result.image.save(path, pnginfo=png_text({"parameters": result.parameters}))
        return str(path), result.prompt

    with gr.Tab("Music to image"):
        gr.Markdown(
            "Listen, describe, paint. Genre (GTZAN CNN) and emotion (Emotify CNN) are averaged over the whole "
            "track, the tempo comes from beat tracking, and the sentence prompts Stable Diffusion 1.5 with the "
            "TechJam LoRA. Edit the description before you generate, or write your own."
        )
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(label="Music", sources=["upload", "microphone"], type="filepath")
                describe = gr.Button("Describe", variant="secondary")
                with gr.Row():
                    genres = gr.Label(label="Genre", num_top_classes=3)
                    emotions = gr.Label(label="Emotion", num_top_classes=3)
                tempo = gr.Number(label="Tempo (BPM)", interactive=False)
                description = gr.Textbox(label="Description (editable; empty: made from the music)", lines=3,
                                         max_length=limits.MAX_PROMPT_CHARS)
                with gr.Accordion("Image settings", open=False):
                    steps = gr.Slider(limits.MIN_STEPS, limits.MAX_STEPS, value=50, step=1, label="Steps")
                    guidance = gr.Slider(limits.MIN_GUIDANCE, limits.MAX_GUIDANCE, value=7.5, step=0.5, label="Guidance")
                    with gr.Row():
                        width = gr.Slider(64, limits.MAX_IMAGE_SIDE, value=512, step=8, label="Width")
                        height = gr.Slider(64, limits.MAX_IMAGE_SIDE, value=512, step=8, label="Height")
                    seed = seed_control(0)
                    lora_scale = gr.Slider(m2i.MIN_LORA_SCALE, m2i.MAX_LORA_SCALE, value=1.0, step=0.05,
                                           label="LoRA scale (0: plain Stable Diffusion)")
                with gr.Row():
                    generate = gr.Button("Generate image", variant="primary")
                    stop = gr.Button("Cancel", variant="stop")
            with gr.Column():
                image = gr.Image(label="Image", type="filepath", format="png")
                used = gr.Textbox(label="Description used", interactive=False)
        gr.Examples([[str(ASSETS / "groove.wav")]], inputs=[audio_in], cache_examples=False)
        describe.click(describe_music, audio_in, [genres, emotions, tempo, description], api_name="describe_music")
        event = generate.click(
            studio.manager.gpu_task(music_to_image, duration=120),
            [audio_in, description, steps, guidance, width, height, seed, lora_scale], [image, used],
            api_name="music_to_image", concurrency_id=GPU, concurrency_limit=1,
        )
        stop.click(cancel, None, None, cancels=[event], api_visibility="private")


def image_to_music_tab(studio: Studio) -> None:
    from pipelines import image_to_music as i2m  # imports no model library at module level

    @user_errors
    def image_to_music(image_path, prompt, seconds, guidance, temperature, top_k, top_p, seed,
                       request: gr.Request = None, progress=gr.Progress(track_tqdm=True)):
        flag = start_run(studio, request)
        used, result = studio.image_to_music(image_path, prompt, seconds=seconds, guidance=guidance,
                                             temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                                             should_stop=flag.is_set)
        wav = save_wav(result.audio, result.sample_rate, output_dir(), "image-to-music", result.parameters)
        return used, wav

    @user_errors
    def recommend_songs(image_path, caption):
        used, matches = studio.recommend_songs(image_path, caption)
        rows = [[m.artist, m.title, round(m.score, 3), " / ".join(line for line, _ in m.lines)] for m in matches]
        return used, rows

    with gr.Tab("Image to music"):
        gr.Markdown(
            "A picture becomes a caption (BLIP), the caption becomes music (MusicGen), and songs whose lyrics "
            "are closest in meaning to the caption are suggested. Write your own prompt to skip the caption."
        )
        with gr.Row():
            with gr.Column():
                image_in = gr.Image(label="Picture", type="filepath", sources=["upload", "webcam", "clipboard"])
                prompt = gr.Textbox(label="Music prompt (empty: the picture's caption)", max_length=limits.MAX_PROMPT_CHARS)
                seconds = gr.Slider(limits.MIN_MUSIC_SECONDS, limits.MAX_MUSIC_SECONDS, value=10, step=1,
                                    label="Duration (s)")
                with gr.Accordion("Sampling", open=False):
                    guidance = gr.Slider(limits.MIN_GUIDANCE, limits.MAX_GUIDANCE, value=3.0, step=0.5,
                                         label="Guidance (classifier-free)")
                    temperature = gr.Slider(i2m.MIN_TEMPERATURE, i2m.MAX_TEMPERATURE, value=1.0, step=0.05,
                                            label="Temperature")
                    top_k = gr.Slider(0, i2m.MAX_TOP_K, value=250, step=1, label="Top-k (0: off)")
                    top_p = gr.Slider(0.0, 1.0, value=0.0, step=0.01, label="Top-p (0: off)")
                    seed = seed_control(0)
                with gr.Row():
                    run = gr.Button("Make music", variant="primary")
                    stop = gr.Button("Cancel", variant="stop")
                    suggest = gr.Button("Suggest songs")
                gr.Examples([[str(ASSETS / "sunset.png")], [str(ASSETS / "forest.png")]], inputs=[image_in],
                            cache_examples=False)
            with gr.Column():
                used = gr.Textbox(label="Prompt used (the caption, or yours)", interactive=False)
                music = gr.Audio(label="Music", type="filepath")
                songs = gr.Dataframe(headers=["artist", "title", "score", "matching lines"], interactive=False,
                                     label="Songs with lyrics close to the caption (sample lyrics written for this app)")
        event = run.click(
            studio.manager.gpu_task(image_to_music, duration=90),
            [image_in, prompt, seconds, guidance, temperature, top_k, top_p, seed], [used, music],
            api_name="image_to_music", concurrency_id=GPU, concurrency_limit=1,
        )
        stop.click(cancel, None, None, cancels=[event], api_visibility="private")
        suggest.click(recommend_songs, [image_in, prompt], [used, songs], api_name="recommend_songs",
                      concurrency_id=GPU, concurrency_limit=1)


def parse_weights(text: str | None, count: int) -> list[float] | None:
    """'0.7, 0.3' -> [0.7, 0.3]; empty -> None (equal weights)."""
    if text is None or not str(text).strip():
        return None
    try:
        weights = [float(part) for part in str(text).replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise InputError(f"Weights must be numbers separated by commas, like 0.7, 0.3; got {text!r}.") from None
    if len(weights) != count:
        raise InputError(f"Give one weight per style: {count} styles, {len(weights)} weights.")
    return weights


def style_interpolation_tab(studio: Studio) -> None:
    @user_errors
    def style_interpolation(audio_path, styles, weights, strength, steps, guidance, seed, request: gr.Request = None,
                            progress=gr.Progress(track_tqdm=True)):
        flag = start_run(studio, request)
        styles = list(styles or [])
        result = studio.style_interpolation(
            audio_path, styles, parse_weights(weights, len(styles)), strength=strength, steps=steps,
            guidance=guidance, seed=seed, should_stop=flag.is_set,
            on_progress=lambda fraction, message: progress(fraction, desc=message),
        )
        folder = output_dir()
        return (save_wav(result.audio, result.sample_rate, folder, "styled", result.parameters),
                save_png(result.content_spectrogram, folder, "content-spectrogram"),
                save_png(result.output_spectrogram, folder, "output-spectrogram"))

    def available_styles():
        try:
            names = studio.style_names()
        except StudioError as error:
            gr.Warning(str(error))
            names = []
        return gr.Dropdown(choices=names, value=names[:2])

    with gr.Tab("Style interpolation") as tab:
        gr.Markdown(
            "Play a piece of audio in a mix of learned music styles (MusicTI time-varying textual inversion on "
            "Riffusion, with the interpolation of *Style Embedding Interpolation in Music Generation*). Each style "
            "is a small network that gives the placeholder token a different embedding at every denoising step; "
            "the weights mix the styles before the text encoder."
        )
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(label="Content audio", sources=["upload", "microphone"], type="filepath")
                # names are checked by the style library; the choices arrive when the tab opens
                styles = gr.Dropdown([], multiselect=True, max_choices=4, allow_custom_value=True, label="Styles (1 to 4)")
                weights = gr.Textbox(label="Weights, one per style (empty: equal)", placeholder="0.5, 0.5")
                strength = gr.Slider(0.05, 1.0, value=0.7, step=0.05, label="Strength (how far from the content)")
                steps = gr.Slider(limits.MIN_STEPS, limits.MAX_STEPS, value=50, step=1, label="Steps (DDIM)")
                guidance = gr.Slider(limits.MIN_GUIDANCE, limits.MAX_GUIDANCE, value=5.0, step=0.5, label="Guidance")
                seed = seed_control(23)
                with gr.Row():
                    run = gr.Button("Apply styles", variant="primary")
                    stop = gr.Button("Cancel", variant="stop")
                gr.Examples([[str(ASSETS / "groove.wav"), "0.5, 0.5"]], inputs=[audio_in, weights], cache_examples=False)
            with gr.Column():
                music = gr.Audio(label="Styled audio", type="filepath")
                content_image = gr.Image(label="Content spectrogram", type="filepath", format="png", interactive=False)
                output_image = gr.Image(label="Output spectrogram", type="filepath", format="png", interactive=False)
        tab.select(available_styles, None, styles, api_visibility="private")
        event = run.click(
            studio.manager.gpu_task(style_interpolation, duration=120),
            [audio_in, styles, weights, strength, steps, guidance, seed], [music, content_image, output_image],
            api_name="style_interpolation", concurrency_id=GPU, concurrency_limit=1,
        )
        stop.click(cancel, None, None, cancels=[event], api_visibility="private")


def playlist_to_music_tab(studio: Studio) -> None:
    @user_errors
    def playlist_to_music(files, steps, guidance, seed, request: gr.Request = None,
                          progress=gr.Progress(track_tqdm=True)):
        flag = start_run(studio, request)
        paths = [getattr(f, "name", f) for f in (files or [])]
        result = studio.playlist_to_music(paths, steps=steps, guidance=guidance, seed=seed, should_stop=flag.is_set,
                                          on_progress=lambda fraction, message: progress(fraction, desc=message))
        folder = output_dir()
        wav = save_wav(result.audio, result.sample_rate, folder, "playlist-music", result.parameters)
        tracks = [save_png(image, folder, f"track-{i + 1}") for i, image in enumerate(result.track_images)]
        return wav, save_png(result.image, folder, "generated-spectrogram"), tracks

    with gr.Tab("Playlist to music"):
        gr.Markdown(
            "Upload a few songs you like. A VAE turns each into a *taste* vector (from a 5.9 s slice of its "
            "spectrogram); their average conditions a spectrogram diffusion model that makes new music in that "
            f"taste (AMUSE). 1 to {limits.MAX_PLAYLIST_TRACKS} tracks. The original ran 1000 DDPM steps; 50 is "
            "the default here so a CPU can keep up. The AMUSE VAE's weights are not published: on the hub "
            "profile, point STUDIO_MODEL_AMUSE_VAE at a folder holding them."
        )
        with gr.Row():
            with gr.Column():
                files = gr.File(label="Playlist (audio files)", file_count="multiple", file_types=["audio"],
                                type="filepath")
                steps = gr.Slider(1, limits.MAX_PLAYLIST_STEPS, value=50, step=1, label="Steps (DDPM)")
                guidance = gr.Slider(limits.MIN_GUIDANCE, limits.MAX_GUIDANCE, value=7.5, step=0.5,
                                     label="Guidance (how strongly the taste steers)")
                seed = seed_control(0)
                with gr.Row():
                    run = gr.Button("Make music", variant="primary")
                    stop = gr.Button("Cancel", variant="stop")
                gr.Examples([[[str(ASSETS / "groove.wav"), str(ASSETS / "rain.wav")]]], inputs=[files],
                            cache_examples=False)
            with gr.Column():
                music = gr.Audio(label="Music", type="filepath")
                generated = gr.Image(label="Generated spectrogram", type="filepath", format="png", interactive=False)
                track_images = gr.Gallery(label="The slice of each track the VAE saw", columns=5, height=200)
        event = run.click(
            studio.manager.gpu_task(playlist_to_music, duration=120), [files, steps, guidance, seed],
            [music, generated, track_images], api_name="playlist_to_music", concurrency_id=GPU, concurrency_limit=1,
        )
        stop.click(cancel, None, None, cancels=[event], api_visibility="private")


def build_demo(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(
            f"# {TITLE}\nTurn sound into pictures and pictures into sound. "
            f"Audio inputs up to {int(limits.MAX_INPUT_SECONDS)} s."
            + (" **Tiny profile: random models, output is noise.**" if studio.info.profile == "tiny" else "")
        )
        sound_to_music_tab(studio)
        music_to_image_tab(studio)
        style_interpolation_tab(studio)
        image_to_music_tab(studio)
        playlist_to_music_tab(studio)
        spectrogram_tab(studio)
        about_tab(studio)
    return demo


# -- entry point --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=["hub", "tiny", "fullsize"], default=os.environ.get("STUDIO_PROFILE", "hub"),
                        help="hub: real models from the Hugging Face Hub; tiny: random tiny models, offline")
    parser.add_argument("--device", default=os.environ.get("STUDIO_DEVICE", "auto"),
                        help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link (Colab)")
    parser.add_argument("--max-queue", type=int, default=32, help="requests waiting at most")
    return parser.parse_args(argv)


def queue(demo: gr.Blocks, max_size: int = 32) -> gr.Blocks:
    # GPU events share one concurrency id with limit 1; CPU-side events (previews, codecs) run two at a time
    return demo.queue(default_concurrency_limit=2, max_size=max_size)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    if os.environ.get("SYSTEM") == "spaces" or os.environ.get("SPACE_ID"):
        args.host = "0.0.0.0"
    studio = Studio(profile=args.profile, device=args.device)
    studio.preload()  # only does something on ZeroGPU
    demo = queue(build_demo(studio), args.max_queue)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, prevent_thread_lock=True,
                **LAUNCH_OPTIONS)
    print(
        f"Serving {TITLE} (profile {args.profile}, device {studio.device}) after "
        f"{time.perf_counter() - _T0:.2f} s from start ({_GRADIO_IMPORT_S:.2f} s of it importing gradio)",
        flush=True,
    )
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        demo.close()
        sys.exit(0)


if __name__ == "__main__":
    main()
