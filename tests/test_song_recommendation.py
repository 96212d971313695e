"""Song recommendation by lyric similarity: mean pooling, ranking, the shipped lyrics (tiny embedder)."""

import json

import numpy as np
import pytest
import torch

from core.errors import InputError
from pipelines.models import loaders
from pipelines.systems import song_recommendation as sr


@pytest.fixture(scope="module")
def embedder(studio):
    """(model, tokenizer) of the tiny sentence embedder, as the studio holds it."""
    held = studio.manager.get_cpu("sentence_embedder")
    return held.model, held.processor


def test_sample_lyrics_are_the_projects_own():
    data = json.loads(sr.SAMPLE_LYRICS.read_text())
    index = sr.sample_index()
    assert len(index) == len(data["songs"]) >= 20
    assert len(set(index.lines)) == len(index.lines)  # no line in two songs: the ranking test relies on it
    assert all(len(song.lines) >= 3 for song in index.songs)


def test_mean_pooling_ignores_padding(embedder):
    model, tokenizer = embedder
    alone = sr.embed_sentences(model, tokenizer, ["a cat"])
    batched = sr.embed_sentences(model, tokenizer, ["a cat", "a much longer sentence that needs padding"])
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=0)
    assert torch.linalg.vector_norm(batched, dim=1).sub(1).abs().max() < 1e-5


def test_song_with_the_caption_as_a_line_ranks_first(embedder):
    model, tokenizer = embedder
    caption = "waves crash against the old lighthouse"
    index = sr.SongIndex([
        sr.Song("A", "Crowd", ("the city sleeps tonight", "we dance in the rain", "the lighthouse is old")),
        sr.Song("B", "Target", ("paper boats on a pond", caption, "a kite above the hill")),
        sr.Song("C", "Other", ("sun on the snow", "waves crash against the pier")),
    ])
    # only the best line kept: the song holding the caption wins with a perfect score
    (best,) = sr.recommend(model, tokenizer, index=index, caption=caption, k=1, top_lines=1)
    assert (best.title, best.lines[0][0]) == ("Target", caption)
    assert best.score == pytest.approx(1.0, abs=1e-5)


def test_recommend_over_the_shipped_lyrics(embedder):
    model, tokenizer = embedder
    index = sr.sample_index()
    target = index.songs[7]
    caption = target.lines[2]
    (top,) = sr.recommend(model, tokenizer, index=None, caption=caption, k=1, top_lines=1)
    assert (top.artist, top.title) == (target.artist, target.title)
    songs = sr.recommend(model, tokenizer, index=None, caption=caption)  # the original's 100 lines, 10 songs
    assert len(songs) == 10
    scores = [song.score for song in songs]
    assert scores == sorted(scores, reverse=True)
    for song in songs:
        assert song.score == pytest.approx(np.mean([s for _, s in song.lines]))
        assert [s for _, s in song.lines] == sorted((s for _, s in song.lines), reverse=True)
    # 80 lines: all within the top 100
    every = sr.recommend(model, tokenizer, index=None, caption=caption, k=len(index))
    lines = {line: score for song in every for line, score in song.lines}
    assert len(lines) == len(index.lines)
    assert lines[caption] == pytest.approx(1.0, abs=1e-5) and max(lines.values()) == lines[caption]


def test_line_embeddings_are_cached_per_embedder(embedder, studio):
    model, tokenizer = embedder
    index = sr.SongIndex.from_file(sr.SAMPLE_LYRICS)
    first = index.embeddings(model, tokenizer)
    assert index.embeddings(model, tokenizer) is first
    other_bundle = loaders.load_sentence_embedder(studio.registry.resolve("sentence_embedder").location)
    other, other_tokenizer = other_bundle.model, other_bundle.processor
    assert index.embeddings(other, other_tokenizer) is not first


def test_index_from_csv_matches_json(tmp_path):
    index = sr.sample_index()
    path = tmp_path / "songs.csv"
    rows = ["artist,title,line"] + [f'"{s.artist}","{s.title}","{line}"' for s in index.songs for line in s.lines]
    path.write_text("\n".join(rows) + "\n")
    assert sr.SongIndex.from_file(path).songs == index.songs


@pytest.mark.parametrize("change", [{"caption": ""}, {"caption": 3}, {"k": 0}, {"k": 2.5}, {"top_lines": 0}])
def test_bad_recommendation_arguments(embedder, change):
    arguments = {"caption": "a calm sea", "k": 10, **change}
    with pytest.raises(InputError):
        sr.recommend(*embedder, index=None, **arguments)


def test_the_embedders_own_sequence_limit_is_used(embedder):
    """all-distilroberta-v1's max_seq_length is 512 (514 positions less RoBERTa's offset of 2), not 128."""
    from transformers import RobertaConfig, RobertaModel

    _, tokenizer = embedder
    config = RobertaConfig(vocab_size=tokenizer.vocab_size + 1, hidden_size=8, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=16, max_position_embeddings=514, pad_token_id=1)
    model = RobertaModel(config, add_pooling_layer=False).eval()
    tokenizer = type(tokenizer).from_pretrained(tokenizer.name_or_path, model_max_length=512)
    assert sr.max_tokens(model, tokenizer) == 512
    words = "a long caption " * 40  # 600 byte-level tokens
    full = tokenizer([words], truncation=True, max_length=512, return_tensors="pt")
    assert full["input_ids"].shape[1] == 512
    with torch.no_grad():
        hidden = model(**full).last_hidden_state.mean(1)
    expected = torch.nn.functional.normalize(hidden, dim=1)
    torch.testing.assert_close(sr.embed_sentences(model, tokenizer, [words]), expected, atol=1e-5, rtol=0)
