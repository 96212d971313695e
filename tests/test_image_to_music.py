"""Image to music: BLIP caption, MusicGen audio, and song recommendation by lyric similarity (tiny models)."""

import math
import time

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.systems import image_to_music as i2m
from pipelines.schema import limits
from pipelines.models import loaders
from pipelines.models.building import tiny
from core.errors import Cancelled, InputError
from pipelines.models.registry import ModelRegistry, load_or_explain

RATE = 32000  # musicgen-small's EnCodec rate, which the tiny one keeps
FRAME = RATE // 50


@pytest.fixture(scope="module")
def registry():
    return ModelRegistry("tiny", builder=tiny)


@pytest.fixture(scope="module")
def blip(registry):
    bundle = load_or_explain(registry.resolve("blip"), loaders.load_blip)
    return bundle.model, bundle.processor


@pytest.fixture(scope="module")
def musicgen(registry):
    bundle = load_or_explain(registry.resolve("musicgen"), loaders.load_musicgen)
    return bundle.model, bundle.processor


@pytest.fixture(scope="module")
def embedder(registry):
    bundle = load_or_explain(registry.resolve("sentence_embedder"), loaders.load_sentence_embedder)
    return bundle.model, bundle.processor


def noise_image(seed: int, size=(120, 90)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


# -- the tiny models ------------------------------------------------------------------------------------


def test_tiny_models_have_the_real_classes(blip, musicgen, embedder):
    from transformers import (
        BlipForConditionalGeneration,
        BlipProcessor,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
        RobertaModel,
    )

    model, processor = blip
    assert isinstance(model, BlipForConditionalGeneration) and isinstance(processor, BlipProcessor)
    assert processor.tokenizer.bos_token == "[DEC]" and processor.tokenizer.bos_token_id == model.config.text_config.bos_token_id
    model, processor = musicgen
    assert isinstance(model, MusicgenForConditionalGeneration) and isinstance(processor, MusicgenProcessor)
    assert model.config.audio_encoder.sampling_rate == RATE and model.config.audio_encoder.frame_rate == 50
    assert model.decoder.num_codebooks == 4
    tokens = processor.tokenizer("a calm piano").input_ids
    assert processor.tokenizer.unk_token_id not in tokens and tokens[-1] == processor.tokenizer.eos_token_id
    model, tokenizer = embedder
    assert isinstance(model, RobertaModel)
    assert tokenizer.decode(tokenizer("Rain, on a window!").input_ids, skip_special_tokens=True) == "Rain, on a window!"


# -- captioning -----------------------------------------------------------------------------------------


def test_caption_is_deterministic_and_depends_on_the_image(blip, tmp_path):
    model, processor = blip
    first = i2m.caption_image(model, processor, noise_image(0))
    assert isinstance(first, str) and first.strip() == first and first
    assert i2m.caption_image(model, processor, noise_image(0)) == first
    path = tmp_path / "picture.png"
    noise_image(0).save(path)
    assert i2m.caption_image(model, processor, str(path)) == first  # a path reads the same pixels
    captions = {i2m.caption_image(model, processor, Image.new("RGB", (64, 64), c)) for c in ("red", "white")}
    assert first not in captions  # the picture reaches the decoder


def test_caption_converts_other_modes(blip):
    model, processor = blip
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 255))
    assert i2m.caption_image(model, processor, rgba) == i2m.caption_image(model, processor, Image.new("RGB", (40, 40), "red"))
    assert isinstance(i2m.caption_image(model, processor, Image.new("L", (40, 40), 128)), str)
    assert i2m.load_image(np.zeros((20, 30), dtype=np.uint8)).size == (30, 20)


@pytest.mark.parametrize("bad", ["text", "missing", 42, "tiny", "huge"])
def test_caption_rejects_what_is_not_a_usable_picture(blip, tmp_path, bad):
    model, processor = blip
    text = tmp_path / "photo.png"
    text.write_text("not an image")
    image = {"text": str(text), "missing": str(tmp_path / "nope.jpg"), "42": 42, "tiny": Image.new("RGB", (4, 4)),
             "huge": Image.new("L", (limits.MAX_INPUT_IMAGE_SIDE + 1, 16))}[str(bad)]
    with pytest.raises(InputError):
        i2m.caption_image(model, processor, image)


def test_caption_length_is_checked(blip):
    with pytest.raises(InputError):
        i2m.caption_image(*blip, noise_image(0), max_length=1)


def test_caption_length_counts_the_start_token_as_blips_default(blip, monkeypatch):
    model, processor = blip
    produced = []
    generate = model.generate

    def spy(*args, **kwargs):
        tokens = generate(*args, **kwargs)
        produced.append(tokens.shape[1])
        return tokens

    monkeypatch.setattr(model, "generate", spy)
    i2m.caption_image(model, processor, noise_image(0))  # the tiny BLIP's end token is biased away: it runs to the limit
    assert produced == [20]  # the start token and 19 more, as the original's generate() with BLIP's max_length 20


# -- music ----------------------------------------------------------------------------------------------


def test_music_has_the_requested_duration_and_rate(blip, musicgen, capsys):
    start = time.perf_counter()
    caption = i2m.caption_image(*blip, noise_image(1))
    captioned = time.perf_counter()
    result = i2m.generate_music(*musicgen, caption, i2m.ImageToMusicSettings(seconds=10.0, seed=3))
    done = time.perf_counter()
    with capsys.disabled():
        print(f"\n[timing] tiny BLIP caption {captioned - start:.2f} s, tiny MusicGen 10 s of audio "
              f"{done - captioned:.2f} s (CPU)")
    assert result.sample_rate == RATE and result.prompt == caption
    assert result.audio.dtype == np.float32 and result.audio.shape[0] == 1
    assert abs(result.audio.shape[1] - 10 * RATE) <= FRAME
    assert np.isfinite(result.audio).all() and 0.5 < np.abs(result.audio).max() <= 1.0
    assert result.parameters["seed"] == 3 and result.parameters["seconds"] == 10.0


@pytest.mark.parametrize("seconds", [1.0, 2.3])
def test_short_durations(musicgen, seconds):
    result = i2m.generate_music(*musicgen, "soft rain on a window", i2m.ImageToMusicSettings(seconds=seconds))
    assert abs(result.audio.shape[1] - seconds * RATE) <= FRAME
    assert result.duration == pytest.approx(seconds, abs=1 / 50)


def test_same_seed_same_audio_and_global_rng_untouched(musicgen):
    state = torch.random.get_rng_state()
    a = i2m.generate_music(*musicgen, "a dog in a field", i2m.ImageToMusicSettings(seconds=1.0, seed=7))
    assert torch.equal(torch.random.get_rng_state(), state)
    b = i2m.generate_music(*musicgen, "a dog in a field", i2m.ImageToMusicSettings(seconds=1.0, seed=7))
    c = i2m.generate_music(*musicgen, "a dog in a field", i2m.ImageToMusicSettings(seconds=1.0, seed=8))
    np.testing.assert_array_equal(a.audio, b.audio)
    assert not np.allclose(a.audio, c.audio)


def test_both_guidance_branches_go_in_one_decoder_forward_per_frame(musicgen):
    """transformers 5.23's MusicGen generate already batches classifier-free guidance: one decoder
    forward per generated step, on 2 x codebooks rows (conditional and unconditional together), and
    the same seed gives the same tokens with it as before (the run is repeated)."""
    model, processor = musicgen
    rows = []
    handle = model.decoder.register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    try:
        first = i2m.generate_music(model, processor, "a calm lake", i2m.ImageToMusicSettings(seconds=1.0, guidance=3.0))
    finally:
        handle.remove()
    codebooks = model.decoder.num_codebooks
    frames = math.ceil(1.0 * model.config.audio_encoder.frame_rate)
    # one forward per generated step of the delay pattern (frames + codebooks - 1), plus the extra prefill
    # generate() runs and never reads (see image_to_music._StaticDecoding)
    assert len(rows) == frames + codebooks - 1 + 1
    assert set(rows) == {2 * codebooks}
    again = i2m.generate_music(model, processor, "a calm lake", i2m.ImageToMusicSettings(seconds=1.0, guidance=3.0))
    np.testing.assert_array_equal(first.audio, again.audio)


def test_the_frame_watch_never_reads_a_device_value():
    """The stopping criterion polled after every token answers with a tensor made on the tokens'
    device without reading any (meta tensors have no values: any read would raise), so it adds no
    per-token GPU sync of its own."""
    watch = i2m._FrameWatch(should_stop=lambda: False, on_progress=lambda *a: None, total_frames=100,
                            frame_rate=50, delay=3)
    tokens = torch.empty((8, 5), dtype=torch.long, device="meta")
    for _ in range(60):
        answer = watch(tokens, torch.empty((8, 2048), device="meta"))
    assert answer.device.type == "meta" and answer.shape == (8,) and answer.dtype == torch.bool
    watch.should_stop = lambda: True
    assert watch(tokens, None).device.type == "meta" and watch.stopped


def test_cancel_stops_generation(musicgen):
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) >= 3

    start = time.perf_counter()
    with pytest.raises(Cancelled):
        i2m.generate_music(*musicgen, "a dog in a field", i2m.ImageToMusicSettings(seconds=30.0), should_stop=should_stop)
    assert len(calls) == 3  # stopped at the first True, not after 1500 frames
    assert time.perf_counter() - start < 3.0


@pytest.mark.parametrize("change", [
    {"prompt": ""}, {"prompt": "   "}, {"prompt": None}, {"prompt": "x" * (limits.MAX_PROMPT_CHARS + 1)},
    {"seconds": 0}, {"seconds": 1000}, {"seconds": math.nan}, {"seconds": "10"}, {"seconds": True},
    {"guidance": math.nan}, {"guidance": -1.0}, {"temperature": 0.0}, {"top_k": -1}, {"top_k": 2.5},
    {"top_p": 1.5}, {"seed": -1}, {"seed": 1.5},
])
def test_bad_music_arguments(musicgen, change):
    arguments = {"prompt": "calm piano", "seconds": 1.0, **change}
    prompt = arguments.pop("prompt")
    with pytest.raises(InputError):
        i2m.generate_music(*musicgen, prompt, i2m.ImageToMusicSettings(**arguments))


def test_a_bundle_is_what_the_device_manager_can_hold(musicgen):
    from pipelines.models.memory import model_nbytes

    model, processor = musicgen
    held = loaders.ModelBundle(model=model, processor=processor)
    assert held.to("cpu") is held and held.processor is processor
    assert model_nbytes(held) == model_nbytes(model) > 0


def test_guidance_at_or_below_1_means_no_classifier_free_guidance(musicgen):
    model, processor = musicgen
    runs = {g: i2m.generate_music(model, processor, "a calm lake", i2m.ImageToMusicSettings(seconds=1.0, guidance=g))
            for g in (0.5, 1.0, 3.0)}  # 0.5 crashed inside the library before
    np.testing.assert_array_equal(runs[0.5].audio, runs[1.0].audio)
    assert not np.array_equal(runs[1.0].audio, runs[3.0].audio)  # the model config's default 3 is not used


def test_past_the_window_the_music_continues_from_its_own_end(musicgen, monkeypatch):
    """Windows of 2 s prompted by their last 1 s (the real ones: 30 s and 12 s): 4.5 s takes 4 windows."""
    monkeypatch.setattr(i2m, "WINDOW_SECONDS", 2.0)
    monkeypatch.setattr(i2m, "OVERLAP_SECONDS", 1.0)
    progress = []
    result = i2m.generate_music(*musicgen, "a long walk", i2m.ImageToMusicSettings(seconds=4.5, seed=5),
                                on_progress=lambda fraction, message: progress.append((fraction, message)))
    assert result.audio.shape == (1, int(4.5 * RATE)) and result.parameters["windows"] == 4
    assert [message for _, message in progress] == [f"{s} of 5 s" for s in range(1, 5)]  # one per generated second
    assert all(a <= b for (a, _), (b, _) in zip(progress, progress[1:]))
    again = i2m.generate_music(*musicgen, "a long walk", i2m.ImageToMusicSettings(seconds=4.5, seed=5))
    np.testing.assert_array_equal(result.audio, again.audio)  # the seed covers every window


def test_up_to_120_seconds_are_accepted():
    i2m.ImageToMusicSettings(seconds=120).validate()
    with pytest.raises(InputError, match="maximum|120"):
        i2m.ImageToMusicSettings(seconds=121).validate()
