"""Music to image: the description (classifiers + tempo), the old-format LoRA, text-to-image."""

import time

import numpy as np
import pytest
import torch

from classifiers import emotion, genre
from pipelines.models import lora
from pipelines.systems import music_to_image as m2i
from core.errors import Cancelled, InputError, ModelUnavailableError

SR = 22050
SMALL = dict(steps=2, width=64, height=64)


def music(seconds: float, bpm: float = 120.0, sr: int = SR) -> np.ndarray:
    """Clicks at ``bpm`` over a soft chord: something with a beat and a pitch."""
    t = np.arange(int(seconds * sr)) / sr
    y = 0.05 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    n = int(0.02 * sr)
    click = np.sin(2 * np.pi * 1000 * t[:n]) * np.exp(-t[:n] * 200)
    for start in np.arange(0.5, seconds - 0.05, 60.0 / bpm):
        i = int(start * sr)
        y[i : i + n] += click[: y.size - i]
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def classifiers_(studio):
    return (genre.load(studio.registry.resolve("genre_classifier").location),
            emotion.load(studio.registry.resolve("emotion_classifier").location))


@pytest.fixture(scope="module")
def pipe(studio):
    """A pipeline of its own (the LoRA goes into its UNet), from the tiny SD 1.5 folder."""
    from diffusers import StableDiffusionPipeline

    p = StableDiffusionPipeline.from_pretrained(studio.registry.resolve("sd15").location, safety_checker=None,
                                                requires_safety_checker=False)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def lora_folder(studio):
    return studio.registry.resolve("m2i_lora").location


def pixels(result) -> np.ndarray:
    return np.asarray(result.image, dtype=np.int16)


# -- the description ----------------------------------------------------------------------------------


def test_sentence_is_the_original_template():
    assert m2i.make_sentence("jazz", 120.7, "calmness") == (
        "This piece of music falls under the jazz genre. It is of tempo 120 and evokes a sense of calmness.")


def test_describe_a_30_second_clip(classifiers_, capsys):
    g, e = classifiers_
    start = time.perf_counter()
    description = m2i.describe_music(music(30.0, 120), SR, g, e)
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n[timing] describe_music, 30 s clip, tiny classifiers, CPU: {elapsed:.2f} s")
    assert description.segments == {"genre": 5, "emotion": 3}
    assert abs(description.refined_bpm - 120) <= 2
    assert len(description.genres) == 3 and len(description.emotions) == 3
    for ranked, labels in ((description.genres, genre.GENRES), (description.emotions, emotion.EMOTIONS)):
        assert all(label in labels for label, _ in ranked)
        probabilities = [p for _, p in ranked]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-9
    expected = m2i.TEMPLATE.format(genre=description.genre, bpm=description.bpm, emotion=description.emotion)
    assert description.sentence == expected
    assert description.duration == pytest.approx(30.0, abs=0.01)


def test_describe_resamples_and_downmixes(classifiers_):
    g, e = classifiers_
    at_22k = m2i.describe_music(music(8.0), SR, g, e)
    stereo_44k = np.stack([music(8.0, sr=44100)] * 2)
    at_44k = m2i.describe_music(stereo_44k, 44100, g, e)
    assert at_44k.duration == pytest.approx(8.0, abs=0.01) and at_44k.genre == at_22k.genre
    assert at_44k.genres[0][1] == pytest.approx(at_22k.genres[0][1], abs=0.05)


def test_short_clips_are_padded_not_refused(classifiers_):
    g, e = classifiers_
    description = m2i.describe_music(music(2.0), SR, g, e)  # under one 6 s and one 10 s segment
    assert description.segments == {"genre": 1, "emotion": 1}


@pytest.mark.parametrize(
    "samples,rate,message",
    [
        (np.zeros(SR * 5, np.float32), SR, "silent"),
        (np.full(SR * 5, np.nan, np.float32), SR, "NaN"),
        (np.zeros(0, np.float32), SR, "no audio"),
        (music(5.0), None, "sample rate"),
        (music(61.5), SR, "60"),
    ],
)
def test_describe_refuses_bad_audio(classifiers_, samples, rate, message):
    g, e = classifiers_
    with pytest.raises(InputError, match=message):
        m2i.describe_music(samples, rate, g, e)


# -- the LoRA -------------------------------------------------------------------------------------------


def test_the_tiny_lora_uses_the_old_key_format(lora_folder):
    from safetensors.torch import load_file

    state = load_file(f"{lora_folder}/{m2i.LORA_FILE}")
    key = "unet.down_blocks.2.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight"
    assert key in state and state[key].shape[0] == 4  # rank 4
    assert all(".processor." in k and k.endswith(("lora.down.weight", "lora.up.weight")) for k in state)
    assert all(state[k].abs().sum() > 0 for k in state if k.endswith("up.weight"))


def test_old_format_lora_loads_into_every_attention_and_changes_the_unet(pipe, lora_folder):
    unet = pipe.unet
    torch.manual_seed(0)
    sample, hidden = torch.randn(1, 4, 8, 8), torch.randn(1, 5, unet.config.cross_attention_dim)
    with torch.no_grad():
        before = unet(sample, 10, hidden).sample
    assert m2i.load_lora(pipe, lora_folder) == m2i.DEFAULT_ADAPTER
    assert m2i.load_lora(pipe, lora_folder) == m2i.DEFAULT_ADAPTER  # idempotent
    wrapped = [name for name, module in unet.named_modules() if hasattr(module, "lora_A") and "m2i" in module.lora_A]
    attentions = sum(1 for module in unet.modules() if type(module).__name__ == "Attention")
    assert len(wrapped) == 4 * attentions and attentions > 0  # to_q, to_k, to_v, to_out of each
    with torch.no_grad():
        off = unet(sample, 10, hidden).sample  # load_lora leaves it switched off
        pipe.enable_lora()
        pipe.set_adapters(["m2i"], adapter_weights=[1.0])
        on = unet(sample, 10, hidden).sample
        pipe.disable_lora()
    torch.testing.assert_close(off, before, rtol=0, atol=0)
    assert (on - before).abs().mean() > 1e-3


def test_lora_scale_changes_the_image_and_zero_does_not(pipe, lora_folder):
    m2i.load_lora(pipe, lora_folder)
    base = m2i.generate_image(pipe, "a test", m2i.MusicToImageSettings(seed=3, lora_scale=0.0, **SMALL))
    full = m2i.generate_image(pipe, "a test", m2i.MusicToImageSettings(seed=3, lora_scale=1.0, **SMALL))
    half = m2i.generate_image(pipe, "a test", m2i.MusicToImageSettings(seed=3, lora_scale=0.5, **SMALL))
    again = m2i.generate_image(pipe, "a test", m2i.MusicToImageSettings(seed=3, lora_scale=0.0, **SMALL))
    assert np.abs(pixels(full) - pixels(base)).mean() > 1.0
    assert 0 < np.abs(pixels(half) - pixels(base)).mean() < np.abs(pixels(full) - pixels(base)).mean() + 1e-9
    np.testing.assert_array_equal(pixels(again), pixels(base))  # the LoRA is off again after a call
    assert full.parameters["lora"] == "m2i" and full.parameters["lora_scale"] == 1.0


def test_the_lora_is_fused_for_the_call_same_image_as_adapters_beside_and_exact_weights_after(pipe, lora_folder):
    """Music to image fuses the LoRA into the UNet's weights for the call (no peft adapter runs beside
    the projections): the image equals the unfused adapter path's within float rounding, every UNet
    call inside sees merged layers, and afterwards the base weights are bit for bit what they were."""
    m2i.load_lora(pipe, lora_folder)
    layers = lora.lora_layers(pipe.unet, m2i.DEFAULT_ADAPTER)
    before = {name: tensor.clone() for name, tensor in pipe.unet.state_dict().items()}
    settings = m2i.MusicToImageSettings(seed=5, lora_scale=0.7, **SMALL)

    merged_in_calls = []
    forward = pipe.unet.forward

    def watched(*args, **kwargs):
        merged_in_calls.append(all(layer.merged for layer in layers))
        return forward(*args, **kwargs)

    pipe.unet.forward = watched
    try:
        fused = m2i.generate_image(pipe, "a test", settings)
    finally:
        del pipe.unet.forward
    assert merged_in_calls and all(merged_in_calls), "every UNet call runs on fused weights"
    assert fused.parameters["lora_fused_layers"] == len(layers) > 0
    after = pipe.unet.state_dict()
    assert all(torch.equal(after[name], tensor) for name, tensor in before.items()), "base weights restored exactly"
    assert not any(layer.merged for layer in layers)

    # the old path: the adapter running beside every projection, at the same scale
    from diffusers import StableDiffusionPipeline

    plain = StableDiffusionPipeline(**{k: v for k, v in pipe.components.items() if k != "safety_checker"},
                                    safety_checker=None, requires_safety_checker=False)
    plain.set_progress_bar_config(disable=True)
    pipe.enable_lora()
    pipe.set_adapters([m2i.DEFAULT_ADAPTER], adapter_weights=[0.7])
    try:
        beside = plain(prompt="a test", num_inference_steps=2, guidance_scale=settings.guidance, width=64, height=64,
                       generator=torch.Generator().manual_seed(5), output_type="np").images[0]
    finally:
        pipe.disable_lora()
    np.testing.assert_allclose(np.asarray(fused.image, dtype=np.float32) / 255, beside, atol=1.5 / 255)
    off = m2i.generate_image(pipe, "a test", m2i.MusicToImageSettings(seed=5, lora_scale=0.0, **SMALL))
    assert off.parameters["lora_fused_layers"] == 0
    assert np.abs(pixels(fused) - pixels(off)).mean() > 0.5  # the LoRA did change the picture


def test_lora_from_a_file_path_and_missing_files(studio, lora_folder, tmp_path):
    from diffusers import StableDiffusionPipeline

    fresh = StableDiffusionPipeline.from_pretrained(studio.registry.resolve("sd15").location, safety_checker=None,
                                                    requires_safety_checker=False)
    assert m2i.load_lora(fresh, f"{lora_folder}/{m2i.LORA_FILE}", adapter_name="other") == "other"
    with pytest.raises(ModelUnavailableError, match=m2i.LORA_FILE):
        m2i.load_lora(fresh, tmp_path, adapter_name="missing")


# -- text to image ----------------------------------------------------------------------------------------


def test_generate_from_a_description_is_seeded(pipe, classifiers_):
    g, e = classifiers_
    description = m2i.describe_music(music(7.0), SR, g, e)
    first = m2i.generate_image(pipe, description, m2i.MusicToImageSettings(seed=11, **SMALL))
    second = m2i.generate_image(pipe, description, m2i.MusicToImageSettings(seed=11, **SMALL))
    other = m2i.generate_image(pipe, description, m2i.MusicToImageSettings(seed=12, **SMALL))
    assert first.image.size == (64, 64) and first.prompt == description.sentence
    np.testing.assert_array_equal(pixels(first), pixels(second))
    assert not np.array_equal(pixels(first), pixels(other))
    assert first.parameters["seed"] == 11 and first.parameters["bpm"] == description.bpm
    assert first.parameters["genres"] == description.genres


def test_generation_can_be_cancelled(pipe):
    calls = []

    def stop():
        calls.append(1)
        return True

    with pytest.raises(Cancelled):
        m2i.generate_image(pipe, "a test", m2i.MusicToImageSettings(steps=5, width=64, height=64), should_stop=stop)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"width": 100}, "multiple of 8"),
        ({"height": 2048}, "height must be a whole number from 64 to 1024"),
        ({"steps": 0}, "steps must be a whole number from 1 to 100"),
        ({"steps": 101}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"guidance": 25.0}, "guidance must be a number from 0 to 20"),
        ({"guidance": float("nan")}, "guidance"),
        ({"seed": -1}, "seed"),
        ({"lora_scale": 3.0}, "LoRA scale"),
        ({"description": "   "}, "prompt is empty"),
        ({"description": "x" * 1001}, "at most 1000"),
        ({"negative_prompt": 5}, "negative prompt"),
    ],
)
def test_bad_generation_arguments_raise_clear_input_errors(pipe, changes, message):
    arguments = {"description": "a test", **SMALL, **changes}
    description = arguments.pop("description")
    with pytest.raises(InputError, match="(?i)" + message):
        m2i.generate_image(pipe, description, m2i.MusicToImageSettings(**arguments))


def test_the_sentence_states_int_of_librosas_tempo_and_the_refined_one_is_shown_beside_it(classifiers_):
    from classifiers.tempo import estimate_tempo

    g, e = classifiers_
    clip = music(12.0, 120)
    librosa_bpm = estimate_tempo(clip, SR).librosa_bpm  # 117.45 at 22050 Hz / hop 512: TechJam said 117
    description = m2i.describe_music(clip, SR, g, e)
    assert description.bpm == int(librosa_bpm) != round(description.refined_bpm)
    assert f"It is of tempo {int(librosa_bpm)} and" in description.sentence
    assert description.tempo_text == f"{int(librosa_bpm)} BPM (refined {description.refined_bpm:.1f})"


@pytest.mark.parametrize("seconds", [10.0, 0.2])
def test_a_sound_without_a_beat_says_so_instead_of_tempo_0(classifiers_, seconds):
    g, e = classifiers_
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * SR)) / SR).astype(np.float32)
    description = m2i.describe_music(tone, SR, g, e)
    assert description.bpm is None and description.tempo_text == "no steady beat"
    assert "It has no steady beat and evokes" in description.sentence and "tempo 0" not in description.sentence
