"""The Keras classifiers' recipe (``training.classifiers``): the originals' defaults and Emotify's ratings
as majority labels."""

from __future__ import annotations

import pytest

from core.errors import InputError
from training_toys import write_tone


# -- classifiers: the originals' defaults and Emotify's ratings ------------------------------------------


def test_classifier_defaults_are_the_originals():
    from training import classifiers

    genre = classifiers.TASKS["genre"]
    assert (genre.learning_rate, genre.epochs, genre.batch_size) == (1e-3, 50, 32)
    args_seen = {}

    def fake_train(task, data_dir, out, **kwargs):
        args_seen.update(kwargs, task=task, data_dir=data_dir, out=out)
        raise InputError("stop here")

    import unittest.mock as mock

    with mock.patch.object(classifiers, "train", fake_train):
        assert classifiers.main(["genre", "--data", "gtzan", "--output", "models/genre"]) == 2
    assert args_seen["data_dir"] == "gtzan" and args_seen["out"] == "models/genre" and args_seen["epochs"] is None


def test_emotify_ratings_become_majority_labels(tmp_path):
    from training import classifiers

    header = ("track id, genre, amazement, solemnity, tenderness, nostalgia, calmness, power, joyful_activation, "
              "tension, sadness, mood, liked, disliked, age, gender, mother tongue")
    rows = [
        "1, classical, 0, 1, 0, 0, 1, 0, 0, 0, 0, 3, 1, 0, 30, 0, English",
        "1, classical, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 1, 0, 31, 1, Dutch",
        "102, rock, 0, 0, 0, 0, 0, 1, 1, 0, 0, 3, 1, 0, 25, 1, Dutch",
        "102, rock, 0, 0, 0, 0, 0, 0, 1, 0, 0, 3, 1, 0, 22, 0, English",
    ]
    ratings = tmp_path / "data.csv"
    ratings.write_text("\n".join([header, *rows]) + "\n")
    for genre, number in (("classical", 1), ("rock", 2)):
        write_tone(tmp_path / "audio" / genre / f"{number}.wav", 300)
    items = classifiers.emotify_items(ratings, tmp_path / "audio")
    assert items == [(tmp_path / "audio" / "classical" / "1.wav", "solemnity"),
                     (tmp_path / "audio" / "rock" / "2.wav", "joyfulness")]
    (tmp_path / "audio" / "rock" / "2.wav").unlink()
    with pytest.raises(InputError, match="Emotify track 102"):
        classifiers.emotify_items(ratings, tmp_path / "audio")
    ratings.write_text("track id, genre, amazement\n1, rock, 1\n")
    with pytest.raises(InputError, match="no column solemnity"):
        classifiers.emotify_items(ratings, tmp_path / "audio")
