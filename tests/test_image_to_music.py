"""Image to music: BLIP caption, MusicGen audio, and song recommendation by lyric similarity (tiny models)."""

import json
import math
import time

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines import image_to_music as i2m
from pipelines import limits, loaders, tiny
from core.errors import Cancelled, InputError
from pipelines.models import ModelRegistry, load_or_explain

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
        i2m.caption_image(*blip, noise_image(0), max_new_tokens=0)


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


# -- recommendation -------------------------------------------------------------------------------------


def test_sample_lyrics_are_the_projects_own():
    data = json.loads(i2m.SAMPLE_LYRICS.read_text())
    index = i2m.sample_index()
    assert len(index) == len(data["songs"]) >= 20
    assert len(set(index.lines)) == len(index.lines)  # no line in two songs: the ranking test relies on it
    assert all(len(song.lines) >= 3 for song in index.songs)


def test_mean_pooling_ignores_padding(embedder):
    model, tokenizer = embedder
    alone = i2m.embed_sentences(model, tokenizer, ["a cat"])
    batched = i2m.embed_sentences(model, tokenizer, ["a cat", "a much longer sentence that needs padding"])
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=0)
    assert torch.linalg.vector_norm(batched, dim=1).sub(1).abs().max() < 1e-5


def test_song_with_the_caption_as_a_line_ranks_first(embedder):
    model, tokenizer = embedder
    caption = "waves crash against the old lighthouse"
    index = i2m.SongIndex([
        i2m.Song("A", "Crowd", ("the city sleeps tonight", "we dance in the rain", "the lighthouse is old")),
        i2m.Song("B", "Target", ("paper boats on a pond", caption, "a kite above the hill")),
        i2m.Song("C", "Other", ("sun on the snow", "waves crash against the pier")),
    ])
    # only the best line kept: the song holding the caption wins with a perfect score
    (best,) = i2m.recommend(model, tokenizer, index, caption, k=1, top_lines=1)
    assert (best.title, best.lines[0][0]) == ("Target", caption)
    assert best.score == pytest.approx(1.0, abs=1e-5)


def test_recommend_over_the_shipped_lyrics(embedder):
    model, tokenizer = embedder
    index = i2m.sample_index()
    target = index.songs[7]
    caption = target.lines[2]
    (top,) = i2m.recommend(model, tokenizer, None, caption, k=1, top_lines=1)
    assert (top.artist, top.title) == (target.artist, target.title)
    songs = i2m.recommend(model, tokenizer, None, caption)  # the original's 100 lines, 10 songs
    assert len(songs) == 10
    scores = [song.score for song in songs]
    assert scores == sorted(scores, reverse=True)
    for song in songs:
        assert song.score == pytest.approx(np.mean([s for _, s in song.lines]))
        assert [s for _, s in song.lines] == sorted((s for _, s in song.lines), reverse=True)
    every = i2m.recommend(model, tokenizer, None, caption, k=len(index))  # 80 lines: all within the top 100
    lines = {line: score for song in every for line, score in song.lines}
    assert len(lines) == len(index.lines)
    assert lines[caption] == pytest.approx(1.0, abs=1e-5) and max(lines.values()) == lines[caption]


def test_line_embeddings_are_cached_per_embedder(embedder, registry):
    model, tokenizer = embedder
    index = i2m.SongIndex.from_file(i2m.SAMPLE_LYRICS)
    first = index.embeddings(model, tokenizer)
    assert index.embeddings(model, tokenizer) is first
    other_bundle = loaders.load_sentence_embedder(registry.resolve("sentence_embedder").location)
    other, other_tokenizer = other_bundle.model, other_bundle.processor
    assert index.embeddings(other, other_tokenizer) is not first


def test_index_from_csv_matches_json(tmp_path):
    index = i2m.sample_index()
    path = tmp_path / "songs.csv"
    rows = ["artist,title,line"] + [f'"{s.artist}","{s.title}","{line}"' for s in index.songs for line in s.lines]
    path.write_text("\n".join(rows) + "\n")
    assert i2m.SongIndex.from_file(path).songs == index.songs


@pytest.mark.parametrize("change", [{"caption": ""}, {"caption": 3}, {"k": 0}, {"k": 2.5}, {"top_lines": 0}])
def test_bad_recommendation_arguments(embedder, change):
    arguments = {"caption": "a calm sea", "k": 10, **change}
    with pytest.raises(InputError):
        i2m.recommend(*embedder, None, **arguments)


def test_a_bundle_is_what_the_device_manager_can_hold(musicgen):
    from pipelines.device import model_nbytes

    model, processor = musicgen
    held = loaders.ModelBundle(model=model, processor=processor)
    assert held.to("cpu") is held and held.processor is processor
    assert model_nbytes(held) == model_nbytes(model) > 0
