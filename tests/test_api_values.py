"""Every value an API caller sends is checked for its control's whole kind, on every endpoint, and each
refusal names the control as the page labels it (ui/errors.py ``_checked_value``, ``limits.check_number``,
``Settings.LABELS``): gradio_client against the served app on the tiny profile."""

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from core.errors import InputError
from pipelines.schema import limits
from ui.binding import control_name

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def endpoints(client) -> dict[str, list[dict]]:
    return {name: info["parameters"]
            for name, info in client.view_api(return_format="dict", print_info=False)["named_endpoints"].items()}


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    t = np.arange(int(2.0 * 44100)) / 44100
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), 44100)
    return str(path)


def a_file(parameter: dict, tone: str):
    """A real file of the parameter's kind (a sound, a picture, three clips): the refusal tested is then
    the value's own, not a missing file's."""
    several = parameter["python_type"]["type"].startswith("list")
    path = str(ASSETS / "sunset.png") if parameter["component"] == "Image" else tone
    return [handle_file(path)] * 3 if several else handle_file(path)


def refusal(client, endpoint: str, parameters: list[dict], tone: str, **changed) -> str:
    """``endpoint`` called with its defaults (real files for file parameters) and ``changed``; the
    refusal's text (the test fails if the call is accepted)."""
    values = {p["parameter_name"]: a_file(p, tone) if "filepath" in p["python_type"]["type"] else
              p["parameter_default"] if p["parameter_has_default"] else p.get("example_input") for p in parameters}
    values.update(changed)
    with pytest.raises(AppError) as refused:
        client.predict(api_name=endpoint, **values)
    return str(refused.value)


def of_kind(endpoints, *components: str):
    return [(endpoint, p) for endpoint, parameters in endpoints.items() for p in parameters
            if p["component"] in components]


def test_every_text_control_refuses_what_is_not_text(client, endpoints, tone):
    texts = of_kind(endpoints, "Textbox")
    assert {"/masked_img2img", "/text_to_music", "/style_interpolation", "/train_style",
            "/recommend_songs"} <= {endpoint for endpoint, _ in texts}
    for endpoint, parameter in texts:
        name = f"{control_name(parameter['label'])} (parameter {parameter['parameter_name']})"
        for sent, shown in ((123, "int 123"), (["a", "b"], "list ['a', 'b']")):
            text = refusal(client, endpoint, endpoints[endpoint], tone, **{parameter["parameter_name"]: sent})
            assert text == f"{name} must be text; got {shown}.", (endpoint, text)


def test_every_checkbox_takes_true_or_false_only(client, endpoints, tone):
    boxes = of_kind(endpoints, "Checkbox")
    assert {"/audio_to_spectrogram", "/masked_img2img", "/image_to_music"} <= {endpoint for endpoint, _ in boxes}
    for endpoint, parameter in boxes:
        for sent in ("yes", 1, ""):
            text = refusal(client, endpoint, endpoints[endpoint], tone, **{parameter["parameter_name"]: sent})
            assert text == f"{control_name(parameter['label'])} (parameter {parameter['parameter_name']}) must be true or false; got {sent!r}.", (endpoint, text)


def test_every_whole_number_control_refuses_a_fraction_instead_of_rounding_it(client, endpoints, tone):
    whole = [(endpoint, p) for endpoint, p in of_kind(endpoints, "Slider", "Number") if p["type"]["type"] == "integer"]
    names = {(endpoint, p["parameter_name"]) for endpoint, p in whole}
    # seeds (gr.Number rounded 3.7 to 4), steps, counts, windows, sizes, top-k: all of them
    assert {("/text_to_music", "seed"), ("/masked_img2img", "steps"), ("/variations", "count"),
            ("/interpolate_prompts", "windows"), ("/music_to_image", "width"), ("/image_to_music", "top_k"),
            ("/interpolate_prompts", "seed_b"), ("/train_style", "steps"), ("/playlist_to_music", "steps")} <= names
    for endpoint, parameter in whole:
        text = refusal(client, endpoint, endpoints[endpoint], tone, **{parameter["parameter_name"]: 3.7})
        named = f"{control_name(parameter['label'])} (parameter {parameter['parameter_name']})"
        assert text.startswith(f"{named} must be a whole number from "), (endpoint, text)
        assert text.endswith("; got 3.7."), (endpoint, text)


def test_an_integral_float_passes_as_a_whole_number_and_fractions_stay_for_decimal_controls(demo):
    checked = 0
    for block in demo.blocks.values():
        if isinstance(block, (gr.Slider, gr.Number)) and block.interactive is not False:
            low = block.minimum if block.minimum is not None else 0
            value = block.preprocess(float(low))
            assert value == low and isinstance(value, int) == (block.precision == 0), block.label
            if block.precision != 0 and block.maximum is not None and low + 0.5 <= block.maximum:
                assert block.preprocess(low + 0.5) == low + 0.5, block.label  # a decimal control keeps its fraction
            checked += 1
    assert checked > 30


def test_a_style_chosen_twice_is_refused_naming_it(client, endpoints, tone):
    text = refusal(client, "/style_interpolation", endpoints["/style_interpolation"], tone,
                   styles=["jazz", "rock", "jazz"], weights="")
    assert text == ("Styles: 'jazz' is chosen more than once; choose each style once (to hear more of a style, "
                    "give it a larger weight).")


@pytest.mark.parametrize("name", ["café", "音楽", "_leading", "a/b", "x" * 65, "é" * 300])
def test_a_training_name_states_the_real_rule_and_is_not_echoed_in_full(client, endpoints, tone, name):
    text = refusal(client, "/train_style", endpoints["/train_style"], tone, name=name, steps=1)
    assert text.startswith("Style name (parameter name) must be 1 to 64 ASCII letters (a-z, A-Z), digits, spaces "
                           "or . _ + -, starting with a letter or digit; got "), text
    assert name[:41] not in text if len(name) > 40 else repr(name) in text
    assert len(text) < 250


def test_each_text_controls_pipeline_refusal_names_it_as_the_page_does(client, endpoints, tone):
    """Past the kind check, the pipelines' own refusals (too long a text, weights that are no numbers, a bad
    name) name the same control by the same name (Settings.LABELS, the call sites' names)."""
    for endpoint, parameter in of_kind(endpoints, "Textbox"):
        text = refusal(client, endpoint, endpoints[endpoint], tone, **{parameter["parameter_name"]: "x" * 1001})
        assert text.startswith(control_name(parameter['label']) + " "), (endpoint, parameter["label"], text)
        assert "x" * 41 not in text, text


def test_the_number_rule_itself():
    assert limits.check_number("Seed", 3.0, 0, 10, integer=True) == 3
    assert isinstance(limits.check_number("Seed", 3.0, 0, 10, integer=True), int)
    assert limits.check_number("Guidance", 2.5, 0, 20) == 2.5
    for bad in (3.7, float("nan"), float("inf"), True, "3", None, [3]):
        with pytest.raises(InputError, match=r"^Seed must be a whole number from 0 to 10; got "):
            limits.check_number("Seed", bad, 0, 10, integer=True)
    with pytest.raises(InputError, match=r"^Guidance must be a number at least 0; got -1\.$"):
        limits.check_number("Guidance", -1, 0, None)
    with pytest.raises(InputError, match=r"^Stereo must be true or false; got 'yes'\.$"):
        limits.check_boolean("Stereo", "yes")
    assert limits.shown("a" * 100) == repr("a" * 40) + "... (100 characters)"
    assert limits.shown(list(range(100))).endswith("... (cut)") and len(limits.shown(list(range(100)))) < 60


@pytest.fixture(scope="module")
def demo(studio):
    from app import build_demo

    return build_demo(studio)


def test_a_refused_file_or_value_names_its_control_and_parameter_whichever_check_refuses(client, tmp_path):
    """The loaders' refusals (no file, a file that is not what its name says) and the value checks reach the
    caller prefixed with the control and its API parameter, as every other refusal ("Sound (parameter
    audio_path): ..."); a pipeline wording a loader's refusal again keeps it ("Track 2: ...")."""
    text = tmp_path / "text.wav"
    text.write_text("hello this is not audio\n" * 100)
    renamed = tmp_path / "knocks.png"
    renamed.write_bytes((ASSETS / "knocks.wav").read_bytes())
    cases = [
        ("/audio_to_spectrogram", (None, "riffusion", False),
         "Sound (parameter audio_path): No audio was given."),
        ("/audio_to_spectrogram", (handle_file(str(text)), "riffusion", False),
         "Sound (parameter audio_path): The audio file 'text.wav' could not be read as audio"),
        ("/audio_to_spectrogram", (handle_file(str(ASSETS / "rain.wav")), "riffusion", "yes"),
         "Stereo (parameter stereo) must be true or false; got 'yes'."),
        ("/spectrogram_to_audio", (handle_file(str(renamed)), "auto"),
         "Spectrogram image (parameter image_path): knocks.png is not an image that can be read"),
        ("/playlist_to_music", ([handle_file(str(ASSETS / "rain.wav")), handle_file(str(text))], 5, 7.5, 0, False),
         "Playlist (parameter files): Track 2: The audio file 'text.wav' could not be read as audio"),
    ]
    for endpoint, args, words in cases:
        with pytest.raises(AppError) as refused:
            client.predict(*args, api_name=endpoint)
        assert str(refused.value).startswith(words), (endpoint, str(refused.value))


def test_a_list_parameter_given_one_file_and_an_overlong_name_say_their_own_rule(client):
    with pytest.raises(AppError) as refused:
        client.predict(handle_file(str(ASSETS / "rain.wav")), 5, 7.5, 0, False, api_name="/playlist_to_music")
    assert str(refused.value).startswith("Playlist (parameter files) takes a list of files: pass them as "
                                         "[gradio_client.handle_file(path), ...]")
    assert "put it in a list, [gradio_client.handle_file(path)], even when it is the only one" in str(refused.value)
    rule = ("Style name (parameter name) must be 1 to 64 ASCII letters (a-z, A-Z), digits, spaces or . _ + -, "
            "starting with a letter")
    for name in ("n" * 5000, "a/b"):  # one rule, one message, however long the name
        with pytest.raises(AppError, match=r"^" + rule.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")
                           .replace(".", r"\.")):
            client.predict([handle_file(str(ASSETS / "groove.wav"))], name, "musicti", 5, api_name="/train_style")


def test_the_settings_checks_refusals_name_the_parameter_and_a_rule_of_several_inputs_none(client, endpoints, tone):
    """Past the per-control checks, ``Settings.validate()`` refuses (a text too long, a field's own rule in
    ``check()``); its refusal names the control and, once, the parameter, as every refusal does; a rule about
    several inputs together stays unprefixed."""
    cases = [
        ("/text_to_music", {"prompt": "x" * 1001},
         "Prompt (parameter prompt) must be at most 1000 characters; it has 1001."),
        ("/text_to_music", {"prompt": "  "}, "Prompt (parameter prompt) is empty: describe the music, for example "),
        ("/music_to_image", {"width": 100},
         "Width (parameter width) must be a multiple of 8 (the latent is 1/8 of the image); got 100."),
        ("/train_style", {"name": "a/b", "steps": 1},
         "Style name (parameter name) must be 1 to 64 ASCII letters (a-z, A-Z), digits, spaces or . _ + -, "),
        ("/text_to_music", {"steps": 1},  # steps 1 is within its slider; at strength 0.8 the second window runs none
         "At continuation strength 0.8 only 0.8 of the steps run: 1 step(s) leave none to run; use at least 2 steps"),
    ]
    for endpoint, changed, words in cases:
        text = refusal(client, endpoint, endpoints[endpoint], tone, **changed)
        assert text.startswith(words), (endpoint, text)
        assert text.count("(parameter ") == (0 if words.startswith("At ") else 1), text


def test_validate_tags_the_field_each_refusal_concerns():
    from pipelines.schema.settings import (MaskSettings, MusicToImageSettings, SoundToMusicSettings,
                                           StyleInterpolationSettings, TextToMusicSettings)
    from pipelines.systems.extend import ExtendSettings
    from pipelines.systems.train_style import TrainStyleSettings

    cases = [(TextToMusicSettings(steps=1000), "steps"), (TextToMusicSettings(prompt=""), "prompt"),
             (ExtendSettings(engine="amuse"), "engine"), (MusicToImageSettings(height=100), "height"),
             (StyleInterpolationSettings(strength=0), "strength"), (TrainStyleSettings(name="a/b"), "name"),
             (ExtendSettings(guidance=50), "guidance"),
             (SoundToMusicSettings(mask=MaskSettings(invert=5)), "invert"),  # the nested settings' own field
             (TextToMusicSettings(steps=1), None)]  # steps and continuation strength together: no one field
    for settings, field in cases:
        with pytest.raises(InputError) as refused:
            settings.validate()
        assert refused.value.parameter == field, (settings, str(refused.value))
        assert "(parameter" not in str(refused.value)  # the pipelines name the control only; the app adds the rest
    assert TextToMusicSettings().validate().steps == 50  # valid settings pass untouched
