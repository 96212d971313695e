"""Every control reaches its own settings field: the handlers' inputs, settings and ZeroGPU estimates
are bound by parameter name (ui/binding.py), and each bound component is the one made for its field."""

import dataclasses

import gradio as gr
import pytest

from pipelines.schema import settings as S
from pipelines.systems.extend import ExtendSettings
from pipelines.systems.train_style import TrainStyleSettings
from ui import binding

# endpoint -> the settings dataclass its handler runs with
ENDPOINT_SETTINGS = {
    "preview_mask": S.MaskSettings, "masked_img2img": S.SoundToMusicSettings,
    "music_to_image": S.MusicToImageSettings, "image_to_music": S.ImageToMusicSettings,
    "style_interpolation": S.StyleInterpolationSettings, "playlist_to_music": S.PlaylistToMusicSettings,
    "text_to_music": S.TextToMusicSettings, "interpolate_prompts": S.PromptInterpolationSettings,
    "extend_music": ExtendSettings, "variations": S.TextToMusicSettings,  # variations: Riffusion's, the controls' own
    "train_style": TrainStyleSettings,
}
# (endpoint, field) whose box starts empty: None is the engine's own default (ui.variations.engine_settings)
EMPTY_IS_ENGINE_DEFAULT = {("variations", "guidance")}


@pytest.fixture(scope="module")
def demo(studio):
    from app import build_demo

    return build_demo(studio)


def handler(demo, api_name):
    """(the tab's own handler, its input components) of an endpoint, through every wrapper."""
    (block,) = [f for f in demo.fns.values() if f.api_name == api_name]
    fn = block.fn
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn, list(block.inputs)


def made_for(component, cls, name, empty_is_default: bool = False) -> list[str]:
    """Why ``component`` is not the control made for field ``name`` of ``cls`` (empty: it is): the
    control's default is the field's (None where ``empty_is_default``: an empty box stands for the
    engine's own default), a slider's or number's bounds lie within the field's range, a choice's
    options are the field's choices; fields that share a default and a range (width and height) are
    told apart by their label."""
    default = None if empty_is_default else cls.default(name)
    problems = []
    if component.value != default:
        problems.append(f"value {component.value!r} is not the default {default!r}")
    valid = cls.RANGES.get(name)
    if valid is not None and isinstance(component, (gr.Slider, gr.Number)) and component.minimum is not None:
        if not (valid.low <= component.minimum and component.maximum <= valid.high):
            problems.append(f"bounds {component.minimum}..{component.maximum} outside {valid.low}..{valid.high}")
    if name in cls.CHOICES:
        offered = {choice[1] if isinstance(choice, tuple) else choice for choice in component.choices}
        if offered != set(cls.CHOICES[name]):
            problems.append(f"choices {sorted(offered)} are not {sorted(cls.CHOICES[name])}")
    twins = [other for other in binding.fields_of(cls) if other != name and other in cls.RANGES
             and cls.RANGES[other] == valid and cls.default(other) == default]
    if twins and name.replace("_", " ") not in (component.label or "").lower():
        problems.append(f"label {component.label!r} does not name {name} (its twin {twins} has the same default)")
    return problems


@pytest.mark.parametrize("api_name", sorted(ENDPOINT_SETTINGS))
def test_every_control_is_the_one_made_for_its_field(demo, api_name):
    fn, components = handler(demo, api_name)
    names = binding.parameters(fn)
    assert len(names) == len(components)
    owners = binding.fields_of(ENDPOINT_SETTINGS[api_name])
    bound = {name: component for name, component in zip(names, components) if name in owners}
    assert bound, f"{api_name} binds no settings field"
    wrong = {name: made_for(component, owners[name], name, (api_name, name) in EMPTY_IS_ENGINE_DEFAULT)
             for name, component in bound.items()}
    assert {name: problems for name, problems in wrong.items() if problems} == {}


@pytest.mark.parametrize("api_name", sorted(ENDPOINT_SETTINGS))
def test_every_control_is_named_as_its_settings_name_it(demo, api_name):
    """One name per control: the page's label starts with the name the settings' refusals use
    (``Settings.label``), and the UI's refusals take the same name from the label (``control_name``)."""
    fn, components = handler(demo, api_name)
    owners = binding.fields_of(ENDPOINT_SETTINGS[api_name])
    names = {name: (binding.control_name(component), owners[name].label(name))
             for name, component in zip(binding.parameters(fn), components) if name in owners}
    assert {name: pair for name, pair in names.items() if pair[0] != pair[1]} == {}
    assert binding.control_name("Genre LoRA scale (0: off; needs a genre LoRA)") == "Genre LoRA scale"


def test_a_whole_number_field_has_a_whole_number_control_and_no_other(demo):
    for api_name, cls in ENDPOINT_SETTINGS.items():
        fn, components = handler(demo, api_name)
        owners = binding.fields_of(cls)
        for name, component in zip(binding.parameters(fn), components):
            valid = owners[name].RANGES.get(name) if name in owners else None
            if valid is not None and isinstance(component, (gr.Slider, gr.Number)):
                assert (component.precision == 0) == valid.integer, (api_name, name)


@pytest.mark.parametrize("api_name, first, second", [
    ("masked_img2img", "invert", "brightness"), ("extend_music", "seconds", "steps"),
    ("extend_music", "engine", "side"), ("extend_music", "prompt", "negative_prompt"),
    ("variations", "seconds", "steps"), ("variations", "seed", "guidance"),
])
def test_a_swap_of_two_widgets_is_seen(demo, api_name, first, second):
    """The check itself: two of a tab's controls traded places (the invert and brightness sliders, the
    extend tab's seconds and steps, ...) fail it."""
    fn, components = handler(demo, api_name)
    names = binding.parameters(fn)
    owners = binding.fields_of(ENDPOINT_SETTINGS[api_name])

    def problems(component, name):
        return made_for(component, owners[name], name, (api_name, name) in EMPTY_IS_ENGINE_DEFAULT)

    a, b = components[names.index(first)], components[names.index(second)]
    assert problems(a, first) == [] == problems(b, second)
    assert problems(b, first) and problems(a, second)


class Captured(Exception):
    pass


@pytest.mark.parametrize("api_name,method", [("masked_img2img", "sound_to_music"), ("music_to_image", "music_to_image"),
                                             ("image_to_music", "image_to_music"),
                                             ("style_interpolation", "style_interpolation"),
                                             ("playlist_to_music", "playlist_to_music"),
                                             ("text_to_music", "text_to_music"),
                                             ("interpolate_prompts", "interpolate_prompts"),
                                             ("extend_music", "extend_music"), ("variations", "variations"),
                                             ("train_style", "train_style")])
def test_each_value_lands_in_the_field_of_its_parameter(demo, studio, monkeypatch, api_name, method):
    """Distinct values in the public API's order: the Studio receives settings holding each in the
    field its parameter names (nothing shifted, nothing dropped)."""
    fn, components = handler(demo, api_name)
    names = binding.parameters(fn)
    cls = ENDPOINT_SETTINGS[api_name]
    owners = binding.fields_of(cls)
    values = []
    for index, name in enumerate(names):
        default = owners[name].default(name) if name in owners else None
        if isinstance(default, bool) or default is None:
            values.append(default)
        elif isinstance(default, (int, float)):
            values.append(type(default)(default) + index + 1)  # unchecked here: only where it lands matters
        elif isinstance(default, str) and name in owners[name].CHOICES:
            values.append(owners[name].CHOICES[name][-1])
        else:
            values.append(f"{name} text {index}")
    if "styles" in names:
        values[names.index("styles")] = ["jazz"]

    def capture(*args, **kwargs):
        raise Captured(next(a for a in (*args, *kwargs.values()) if isinstance(a, cls)))

    monkeypatch.setattr(studio, method, capture)
    with pytest.raises(Captured) as caught:
        fn(*values)
    chosen = caught.value.args[0]
    flat = {**dataclasses.asdict(chosen), **{k: v for k, v in dataclasses.asdict(chosen).get("mask", {}).items()}}
    for name, value in zip(names, values):
        if name in owners:
            assert flat[name] == value, f"{name}: sent {value!r}, the settings hold {flat[name]!r}"


def test_the_zero_gpu_estimate_reads_the_arguments_by_name():
    def handler(audio_path, model, steps, strength, lora_scale=0.0, progress=gr.Progress()):
        pass

    seen = []
    estimate = binding.gpu_estimate(handler, S.SoundToMusicSettings,
                                    lambda chosen, args: seen.append((chosen, args["audio_path"])) or 7)
    assert estimate("a.wav", "riffusion", 20, 0.5) == 7
    assert (seen[0][0].steps, seen[0][0].strength, seen[0][1]) == (20, 0.5, "a.wav")
    fallback = S.SoundToMusicSettings(steps=100)
    broken = binding.gpu_estimate(handler, S.SoundToMusicSettings, lambda chosen, args: int(float(chosen.steps)),
                                  fallback)
    assert broken("a.wav", "riffusion", "lots", 0.5) == 100


def test_inputs_refuse_a_parameter_without_control_and_a_control_without_parameter():
    def handler(audio_path, steps, request: gr.Request = None):
        pass

    assert binding.parameters(handler) == ["audio_path", "steps"]
    with pytest.raises(ValueError, match="no control for \\['steps'\\]"):
        binding.inputs(handler, {"audio_path": 1})
    with pytest.raises(ValueError, match="no parameter for \\['seed'\\]"):
        binding.inputs(handler, {"audio_path": 1, "steps": 2, "seed": 3})


def test_settings_from_fills_nested_fields_and_leaves_the_rest_default():
    chosen = binding.settings_from(S.SoundToMusicSettings, {"invert": 0.3, "steps": 9, "negative_prompt": None,
                                                            "model": "riffusion"})
    assert (chosen.mask.invert, chosen.steps, chosen.negative_prompt) == (0.3, 9, "")
    assert chosen.mask.brightness == S.MaskSettings.default("brightness") and chosen.prompt == S.SoundToMusicSettings.default("prompt")


def test_musicgen_variations_bind_their_settings_by_name_and_an_empty_guidance_is_musicgens(demo, studio,
                                                                                             monkeypatch):
    fn, _ = handler(demo, "variations")

    def capture(engine, settings, count, **options):
        raise Captured(engine, settings, count, options["prompt"])

    monkeypatch.setattr(studio, "variations", capture)
    for guidance, expected in ((4.5, 4.5), (None, S.ImageToMusicSettings.default("guidance"))):
        with pytest.raises(Captured) as caught:
            fn(prompt="calm piano", engine="musicgen", seconds=12.5, seed=77, count=3, steps=9, guidance=guidance)
        engine, chosen, count, prompt = caught.value.args
        assert (engine, count, prompt) == ("musicgen", 3, "calm piano")
        assert chosen == S.ImageToMusicSettings(seconds=12.5, seed=77, guidance=expected)


@pytest.fixture
def estimates(studio, monkeypatch):
    """The ZeroGPU estimate each of the extend and variations tabs hands to ``studio.gpu_task``, by handler."""
    from ui import extend, send_to, variations

    seen = {}
    real = studio.gpu_task

    def recording(fn, duration=60):
        seen[fn.__name__] = duration
        return real(fn, duration)

    monkeypatch.setattr(studio, "gpu_task", recording)
    with gr.Blocks(), gr.Tabs():
        extend.build(studio)
        variations.build(studio)
        send_to.connect()  # wires (and forgets) these tabs' Send-to buttons
    return seen


def test_the_extend_and_variations_estimates_read_their_arguments_by_name(estimates):
    from ui.variations import SLOTS

    extend = estimates["extend_music"]
    riffusion = ExtendSettings(seconds=20.0, steps=30).gpu_seconds()
    assert extend("a.wav", "p", 20.0, "riffusion", "after", 1, 30, None, "") == riffusion
    assert riffusion != ExtendSettings(seconds=30.0, steps=20).gpu_seconds()  # seconds and steps swapped: seen
    assert extend("a.wav", "p", 20.0, "musicgen", "before", 1, 30, None, "") == \
        ExtendSettings(seconds=20.0, engine="musicgen").gpu_seconds() != riffusion
    worst = ExtendSettings(seconds=ExtendSettings.RANGES["seconds"].high, steps=ExtendSettings.RANGES["steps"].high)
    assert extend("a.wav", "p", "long", "riffusion", "after", 1, 30, None, "") == worst.gpu_seconds()

    variations = estimates["variations"]
    assert variations("p", "riffusion", 20.0, 1, 3, 30, None) == 3 * S.TextToMusicSettings(seconds=20.0, steps=30).gpu_seconds()
    assert variations("p", "musicgen", 20.0, 1, 3, 30, None) == 3 * S.ImageToMusicSettings(seconds=20.0).gpu_seconds()
    most = S.TextToMusicSettings(seconds=S.TextToMusicSettings.RANGES["seconds"].high,
                                 steps=S.TextToMusicSettings.RANGES["steps"].high)
    assert variations("p", "riffusion", 20.0, 1, "many", 30, None) == SLOTS * most.gpu_seconds()
