"""Every endpoint the way API users call it: gradio_client against the served app on the tiny profile."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from pipelines.signal import audio as audio_io
from pipelines.signal import spectrogram

ASSETS = Path(__file__).resolve().parents[1] / "assets"
FAST = dict(steps=4, strength=0.75)  # 3 denoising steps per window keeps the tiny runs short


def masked_args(path, *, model="mask_model", prompt="funk drums", negative="", invert=1.0, brightness=0.05,
                contrast=200, downshift=150, steps=FAST["steps"], strength=FAST["strength"], guidance=8.0, seed=1040,
                scheduler="repo"):
    return [path, model, prompt, negative, invert, brightness, contrast, downshift, steps, strength, guidance, seed,
            scheduler]


@pytest.fixture(scope="module")
def tone_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    t = np.arange(int(2.0 * 44100)) / 44100
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), 44100)
    return str(path)


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    """12 s: three riffusion windows."""
    path = tmp_path_factory.mktemp("audio") / "long.wav"
    rng = np.random.default_rng(0)
    sf.write(path, 0.3 * rng.standard_normal(12 * 22050), 22050)
    return str(path)


# -- spectrogram ------------------------------------------------------------------------------------

def test_audio_to_spectrogram_and_back(client, tone_wav):
    png, plot = client.predict(handle_file(tone_wav), "riffusion", False, api_name="/audio_to_spectrogram")
    image = Image.open(png)
    assert image.height == 512 and abs(image.width - 200) <= 2  # 2 s at 100 columns per second
    meta = spectrogram.read_metadata(image)
    assert meta["params"].name == "riffusion" and meta["max_value"] > 0
    assert Image.open(plot).width > image.width  # axes around the picture
    wav, _ = client.predict(handle_file(png), "auto", api_name="/spectrogram_to_audio")
    sound = audio_io.load_audio(wav, 44100)
    assert abs(sound.duration - 2.0) < 0.05
    spectrum = np.abs(np.fft.rfft(sound.samples[0]))
    assert abs(np.argmax(spectrum) * 44100 / sound.num_frames - 440) < 10
    assert audio_io.read_wav_metadata(wav)["preset"] == "riffusion"


def test_audio_diffusion_preset(client, tone_wav):
    png, _ = client.predict(handle_file(tone_wav), "audio-diffusion", False, api_name="/audio_to_spectrogram")
    assert Image.open(png).height == 256


@pytest.mark.parametrize("args,words", [
    (("riffusion-xl", False), "not in the list of choices"),  # gradio checks choices itself
    (("audio-diffusion", True), "Stereo spectrograms exist only"),
])
def test_audio_to_spectrogram_bad_arguments(client, tone_wav, args, words):
    with pytest.raises(AppError, match=words):
        client.predict(handle_file(tone_wav), *args, api_name="/audio_to_spectrogram")


def test_spectrogram_to_audio_refuses_a_non_image(client, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is not a png at all")
    with pytest.raises(AppError, match="fake.png is not an image that can be read"):
        client.predict(handle_file(str(fake)), "auto", api_name="/spectrogram_to_audio")


# -- sound to music ---------------------------------------------------------------------------------

def test_preview_mask_shows_spectrogram_and_mask(client):
    source, mask = client.predict(handle_file(str(ASSETS / "kettle.wav")), 1.0, 0.05, 200, 150, api_name="/preview_mask")
    source, mask = Image.open(source), Image.open(mask)
    assert source.size == mask.size and source.height == 512
    values = np.asarray(mask.convert("L"))
    assert values.min() == 0 and values.max() > 0  # downshift zeroes the quiet parts, loud ones stay


@pytest.mark.slow
def test_masked_img2img_end_to_end(client):
    wav, source, mask, output, metrics = client.predict(*masked_args(handle_file(str(ASSETS / "knocks.wav"))),
                                                        api_name="/masked_img2img")
    *_, with_clap = client.predict(*masked_args(handle_file(str(ASSETS / "knocks.wav"))), "paper", 0.0, True,
                                   api_name="/masked_img2img")
    sound = audio_io.load_audio(wav, 44100)
    assert abs(sound.duration - 5.0) < 0.01, "output must have the input's length"
    assert Image.open(source).size == Image.open(output).size == Image.open(mask).size
    from conftest import metrics_of

    metrics = metrics_of(metrics)  # a readable table: label -> value (CLAP off on the CPU by default)
    assert set(metrics) == {"SSIM of the spectrograms (input vs output)", "Chroma CENS similarity (input vs output)"}
    assert -1 <= metrics["SSIM of the spectrograms (input vs output)"] <= 1
    assert 0 <= metrics["Chroma CENS similarity (input vs output)"] <= 1
    with_clap = metrics_of(with_clap)  # asked for: the CLAP values join the table, the others are unchanged
    assert set(with_clap) == set(metrics) | {"CLAP score (output vs prompt)", "Content preservation (CLAP, input vs output)"}
    assert with_clap["SSIM of the spectrograms (input vs output)"] == metrics["SSIM of the spectrograms (input vs output)"]
    saved = audio_io.read_wav_metadata(wav)
    assert saved["seed"] == 1040 and saved["prompt"] == "funk drums" and saved["model"] == "mask_model"
    assert 10 ** (-1.5 / 20) < np.max(np.abs(sound.samples)) <= 1.0, "output is normalised"


@pytest.mark.slow
def test_the_genre_lora_scale_is_a_trailing_argument_that_changes_the_music(client, tone_wav):
    """The tiny profile's s2m_lora is a random LoRA for the tiny UNet: scale 1 must change the output."""
    args = masked_args(handle_file(tone_wav), model="riffusion", seed=5)
    plain = client.predict(*args, api_name="/masked_img2img")
    with_lora = client.predict(*args, "paper", 1.0, api_name="/masked_img2img")
    assert audio_io.read_wav_metadata(with_lora[0])["lora_scale"] == 1.0
    assert audio_io.read_wav_metadata(plain[0])["lora_scale"] == 0.0
    assert not np.array_equal(sf.read(plain[0])[0], sf.read(with_lora[0])[0])


@pytest.mark.slow
def test_same_seed_same_audio_and_another_seed_differs(client, tone_wav):
    first = client.predict(*masked_args(handle_file(tone_wav), seed=5), api_name="/masked_img2img")[0]
    again = client.predict(*masked_args(handle_file(tone_wav), seed=5), api_name="/masked_img2img")[0]
    other = client.predict(*masked_args(handle_file(tone_wav), seed=6), api_name="/masked_img2img")[0]
    a, b, c = (sf.read(p)[0] for p in (first, again, other))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.slow
def test_multi_window_input_keeps_its_length(client, long_wav):
    wav, source, _, output, _ = client.predict(*masked_args(handle_file(long_wav), steps=2, strength=0.5),
                                               api_name="/masked_img2img")
    sound = audio_io.load_audio(wav, 44100)
    assert abs(sound.duration - 12.0) < 0.01
    assert Image.open(output).width == 3 * 512  # three windows side by side
    assert Image.open(source).width == 3 * 512


@pytest.mark.parametrize("changes,words", [
    ({"steps": 500}, "must be a number from"),  # sliders are enforced by gradio itself
    ({"strength": -0.5}, "must be a number from"),
    ({"seed": -1}, "must be a number from"),
    ({"seed": 2**40}, "must be a number from"),
    ({"prompt": ""}, "style prompt"),
    ({"model": "stable-diffusion-xl"}, "not in the list of choices"),
    ({"scheduler": "lcm"}, "not in the list of choices"),
    ({"downshift": 999}, "must be a number from"),
])
def test_out_of_range_values_sent_to_the_api(client, tone_wav, changes, words):
    with pytest.raises(AppError, match=words):
        client.predict(*masked_args(handle_file(tone_wav), **changes), api_name="/masked_img2img")


def test_bad_audio_inputs(client, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(44100), 44100)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    too_long = tmp_path / "long.wav"
    sf.write(too_long, 0.1 * np.ones(8000 * 70), 8000)
    for path, words in ((silent, "silent"), (corrupt, "could not be read|not a supported|corrupt|damaged"),
                        (too_long, "longer|too long|limit")):
        with pytest.raises(AppError, match=words):
            client.predict(*masked_args(handle_file(str(path))), api_name="/masked_img2img")
    with pytest.raises(AppError, match="[Aa]udio|sound|file"):
        client.predict(*masked_args(None), api_name="/masked_img2img")


def test_app_keeps_running_after_errors(client):
    """An endpoint that fails (here: an empty prompt) leaves the app serving the next request."""
    with pytest.raises(AppError, match="style prompt"):
        client.predict(*masked_args(handle_file(str(ASSETS / "knocks.wav")), prompt=""), api_name="/masked_img2img")
    summary, _ = client.predict(api_name="/status")
    assert "tiny" in summary


def test_stereo_riffusion_spectrogram_keeps_channels_apart(client, tmp_path):
    t = np.arange(int(1.5 * 44100)) / 44100
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 1500 * t)], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 44100)
    png, _ = client.predict(handle_file(str(path)), "riffusion", True, api_name="/audio_to_spectrogram")
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels[..., 0].max() == 0 and not np.array_equal(pixels[..., 1], pixels[..., 2])
    wav, _ = client.predict(handle_file(png), "auto", api_name="/spectrogram_to_audio")
    left, right = audio_io.load_audio(wav, 44100, channels=2).samples
    peak = [np.argmax(np.abs(np.fft.rfft(ch))) * 44100 / ch.size for ch in (left, right)]
    assert abs(peak[0] - 440) < 15 and abs(peak[1] - 1500) < 15


def test_gradios_own_range_checks_read_as_ours_without_a_traceback(client, tone_wav, capfd):
    with pytest.raises(AppError) as out_of_range:
        client.predict(*masked_args(handle_file(tone_wav), steps=500), api_name="/masked_img2img")
    assert str(out_of_range.value).startswith("Steps must be a number from 1 to 100; got 500")
    with pytest.raises(AppError) as a_word:
        client.predict(*masked_args(handle_file(tone_wav), steps="fifty"), api_name="/masked_img2img")
    assert str(a_word.value).startswith("Steps must be a number from 1 to 100; got 'fifty'")
    with pytest.raises(AppError, match=r"Genre LoRA scale \(0: off.*\) must be a number from 0 to 2; got True"):
        client.predict(*masked_args(handle_file(tone_wav)), "paper", True, api_name="/masked_img2img")
    with pytest.raises(AppError, match="Seed must be a number from 0 to 4294967295; got -1"):
        client.predict(*masked_args(handle_file(tone_wav), seed=-1), api_name="/masked_img2img")
    with pytest.raises(AppError, match="not in the list of choices"):  # other components keep their words
        client.predict(*masked_args(handle_file(tone_wav), scheduler="lcm"), api_name="/masked_img2img")
    assert "Traceback" not in capfd.readouterr().err  # one log line each, as the studio's own errors


def test_a_number_without_bounds_given_text_says_it_wants_a_number():
    import gradio as gr

    from ui import common

    with gr.Blocks() as demo:
        count = gr.Number(label="Count")
    common.input_checks_in_our_words(demo)
    assert count.preprocess(3) == 3
    with pytest.raises(gr.Error, match=r"Count must be a number; got 'many'\."):
        count.preprocess("many")
