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
    (("riffusion-xl", False), r"Preset \(parameter preset\) must be one of .riffusion., .audio-diffusion."),
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
    ({"steps": 500}, "must be a whole number from"),  # sliders are enforced before the handler (ui/errors.py)
    ({"strength": -0.5}, "must be a number from"),
    ({"seed": -1}, "must be a whole number from"),
    ({"seed": 2**40}, "must be a whole number from"),
    ({"prompt": ""}, r"^Style prompt \(parameter prompt\) is empty"),
    ({"model": "stable-diffusion-xl"}, "must be one of .mask_model., .riffusion."),
    ({"scheduler": "lcm"}, r"must be one of .repo., .ddim., .dpm\+\+."),
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
    with pytest.raises(AppError, match=r"^Style prompt \(parameter prompt\) is empty"):
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
    assert str(out_of_range.value).startswith("Steps (parameter steps) must be a whole number from 1 to 100; got 500")
    with pytest.raises(AppError) as a_word:
        client.predict(*masked_args(handle_file(tone_wav), steps="fifty"), api_name="/masked_img2img")
    assert str(a_word.value).startswith("Steps (parameter steps) must be a whole number from 1 to 100; got 'fifty'")
    with pytest.raises(AppError,
                       match=r"^Genre LoRA scale \(parameter lora_scale\) must be a number from 0 to 2; got True\."):
        client.predict(*masked_args(handle_file(tone_wav)), "paper", True, api_name="/masked_img2img")
    with pytest.raises(AppError, match=r"^Seed \(parameter seed\) must be a whole number from 0 to 4294967295; got -1"):
        client.predict(*masked_args(handle_file(tone_wav), seed=-1), api_name="/masked_img2img")
    with pytest.raises(AppError, match=r"^Scheduler \(parameter scheduler\) must be one of"):
        client.predict(*masked_args(handle_file(tone_wav), scheduler="lcm"), api_name="/masked_img2img")
    assert "Traceback" not in capfd.readouterr().err  # one log line each, as the studio's own errors


def test_a_number_without_bounds_given_text_says_it_wants_a_number():
    import gradio as gr

    from ui import errors

    with gr.Blocks() as demo:
        count = gr.Number(label="Count")
    errors.input_checks_in_our_words(demo)
    assert count.preprocess(3) == 3
    with pytest.raises(gr.Error, match=r"Count must be a number; got 'many'\."):
        count.preprocess("many")


# -- what API callers get wrong, answered in our words for every endpoint -----------------------------------------
def endpoint_parameters(client) -> dict[str, list[dict]]:
    """Each public endpoint's parameters as ``view_api`` lists them (name, component, type, default)."""
    return {name: info["parameters"]
            for name, info in client.view_api(return_format="dict", print_info=False)["named_endpoints"].items()}


def is_file(parameter: dict) -> bool:
    return "filepath" in parameter["python_type"]["type"]


def call_with(client, endpoint: str, parameters: list[dict], **changed):
    """``endpoint`` called by parameter name: each at its default (or its example; files left out), then
    ``changed``. Returns the refusal's text (the test fails if the call succeeds)."""
    values = {p["parameter_name"]: None if is_file(p) else
              p["parameter_default"] if p["parameter_has_default"] else p.get("example_input") for p in parameters}
    values.update(changed)
    with pytest.raises(AppError) as refused:
        client.predict(api_name=endpoint, **values)
    return str(refused.value)


def test_a_bare_path_instead_of_handle_file_says_how_to_send_a_file_on_every_endpoint(client):
    checked = []
    for endpoint, parameters in endpoint_parameters(client).items():
        for parameter in filter(is_file, parameters):
            name = parameter["parameter_name"]
            several = parameter["python_type"]["type"].startswith("list")
            text = call_with(client, endpoint, parameters, **{name: ["knocks.wav"] if several else "knocks.wav"})
            assert f"(parameter {name}) takes {'a list of files' if several else 'a file'}" in text, (endpoint, text)
            assert "gradio_client.handle_file(path)" in text and "the text 'knocks.wav'" in text, (endpoint, text)
            assert "validation error" not in text and "FileData" not in text, (endpoint, text)
            checked.append(endpoint)
    # every kind of file input: Audio, Image (pictures), File (one image; several clips)
    assert {"/masked_img2img", "/image_to_music", "/spectrogram_to_audio", "/playlist_to_music", "/train_style"} <= set(checked)


def test_a_value_outside_a_controls_choices_names_the_control_and_its_choices_on_every_endpoint(client):
    # dropdowns that allow custom values (view_api still lists their initial choices as an enum)
    free_labels = {component["props"].get("label") for component in client.config["components"]
                   if component.get("type") == "dropdown" and component["props"].get("allow_custom_value")}
    checked = []
    for endpoint, parameters in endpoint_parameters(client).items():
        for parameter in parameters:
            allowed = parameter["type"].get("enum")
            if parameter["component"] not in ("Radio", "Dropdown") or not allowed or parameter["label"] in free_labels:
                continue  # a dropdown that takes any value (style names, a visitor's LoRA) has no list to keep to
            name = parameter["parameter_name"]
            text = call_with(client, endpoint, parameters, **{name: "middle"})
            assert f"(parameter {name}) must be one of {', '.join(map(repr, allowed))}; got 'middle'." in text, text
            assert "not in the list of choices" not in text and "<class" not in text
            checked.append(endpoint)
    assert {"/audio_to_spectrogram", "/spectrogram_to_audio", "/masked_img2img", "/extend_music"} <= set(checked)


def test_a_file_address_the_studio_will_not_fetch_says_where_files_may_come_from_on_every_endpoint(client):
    private = "http://127.0.0.1:9/private.wav"  # gradio fetches no private or local address (safehttpx)
    checked = []
    for endpoint, parameters in endpoint_parameters(client).items():
        for parameter in filter(is_file, parameters):
            name = parameter["parameter_name"]
            sent = handle_file(private)
            text = call_with(client, endpoint, parameters,
                             **{name: [sent] if parameter["python_type"]["type"].startswith("list") else sent})
            assert f"(parameter {name}): {private} is a private or local address" in text, (endpoint, text)
            assert "Files must be uploaded, or come from a public http(s) address" in text
            assert "failed validation" not in text and "Hostname" not in text
            checked.append(endpoint)
    assert {"/masked_img2img", "/image_to_music", "/spectrogram_to_audio", "/playlist_to_music"} <= set(checked)
    nowhere = "http://no-such-host.invalid/x.wav"  # a name no resolver knows (RFC 2606): no network needed
    text = call_with(client, "/audio_to_spectrogram", endpoint_parameters(client)["/audio_to_spectrogram"],
                     audio_path=handle_file(nowhere))
    assert f"Sound (parameter audio_path): the file at {nowhere} could not be downloaded (its host name is not known)." in text
    assert "public http(s) address" in text and "Unable to resolve" not in text


def test_a_dropdown_whose_choices_changed_in_the_session_keeps_to_its_new_choices():
    import gradio as gr
    from gradio_client import Client

    from ui import errors

    with gr.Blocks() as demo:
        result = gr.Dropdown(["a", "b"], value="a", label="Result")
        shown = gr.Textbox()
        gr.Button().click(lambda: gr.Dropdown(choices=["c", "d"], value="c"), None, result, api_name="refresh")
        gr.Button().click(lambda label: label, result, shown, api_name="show")
    errors.input_checks_in_our_words(demo)
    demo.queue().launch(prevent_thread_lock=True, quiet=True)
    try:
        session = Client(demo.local_url, verbose=False)
        session.predict(api_name="/refresh")
        assert session.predict("d", api_name="/show") == "d"
        with pytest.raises(AppError, match=r"Result \(parameter label\) must be one of 'c', 'd'; got 'a'\."):
            session.predict("a", api_name="/show")
        assert Client(demo.local_url, verbose=False).predict("a", api_name="/show") == "a"  # another session
    finally:
        demo.close()


def image_file(folder, width, height):
    """A ``width`` x ``height`` PNG for an endpoint (1-bit when large: small on disk, the header says its size)."""
    path = folder / f"{width}x{height}.png"
    Image.new("1" if width * height > 10**7 else "L", (width, height), 1).save(path)
    return handle_file(str(path))


def assert_sizes_kept(call, folder, accepted, outside, inside):
    """Each size ``outside`` is refused with a message naming it and ending in what is ``accepted``;
    ``inside`` (if any) is taken: no refusal states a range its own size is in."""
    for width, height in outside:
        with pytest.raises(AppError) as refused:
            call(image_file(folder, width, height))
        text = str(refused.value)
        assert f"{width}x{height} px" in text and text.endswith(f"accepted: {accepted}."), text
    if inside:
        assert call(image_file(folder, *inside))


def test_the_spectrogram_endpoint_states_the_sizes_it_takes_and_keeps_to_them(client, tmp_path):
    from pipelines.schema import limits
    from pipelines.signal.spectrogram.image_files import sizes_accepted

    accepted = sizes_accepted()
    assert accepted == ("as high as its preset's mel bins (riffusion 512 px, audio-diffusion 256 px) and 1 to "
                        f"{limits.MAX_SPECTROGRAM_WIDTH} px wide")
    outside = [(1, 1), (40, 300), (limits.MAX_SPECTROGRAM_WIDTH + 1, 512), (8, 2000)]
    assert_sizes_kept(lambda f: client.predict(f, "auto", api_name="/spectrogram_to_audio"), tmp_path, accepted,
                      outside, (8, 256))
    for preset in ("riffusion", "audio-diffusion"):  # a preset chosen by the caller: the same rule
        assert_sizes_kept(lambda f: client.predict(f, preset, api_name="/spectrogram_to_audio"), tmp_path, accepted,
                          outside[:2], None)


@pytest.mark.slow
def test_the_picture_endpoints_state_the_sizes_they_take_and_keep_to_them(client, tmp_path):
    from pipelines.signal import images
    from pipelines.schema import limits

    side = limits.MAX_INPUT_IMAGE_SIDE
    accepted = images.sizes_accepted(limits.MIN_INPUT_IMAGE_SIDE, side, side)
    assert accepted == f"16 to {side} px on each side, at most 50 megapixels"
    outside = [(1, 1), (15, 600), (side + 1, 16), (8000, 8000)]  # the last: sides within, pixels over
    assert_sizes_kept(lambda f: client.predict(f, "", api_name="/recommend_songs"), tmp_path, accepted, outside, (16, 16))
    assert_sizes_kept(lambda f: client.predict(f, "", 1, 3.0, 1.0, 250, 0.0, 0, None, False, api_name="/image_to_music"),
                      tmp_path, accepted, outside[:2], None)
