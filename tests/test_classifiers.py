"""The TechJam classifiers: features as the originals, .h5 loading, whole-track prediction, tempo, training."""

import numpy as np
import pytest

import classifiers  # noqa: F401  (KERAS_BACKEND=torch)
from classifiers import emotion, features, genre
from classifiers.tempo import estimate_tempo
from core.errors import InputError, ModelUnavailableError

SR = features.SAMPLE_RATE


def tone(seconds: float, freq: float = 440.0, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


def click_track(bpm: float, seconds: float = 20.0) -> np.ndarray:
    y = np.zeros(int(seconds * SR), np.float32)
    t = np.arange(int(0.02 * SR)) / SR
    click = (np.sin(2 * np.pi * 1000 * t) * np.exp(-t * 200)).astype(np.float32)
    for start in np.arange(0.5, seconds - 0.05, 60.0 / bpm):
        i = int(start * SR)
        y[i : i + click.size] += click[: y.size - i]
    return y


@pytest.fixture(scope="module")
def tiny_genre(studio):
    return genre.load(studio.registry.resolve("genre_classifier").location)


@pytest.fixture(scope="module")
def tiny_emotion(studio):
    return emotion.load(studio.registry.resolve("emotion_classifier").location)


# -- features -----------------------------------------------------------------------------------------


def test_shapes_are_the_originals():
    assert features.GENRE_INPUT_SHAPE == (259, 13, 1)
    assert features.EMOTION_INPUT_SHAPE == (1024, 431, 1)


def test_genre_features_equal_librosa_mfcc_per_segment_transposed():
    import librosa

    x = tone(15.0, 330.0)  # 2 full 6 s segments + a 3 s tail (half a segment: scored as the last 6 s)
    feats = features.genre_features(x)
    assert feats.shape == (3, 259, 13, 1) and feats.dtype == np.float32
    seg = features.GENRE_SEGMENT_SAMPLES
    for k, start in enumerate([0, seg, x.size - seg]):
        expected = librosa.feature.mfcc(y=x[start : start + seg], sr=SR, n_mfcc=13, n_fft=2048, hop_length=512).T
        np.testing.assert_allclose(feats[k, :, :, 0], expected, rtol=1e-4, atol=1e-3)


def test_emotion_features_equal_librosa_log_stft_without_last_bin():
    import librosa

    x = tone(12.0, 1000.0)  # one 10 s segment; the 2 s tail is under half a segment: dropped
    feats = features.emotion_features(x)
    assert feats.shape == (1, 1024, 431, 1)
    stft = librosa.stft(x[: features.EMOTION_SEGMENT_SAMPLES], n_fft=2048, hop_length=512)
    expected = librosa.amplitude_to_db(np.abs(stft)[:-1])
    np.testing.assert_allclose(feats[0, :, :, 0], expected, rtol=1e-5, atol=1e-4)
    # (frequency, time), not transposed: a 1 kHz tone peaks in bin 1000 / (22050 / 2048) ~ 93
    assert abs(int(np.median(feats[0, :, :, 0].argmax(axis=0))) - 93) <= 1


def test_emotion_features_use_the_raw_signal_not_a_normalised_one():
    quiet, loud = tone(10.0, noise=0.0) * 0.1, tone(10.0, noise=0.0)
    difference = features.emotion_features(loud) - features.emotion_features(quiet)
    assert np.median(difference) == pytest.approx(20.0, abs=0.5)  # x10 amplitude = +20 dB


@pytest.mark.parametrize("seconds", [0.5, 3.0, 5.99])
def test_short_clips_are_zero_padded_to_one_segment(seconds):
    x = tone(seconds)
    padded = np.pad(x, (0, features.EMOTION_SEGMENT_SAMPLES - x.size))
    np.testing.assert_array_equal(features.emotion_features(x), features.emotion_input(padded[np.newaxis]))
    assert features.genre_features(x).shape == (1, 259, 13, 1)


def test_segment_starts_cover_the_track():
    seg = 100
    assert features.segment_starts(50, seg) == [0]
    assert features.segment_starts(100, seg) == [0]
    assert features.segment_starts(340, seg) == [0, 100, 200]  # 40 left: under half, dropped
    assert features.segment_starts(360, seg) == [0, 100, 200, 260]  # 60 left: scored as the last 100


@pytest.mark.parametrize("bad", [np.zeros(0), np.full(1000, np.nan), np.zeros((2, 2, 100)), np.array(["a", "b"])])
def test_bad_samples_raise_input_errors(bad):
    with pytest.raises(InputError):
        features.genre_features(bad)


# -- the models ------------------------------------------------------------------------------------------


def test_architectures_match_the_original_parameter_counts():
    # 568,522 params x 4 bytes x 3 (weights + Adam's two slots) ~ 6.9 MB, the original file's size
    assert genre.build_model().count_params() == 568_522
    model = emotion.build_model()
    assert model.count_params() == 20_496_713  # x 12 bytes ~ 246 MB, the original file's size
    assert [type(layer).__name__ for layer in model.layers].count("BatchNormalization") == 9


def test_tiny_h5_files_have_the_original_names_and_layer_types(studio, tiny_genre, tiny_emotion):
    assert tiny_genre.path.name == "Genre_classifier_model.h5" and tiny_emotion.path.name == "emotion_model.h5"
    assert tiny_genre.input_shape == (259, 13, 1) and tiny_emotion.input_shape == (1024, 431, 1)
    real = [type(layer).__name__ for layer in genre.build_model().layers]
    assert [type(layer).__name__ for layer in tiny_genre.model.layers] == real
    real = [type(layer).__name__ for layer in emotion.build_model().layers]
    assert [type(layer).__name__ for layer in tiny_emotion.model.layers] == real


def test_build_and_load_weights_equals_keras_load_model(tiny_genre):
    import keras

    reference = keras.models.load_model(str(tiny_genre.path), compile=False)
    x = features.genre_features(tone(12.0))
    expected = np.asarray(reference.predict(x, verbose=0))
    np.testing.assert_allclose(tiny_genre.predict_features(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("module,fixture", [(genre, "tiny_genre"), (emotion, "tiny_emotion")])
def test_saved_and_reloaded_h5_gives_identical_predictions(module, fixture, request, tmp_path):
    classifier = request.getfixturevalue(fixture)
    classifier.model.save(str(tmp_path / module.WEIGHTS_FILE))
    reloaded = module.load(tmp_path)
    x = tone(11.0, 220.0)
    before, after = classifier.classify(x), reloaded.classify(x)
    np.testing.assert_array_equal(before.probabilities, after.probabilities)
    assert not np.allclose(before.probabilities, before.probabilities.mean())  # not a constant model


def test_whole_track_prediction_averages_segments_and_ranks(tiny_genre):
    x = np.concatenate([tone(6.0, 110.0), tone(6.0, 2000.0, seed=1), tone(6.0, 600.0, seed=2)])
    result = tiny_genre.classify(x)
    assert result.segments == 3 and result.labels == genre.GENRES
    per_segment = tiny_genre.predict_features(features.genre_features(x))
    np.testing.assert_allclose(result.probabilities, per_segment.mean(axis=0), rtol=1e-6)
    assert result.probabilities.sum() == pytest.approx(1.0)
    ranked = result.ranked()
    assert [p for _, p in ranked] == sorted((p for _, p in ranked), reverse=True)
    assert {label for label, _ in ranked} == set(genre.GENRES) and result.label == ranked[0][0]
    np.testing.assert_array_equal(tiny_genre.classify(x).probabilities, result.probabilities)  # deterministic


def test_emotion_labels_in_the_original_order(tiny_emotion):
    assert emotion.EMOTIONS == ("amazement", "solemnity", "tenderness", "nostalgia", "calmness", "power",
                                "joyfulness", "tension", "sadness")
    result = tiny_emotion.classify(tone(4.0))  # under 10 s: the original crashed here
    assert result.segments == 1 and len(result.ranked()) == 9


def test_loaders_explain_missing_and_wrong_files(tmp_path, tiny_genre):
    with pytest.raises(ModelUnavailableError, match="Genre_classifier_model.h5"):
        genre.load(tmp_path)
    with pytest.raises(ModelUnavailableError, match="emotion CNN"):
        emotion.load(tiny_genre.path)
    (tmp_path / "emotion_model.h5").write_bytes(b"not hdf5")
    with pytest.raises(ModelUnavailableError, match="not a readable Keras HDF5"):
        emotion.load(tmp_path)


def test_wrong_feature_shape_is_refused(tiny_genre):
    with pytest.raises(InputError, match="259, 13, 1"):
        tiny_genre.predict_features(np.zeros((1, 13, 259, 1), np.float32))


# -- tempo ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bpm", [90, 120, 150])
def test_tempo_of_click_tracks(bpm):
    result = estimate_tempo(click_track(bpm))
    assert abs(result.bpm - bpm) <= 2, (result.bpm, result.librosa_bpm)
    assert abs(result.bpm_int - bpm) <= 2
    assert np.median(np.diff(result.beat_times)) == pytest.approx(60 / bpm, abs=0.03)


# -- training ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_dataset(tmp_path_factory):
    """Two labels, five 6.5 s clips each: low tones ('blues') against bright noise ('metal')."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("gtzan")
    for label in ("blues", "metal"):
        (root / label).mkdir()
        for i in range(5):
            if label == "blues":
                x = tone(6.5, 100.0 + 20 * i, noise=0.01, seed=i)
            else:
                x = (0.3 * np.random.default_rng(100 + i).standard_normal(int(6.5 * SR))).astype(np.float32)
            sf.write(root / label / f"{label}.{i:05d}.wav", x, SR)
    return root


@pytest.mark.slow
def test_train_cli_prints_accuracy_and_saves_a_loadable_model(synthetic_dataset, tmp_path, capsys):
    from training import classifiers as train

    code = train.main(["genre", str(synthetic_dataset), "--out", str(tmp_path), "--epochs", "15",
                       "--learning-rate", "0.001", "--validation", "0.4"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "held-out accuracy" in out and "trained on 6 tracks, held out 4" in out
    accuracy = float(out.split("held-out accuracy: ")[1].split()[0])
    assert accuracy == 1.0, out  # trivially separable classes
    model = genre.load(tmp_path)
    assert model.model.output_shape[-1] == 10  # all genres, whatever subset was trained


def test_train_from_csv_and_label_errors(synthetic_dataset, tmp_path):
    from training import classifiers as train

    files = sorted(synthetic_dataset.rglob("*.wav"))
    rows = ["path,label"] + [f"{p.relative_to(synthetic_dataset)},{p.parent.name}" for p in files]
    (synthetic_dataset / "labels.csv").write_text("\n".join(rows) + "\n")
    result = train.train("genre", out=tmp_path, csv_path=synthetic_dataset / "labels.csv", epochs=1, filters=(2, 2, 2))
    assert result.path.is_file() and 0.0 <= result.accuracy <= 1.0 and result.labels == ("blues", "metal")
    with pytest.raises(InputError, match="Unknown emotion label 'blues'"):
        train.train("emotion", synthetic_dataset, tmp_path, epochs=1)
    with pytest.raises(InputError, match="3 positive conv widths"):
        train.train("genre", synthetic_dataset, tmp_path, filters=(2, 2))


def test_train_cli_takes_every_recipes_profile_and_max_steps(synthetic_dataset, tmp_path, capsys):
    """``--profile tiny --max-steps 2`` (flags every recipe takes): the tiny widths, two batches only."""
    import keras

    from pipelines.models.building.tiny import TINY_CLASSIFIER_WIDTHS
    from training import classifiers as train

    seen = []
    original_fit = keras.Model.fit

    def counting_fit(self, *args, callbacks=None, **kwargs):
        counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))
        return original_fit(self, *args, callbacks=[*(callbacks or []), counter], **kwargs)

    import unittest.mock as mock

    with mock.patch.object(keras.Model, "fit", counting_fit):
        code = train.main(["genre", "--data", str(synthetic_dataset), "--output", str(tmp_path), "--profile", "tiny",
                           "--max-steps", "2", "--batch-size", "4", "--epochs", "5"])
    assert code == 0, capsys.readouterr()
    assert len(seen) == 2  # 5 epochs of several batches, stopped after two
    model = genre.load(tmp_path).model
    widths = [layer.filters for layer in model.layers if hasattr(layer, "filters")]
    assert tuple(widths) == TINY_CLASSIFIER_WIDTHS["genre"]["filters"]
    assert train.main(["genre", "--data", str(synthetic_dataset), "--output", str(tmp_path), "--max-steps", "0"]) == 2
