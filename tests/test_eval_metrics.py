"""Evaluation metrics against independent computations: the mask paper's SSIM/CENS on its own six
input/output pairs, fadtk's Fréchet distance against the textbook formula, and the CLAP scores on the
tiny CLAP against the model called by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError
from pipelines.signal import metrics

PAIRS = ["clock_tick", "cuckoo", "geese", "loud_honking", "mario_kart", "train_passing"]


def notebook_ssim_cens(input_path: Path, output_path: Path) -> tuple[float, float]:
    """The notebook's formula written out again with librosa/numpy/skimage only (no project code):
    librosa.load at 44.1 kHz, first 225 500 samples, |STFT| (n_fft 17640, hop 441, hann 4410, centred,
    reflect), HTK mel 512 x 0-10 kHz without norm, 255 - mel**0.25 * 255 / ceil(max**0.25) as uint8,
    flipped; SSIM data_range 255; chroma_cens cosine of the flattened arrays."""
    import librosa
    from skimage.metrics import structural_similarity

    def image(y):
        spec = np.abs(librosa.stft(y.astype(np.float64), n_fft=17640, hop_length=441, win_length=4410,
                                   window="hann", center=True, pad_mode="reflect"))
        fb = librosa.filters.mel(sr=44100, n_fft=17640, n_mels=512, fmin=0, fmax=10000, htk=True, norm=None)
        mel = fb @ spec
        peak = mel.max() if mel.max() >= 1e-10 else 1.0
        max_volume = np.ceil(np.power(peak, 0.25))
        data = 255 - np.power(mel, 0.25) * 255 / max_volume
        return np.flipud(data.astype(np.uint8)).astype(np.float64)

    a, _ = librosa.load(str(input_path), sr=44100)
    b, _ = librosa.load(str(output_path), sr=44100)
    a, b = a[:225500], b[:225500]
    ia, ib = image(a), image(b)
    width = min(ia.shape[1], ib.shape[1])
    ssim = structural_similarity(ia[:, :width], ib[:, :width], data_range=255)
    n = min(len(a), len(b))
    ca = librosa.feature.chroma_cens(y=a[:n], sr=44100).ravel().astype(np.float64)
    cb = librosa.feature.chroma_cens(y=b[:n], sr=44100).ravel().astype(np.float64)
    return float(ssim), float(ca @ cb / (np.linalg.norm(ca) * np.linalg.norm(cb)))


def paper_pair(real: Path, name: str) -> dict[str, float]:
    from pipelines.signal import audio as audio_io

    def load(path):
        return audio_io.load_audio(str(path), 44100, mono=True, max_seconds=None).samples[0]

    return metrics.pair_metrics(load(real / "everyday" / f"{name}.wav"),
                                load(real / "generated" / f"{name}_output.wav"), "paper")


@pytest.mark.parametrize("name", [pytest.param(p, marks=() if p == "clock_tick" else pytest.mark.slow) for p in PAIRS])
def test_paper_mode_matches_the_notebook_formula_on_the_papers_pairs(real_data, name):
    real = real_data / "mask-paper"
    ours = paper_pair(real, name)
    ssim, cens = notebook_ssim_cens(real / "everyday" / f"{name}.wav", real / "generated" / f"{name}_output.wav")
    assert ours["ssim"] == pytest.approx(ssim, abs=1e-4)
    assert ours["chroma_cens"] == pytest.approx(cens, abs=1e-4)
    assert 0.05 < ours["ssim"] < 0.95 and 0.3 < ours["chroma_cens"] < 1.0  # a real, partial similarity


def test_paper_image_uses_the_per_file_ceil_scale():
    # a 1 kHz tone: the loudest pixel sits at level 255 - 255 * peak**0.25 / ceil(peak**0.25)
    t = np.arange(44100) / 44100
    y = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    image = np.asarray(metrics.paper_spectrogram_image(y))
    from pipelines.signal.spectrogram import audio_to_mel

    peak = float(audio_to_mel(y, metrics._PAPER_PARAMS).max())
    expected = int(255 - 255 * peak ** 0.25 / math.ceil(peak ** 0.25))
    assert image.shape[0] == 512 and image.min() == expected
    assert image.max() > expected + 100  # away from the tone: near white
    quiet = np.asarray(metrics.paper_spectrogram_image(y * 0.01))
    assert quiet.min() != image.min()  # the scale follows each file, not a fixed max


def test_pair_modes_differ_and_identical_sounds_score_one():
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(44100 * 2) * 0.1).astype(np.float32)
    b = (a + rng.standard_normal(a.size).astype(np.float32) * 0.1).astype(np.float32)
    same = metrics.pair_metrics(a, a, "paper")
    assert same["ssim"] == pytest.approx(1.0) and same["chroma_cens"] == pytest.approx(1.0)
    assert metrics.pair_metrics(a, b, "paper")["ssim"] != metrics.pair_metrics(a, b, "studio")["ssim"]
    with pytest.raises(InputError, match="Unknown metrics mode"):
        metrics.pair_metrics(a, b, "neither")
    with pytest.raises(InputError, match="44.1 kHz"):
        metrics.pair_metrics(a, b, "paper", sample_rate=48000)
    with pytest.raises(InputError, match="empty"):
        metrics.pair_metrics(a[:0], b, "studio")


# -- FAD ---------------------------------------------------------------------------------------------------
def direct_frechet(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook formula with scipy's sqrtm: ||mu_x - mu_y||^2 + Tr(Cx + Cy - 2 (Cx Cy)^1/2)."""
    from scipy import linalg

    mx, my = x.mean(0), y.mean(0)
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = linalg.sqrtm(cx @ cy).real
    return float(((mx - my) ** 2).sum() + np.trace(cx) + np.trace(cy) - 2 * np.trace(root))


def test_frechet_distance_matches_the_direct_formula():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 8))
    y = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 8)) * 0.5 + 0.3
    ours = metrics.frechet_distance(*metrics.embedding_statistics(x), *metrics.embedding_statistics(y))
    assert ours == pytest.approx(direct_frechet(x, y), rel=1e-8)
    assert ours > 0.5


def test_frechet_distance_by_hand_in_one_dimension():
    # N(0, 4) vs N(3, 1): 3^2 + 4 + 1 - 2 * sqrt(4 * 1) = 10
    assert metrics.frechet_distance(np.array([0.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) \
        == pytest.approx(10.0)
    x = np.random.default_rng(2).standard_normal((50, 4))
    assert metrics.frechet_distance(*metrics.embedding_statistics(x), *metrics.embedding_statistics(x)) \
        == pytest.approx(0.0, abs=1e-8)


def test_embedding_statistics_refuses_one_sample():
    with pytest.raises(InputError, match="at least two"):
        metrics.embedding_statistics(np.zeros((1, 4)))


# -- CLAP on the tiny model ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedder():
    from pipelines.models import clap, loaders
    from pipelines.models.building import tiny

    return clap.ClapEmbedder(loaders.load_clap(str(tiny.ensure("clap"))))


def tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_clap_score_is_the_cosine_of_the_models_own_features(embedder):
    import torch

    from pipelines.models import clap

    audio = tone(440, 2.0, 48000)
    score = clap.clap_score(embedder, audio, 48000, "funk drums")
    inputs = embedder.processor(audio=[audio], sampling_rate=48000, return_tensors="pt")
    text = embedder.processor(text=["funk drums"], return_tensors="pt", padding=True)
    with torch.no_grad():
        a = embedder.model.get_audio_features(**inputs).pooler_output[0].numpy()
        t = embedder.model.get_text_features(**text).pooler_output[0].numpy()
    assert score == pytest.approx(float(a @ t / np.linalg.norm(a) / np.linalg.norm(t)), abs=1e-5)
    assert -1 <= score <= 1


def test_clap_resamples_to_48k_with_librosa(embedder):
    import librosa

    x44 = tone(440, 2.0, 44100)
    x48 = librosa.resample(x44, orig_sr=44100, target_sr=48000)
    np.testing.assert_allclose(embedder.audio([x44], 44100), embedder.audio([x48], 48000), atol=1e-6)
    # and a wrong rate would matter: the same samples read as 48 kHz embed differently
    assert not np.allclose(embedder.audio([x44], 44100), embedder.audio([x44], 48000), atol=1e-4)


def test_content_preservation_and_style_fit(embedder):
    from pipelines.models import clap

    a, b = tone(440, 3.0, 44100), tone(3000, 3.0, 44100) + tone(90, 3.0, 44100)
    assert clap.content_preservation(embedder, a, a, 44100) == pytest.approx(1.0)
    assert clap.content_preservation(embedder, a, b, 44100) < 0.999999
    fit = clap.style_fit(embedder, b, 44100, ["jazz", "accordion"])
    singles = [clap.style_fit(embedder, b, 44100, [s])["style_fit_mean"] for s in ("jazz", "accordion")]
    # texts are batched with padding: equal to float32 noise
    assert fit["style_fit"] == pytest.approx(dict(zip(["jazz", "accordion"], singles)), abs=1e-5)
    assert fit["style_fit_mean"] == pytest.approx(np.mean(list(fit["style_fit"].values())))
    assert fit["style_fit_max"] == pytest.approx(max(fit["style_fit"].values()))
    assert fit["style_fit_mean"] == pytest.approx(np.mean(singles), abs=1e-5)
    by_hand = clap.cosine(embedder.audio([b], 44100)[0], embedder.text(["A music piece in the style of jazz"])[0])
    assert fit["style_fit"]["jazz"] == pytest.approx(by_hand, abs=1e-5)


def test_long_audio_is_the_mean_of_its_10_second_windows(embedder):
    from pipelines.models import clap

    x = np.concatenate([tone(440, 10.0, 48000), tone(2000, 4.0, 48000)])
    parts = embedder.audio_windows(x, 48000)
    assert parts.shape == (2, embedder.dim)
    mean = parts.mean(0) / np.linalg.norm(parts.mean(0))
    np.testing.assert_allclose(embedder.audio([x], 48000)[0], mean, atol=1e-9)
    assert clap.cosine(parts[0], parts[1]) < 0.999999


def test_clap_refuses_bad_input(embedder):
    from pipelines.models import clap

    with pytest.raises(InputError, match="empty"):
        embedder.audio([np.zeros(0, np.float32)], 48000)
    with pytest.raises(InputError, match="NaN"):
        embedder.audio([np.full(100, np.nan, np.float32)], 48000)
    with pytest.raises(InputError, match="non-empty text"):
        embedder.text([" "])
    with pytest.raises(InputError, match="at least one style"):
        clap.style_fit(embedder, tone(440, 1.0, 48000), 48000, [])


def test_metrics_table_reads_in_words_in_a_fixed_order():
    rows = metrics.metrics_table({"style_fit_max": 0.5, "ssim": 0.123456, "note": "text", "extra": 1})
    assert rows == [["SSIM of the spectrograms (input vs output)", "0.1235"],
                    ["Style fit, max over the styles (CLAP)", "0.5000"], ["extra", "1.0000"]]


def test_clap_metrics_are_on_by_default_only_off_the_cpu(studio, monkeypatch):
    assert studio.metrics_by_default() is False  # the test studio runs on the CPU
    monkeypatch.setattr(studio.info, "device", "cuda")
    assert studio.metrics_by_default() is True


def test_add_clap_metrics_keeps_the_results_own(studio, tmp_path):
    import soundfile as sf

    from pipelines.models import clap
    from pipelines.schema.results import Result

    class Made(Result):
        pass

    out = tone(880, 1.0, 44100)
    path = tmp_path / "in.wav"
    sf.write(path, tone(440, 1.0, 44100), 44100)
    result = Made(metrics={"ssim": 0.5})
    result.audio, result.sample_rate = out[None], 44100
    studio.add_clap_metrics(result, content=str(path), prompt="a bell", styles=["jazz"], playlist=[str(path)])
    assert result.metrics["ssim"] == 0.5
    assert set(result.metrics) == {"ssim", "content_preservation", "clap_score", "style_fit_mean", "style_fit_max",
                                   "playlist_similarity"}
    # one input as the whole playlist: its similarity is the content preservation
    assert result.metrics["playlist_similarity"] == pytest.approx(result.metrics["content_preservation"])
    by_hand = studio.with_clap(lambda e: clap.clap_score(e, out, 44100, "a bell"))
    assert result.metrics["clap_score"] == pytest.approx(by_hand)


class FixedEmbedder:
    """Unit vectors chosen by hand for each clip (its first sample is its index): no model."""

    VECTORS = np.array([[0.6, 0.8, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

    def audio(self, clips, sample_rate):
        return np.stack([self.VECTORS[int(np.asarray(clip).reshape(-1)[0])] for clip in clips])


def test_playlist_similarity_is_the_cosine_with_the_tracks_mean():
    """Output (0.6, 0.8), tracks (1, 0) and (0, 1): their mean (0.5, 0.5) has length 0.707, so the
    cosine is 0.7 / 0.707 = 0.98995 (a plain dot product would give 0.7)."""
    from pipelines.models import clap

    clip = lambda index: np.full(48000, float(index), dtype=np.float32)  # noqa: E731
    scores = clap.result_scores(FixedEmbedder(), clip(0), 48000, playlist=[(clip(1), 48000), (clip(2), 48000)])
    assert scores["playlist_similarity"] == pytest.approx(0.7 / np.sqrt(0.5), abs=1e-12)


def test_playlist_similarity_of_a_real_result_matches_one_computed_apart(studio):
    """Through the Studio with the tiny CLAP: embeddings taken one by one, the cosine written out here."""
    from pipelines.signal import audio as audio_io
    from pipelines.schema.results import Result

    result = Result()
    result.audio, result.sample_rate = tone(660, 2.0, 22050)[None], 22050
    tracks = [audio_io.Audio(tone(220, 3.0, 22050), 22050), audio_io.Audio(np.sign(tone(1500, 3.0, 22050)), 22050)]
    studio.add_clap_metrics(result, playlist=tracks)

    def apart(embedder):
        out = embedder.audio([result.audio[0]], 22050)[0]
        each = np.stack([embedder.audio([t.samples[0]], 22050)[0] for t in tracks])
        return out, each

    out, each = studio.with_clap(apart)
    mean = each.mean(axis=0)
    assert np.linalg.norm(mean) < 0.999, "the tracks must differ, or the normalisation would go unseen"
    expected = float(out @ mean / (np.linalg.norm(out) * np.linalg.norm(mean)))
    assert result.metrics["playlist_similarity"] == pytest.approx(expected, abs=1e-9)
    assert result.metrics["playlist_similarity"] != pytest.approx(float(out @ mean), abs=1e-6)
