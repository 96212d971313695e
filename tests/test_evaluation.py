"""The evaluation package end to end on the tiny profile: pair, ablation, MusicTI protocol, FAD, resume,
statistics, and sharding under accelerate (slow)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.errors import InputError
from evaluation import stats
from evaluation.__main__ import main
from pipelines.signal import metrics

ROOT = Path(__file__).resolve().parents[1]


def write_sounds(folder: Path, freqs=(220.0, 330.0), seconds: float = 0.6, rate: int = 44100) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    for i, f in enumerate(freqs):
        noise = np.random.default_rng(i).standard_normal(t.size) * 0.05
        sf.write(folder / f"sound{i}.wav", (0.3 * np.sin(2 * np.pi * f * t) + noise).astype(np.float32), rate)
    return folder


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# -- statistics ------------------------------------------------------------------------------------------------
def test_mean_sem_and_paired_test_by_hand():
    mean, sem = stats.mean_sem([1.0, 2.0, 3.0, 6.0])
    assert mean == 3.0 and sem == pytest.approx(math.sqrt(((4 + 1 + 0 + 9) / 3) / 4))
    a, b = [1.0, 2.0, 3.0, 4.0], [0.5, 1.0, 2.5, 2.0]
    diff = np.array(a) - np.array(b)  # 0.5, 1, 0.5, 2: mean 1, sd sqrt(0.5)
    result = stats.paired_test(a, b)
    assert result["cohens_d"] == pytest.approx(1 / math.sqrt(0.5))
    assert result["t"] == pytest.approx(diff.mean() / (diff.std(ddof=1) / 2))  # t = d_z * sqrt(n)
    assert result["t"] == pytest.approx(result["cohens_d"] * 2)
    assert 0 < result["p"] < 0.1
    assert math.isnan(stats.paired_test([1.0], [2.0])["t"])
    with pytest.raises(ValueError):
        stats.paired_test([1.0, 2.0], [1.0])


# -- pair --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["paper", "studio"])
def test_pair_prints_one_json_line(mode, tmp_path, capsys):
    from evaluation.pair import load_44k

    sounds = write_sounds(tmp_path / "in", seconds=1.0)
    a, b = sounds / "sound0.wav", sounds / "sound1.wav"
    assert main(["pair", "--mode", mode, str(a), str(b)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    expected = metrics.pair_metrics(load_44k(a), load_44k(b), mode)
    assert result["mode"] == mode and result["ssim"] == pytest.approx(expected["ssim"])
    assert result["chroma_cens"] == pytest.approx(expected["chroma_cens"])
    assert "content_preservation" not in result  # CLAP only when asked


def test_pair_with_clap_on_the_tiny_profile(tmp_path, capsys):
    sounds = write_sounds(tmp_path / "in")
    assert main(["pair", "--profile", "tiny", "--device", "cpu", "--mode", "studio", "--prompt", "funk drums",
                 "--styles", "jazz,rock", str(sounds / "sound0.wav"), str(sounds / "sound1.wav")]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("content_preservation", "clap_score", "style_fit_mean", "style_fit_max"):
        assert -1.0 <= result[key] <= 1.0
    assert result["style_fit_max"] >= result["style_fit_mean"]
    assert result["content_preservation"] < 0.999999  # two different sounds


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really")
    assert main(["pair", str(tmp_path / "missing.wav"), str(tmp_path / "broken.wav")]) == 2
    assert f"error: The audio file '{tmp_path / 'missing.wav'}' does not exist." in capsys.readouterr().err
    assert main(["pair", str(tmp_path / "broken.wav"), str(tmp_path / "broken.wav")]) == 2
    assert "could not be read as audio" in capsys.readouterr().err
    assert main(["ablation", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--profile", "tiny"]) == 2
    assert "holds no audio files" in capsys.readouterr().err
    assert main(["fad", str(tmp_path / "empty"), str(tmp_path / "nowhere"), "--profile", "tiny"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["ablation", str(tmp_path), "--out", str(tmp_path / "o"), "--downshift", "300",
                 "--profile", "tiny"]) == 2
    assert "downshift" in capsys.readouterr().err.lower()


# -- the ablation ------------------------------------------------------------------------------------------------
def test_ablation_writes_items_summary_ttests_and_plot_and_resumes(studio, tmp_path, monkeypatch):
    from PIL import Image

    from evaluation.ablation import run_ablation
    from pipelines.schema.settings import SoundToMusicSettings

    sounds = write_sounds(tmp_path / "sounds")
    out = tmp_path / "out"
    base = SoundToMusicSettings(steps=4)
    summary = run_ablation(sounds, out, {"downshift": [0.0, 250.0]}, base=base, profile="tiny", studio=studio)
    rows = read_csv(out / "items.csv")
    assert len(rows) == 4 and {r["file"] for r in rows} == {"sound0.wav", "sound1.wav"}
    for row in rows:
        assert (out / row["output"]).is_file() and 0 < float(row["ssim"]) < 1
    table = read_csv(out / "summary.csv")
    assert [(r["value"], r["n"]) for r in table] == [("0.0", "2"), ("250.0", "2")]
    by_value = {float(r["value"]): [float(x["ssim"]) for x in rows if float(x["value"]) == float(r["value"])]
                for r in table}
    for r in table:
        mean, sem = stats.mean_sem(by_value[float(r["value"])])
        assert float(r["ssim_mean"]) == pytest.approx(mean) and float(r["ssim_sem"]) == pytest.approx(sem)
    assert by_value[0.0] != by_value[250.0]  # the mask changes the result
    tests = read_csv(out / "ttests.csv")
    assert {(t["metric"], t["n"]) for t in tests} == {("ssim", "2"), ("chroma_cens", "2")}
    ssim_test = next(t for t in tests if t["metric"] == "ssim")
    expected = stats.paired_test(by_value[0.0], by_value[250.0])
    assert float(ssim_test["cohens_d"]) == pytest.approx(expected["cohens_d"])
    with Image.open(out / "downshift.png") as plot:
        assert plot.size[0] >= 800 and len(set(plot.convert("L").getdata())) > 10
    assert summary["plots"] == [str(out / "downshift.png")]

    # an interrupted run (one item lost) resumes: only the missing item runs again
    shard_file = out / "items.0-of-1.csv"
    lines = shard_file.read_text().splitlines(keepends=True)
    shard_file.write_text("".join(lines[:-1]))
    calls = []
    original = type(studio).sound_to_music
    monkeypatch.setattr(type(studio), "sound_to_music", lambda self, *a, **k: calls.append(a) or original(self, *a, **k))
    run_ablation(sounds, out, {"downshift": [0.0, 250.0]}, base=base, profile="tiny", studio=studio)
    assert len(calls) == 1 and len(read_csv(out / "items.csv")) == 4
    assert read_csv(out / "summary.csv") == table  # fixed seeds: the same numbers again


# -- MusicTI ---------------------------------------------------------------------------------------------------------
def test_musicti_protocol_singles_and_pairs(studio, tmp_path):
    from evaluation.musicti import combinations_for, run_musicti
    from pipelines.systems.style_interpolation import StyleInterpolationSettings

    sounds = write_sounds(tmp_path / "content", freqs=(440.0,), seconds=0.5)
    summary = run_musicti(sounds, tmp_path / "out", styles=["jazz", "rock"], pairs=1,
                          settings=StyleInterpolationSettings(steps=2), profile="tiny", studio=studio)
    rows = read_csv(tmp_path / "out" / "items.csv")
    assert [r["kind"] for r in rows].count("single") == 2 and [r["kind"] for r in rows].count("pair") == 1
    assert {r["styles"] for r in rows} == {"jazz", "rock", "jazz+rock"}
    for row in rows:
        assert float(row["style_fit_max"]) >= float(row["style_fit_mean"]) - 1e-12
        if row["kind"] == "single":
            assert row["style_fit_max"] == row["style_fit_mean"]
    kinds = {s["kind"]: s for s in summary["summary"]}
    assert kinds["all"]["n"] == 3 and kinds["pair"]["n"] == 1
    assert combinations_for("a.wav", ["x", "y", "z"], 2, 0) == combinations_for("a.wav", ["x", "y", "z"], 2, 0)


# -- FAD --------------------------------------------------------------------------------------------------------------
def test_fad_counts_caches_and_matches_the_formula(studio, tmp_path):
    from evaluation.fad import evaluate_fad, folder_statistics
    from pipelines.signal import audio as audio_io

    outputs = write_sounds(tmp_path / "outputs", freqs=(220.0, 230.0, 240.0), seconds=1.0)
    reference = write_sounds(tmp_path / "reference", freqs=(1000.0, 1500.0, 2000.0, 3000.0), seconds=1.0)
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match="each set needs at least 17"):  # the tiny CLAP: 16 dimensions
        evaluate_fad(studio, outputs, reference, cache)
    first = evaluate_fad(studio, outputs, reference, cache, allow_few=True)
    assert first["outputs"]["files"] == 3 and first["reference"]["embeddings"] == 4
    assert first["warning"].startswith("Only 3 embeddings") and "below 17" in first["warning"]
    assert first["reference"]["cached"] is True  # made by the refused call, which still cached it
    again = evaluate_fad(studio, outputs, reference, cache, allow_few=True)
    assert again["reference"]["cached"] is True and again["fad"] == pytest.approx(first["fad"])

    def embed(folder):
        def run(embedder):
            return np.concatenate([embedder.audio_windows(audio_io.load_audio(str(p), 48000).samples[0], 48000)
                                   for p in sorted(folder.glob("*.wav"))])
        return studio.with_clap(run)

    by_hand = metrics.frechet_distance(*metrics.embedding_statistics(embed(outputs)),
                                       *metrics.embedding_statistics(embed(reference)))
    assert first["fad"] == pytest.approx(by_hand, rel=1e-6) and first["fad"] > 0
    with pytest.raises(InputError, match="give 1 CLAP embedding"):
        evaluate_fad(studio, write_sounds(tmp_path / "one", freqs=(440.0,), seconds=1.0), reference, cache,
                     allow_few=True)
    # a changed file changes the hash: no stale statistics
    write_sounds(reference, freqs=(1000.0, 1500.0, 2000.0, 3100.0), seconds=1.0)
    assert folder_statistics(studio, reference, cache)["cached"] is False


def test_fad_skips_and_reports_bad_files_and_refuses_too_few_embeddings(tmp_path, capsys):
    """As a user runs it: a bad file is skipped with its reason (the rest count); fewer embeddings than
    CLAP's dimensions + 1 in a set are refused unless --allow-few, which warns on stderr."""
    outputs = write_sounds(tmp_path / "outputs", freqs=(220.0, 230.0), seconds=1.0)
    (outputs / "empty.wav").write_bytes(b"")
    (outputs / "broken.wav").write_bytes(b"RIFF not really a wave file")
    reference = write_sounds(tmp_path / "reference", freqs=(1000.0, 1500.0, 2000.0), seconds=1.0)
    run = ["fad", str(outputs), str(reference), "--profile", "tiny", "--device", "cpu", "--cache", str(tmp_path / "c")]
    assert main(run) == 2
    refused = capsys.readouterr().err
    assert "the outputs give 2, the reference 3" in refused and "at least 17 (CLAP's 16 dimensions + 1)" in refused
    assert "--allow-few" in refused
    assert main(run + ["--allow-few"]) == 0
    streams = capsys.readouterr()
    result = json.loads(streams.out)
    assert result["outputs"]["files"] == 2 and result["outputs"]["embeddings"] == 2 and math.isfinite(result["fad"])
    assert result["outputs"]["skipped"]["empty.wav"] == f"The audio file '{outputs / 'empty.wav'}' is empty (0 bytes)."
    assert "could not be read as audio" in result["outputs"]["skipped"]["broken.wav"]
    assert result["reference"]["skipped"] == {} and result["minimum_embeddings"] == 17
    assert streams.err.startswith("warning: Skipped 2 file(s) of the outputs that could not be read: broken.wav: ")
    assert "Only 2 embeddings in the smaller set" in streams.err


@pytest.mark.slow
def test_fad_of_sets_with_enough_embeddings_needs_no_allow_few(tmp_path, capsys):
    long = {name: write_sounds(tmp_path / name, freqs=freqs, seconds=85.0, rate=48000)  # 9 windows a file
            for name, freqs in (("long_outputs", (220.0, 230.0)), ("long_reference", (1000.0, 1500.0)))}
    assert main(["fad", str(long["long_outputs"]), str(long["long_reference"]), "--profile", "tiny", "--device", "cpu",
                 "--cache", str(tmp_path / "c")]) == 0
    streams = capsys.readouterr()
    assert json.loads(streams.out)["outputs"]["embeddings"] == 18
    assert "singular" not in streams.err and "biased upward below 500" in streams.err


# -- sharding under accelerate ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_under_accelerate_give_the_same_summary(tmp_path):
    sounds = write_sounds(tmp_path / "sounds", freqs=(220.0, 330.0, 440.0), seconds=0.5)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}  # a crash prints its stack
    args = ["ablation", str(sounds), "--profile", "tiny", "--device", "cpu", "--steps", "4", "--downshift", "0", "200"]
    accelerate = Path(sys.executable).with_name("accelerate")
    subprocess.run([sys.executable, "-m", "evaluation", *args, "--out", str(tmp_path / "one")],
                   check=True, cwd=ROOT, env=env, capture_output=True, timeout=600)
    done = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "evaluation", *args,
                           "--out", str(tmp_path / "two")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-6000:]
    assert sorted(p.name for p in (tmp_path / "two").glob("items.*-of-2.csv")) == ["items.0-of-2.csv", "items.1-of-2.csv"]
    assert all(read_csv(p) for p in (tmp_path / "two").glob("items.*-of-2.csv"))  # both processes worked
    one, two = read_csv(tmp_path / "one" / "summary.csv"), read_csv(tmp_path / "two" / "summary.csv")
    assert len(one) == 2 and len(two) == 2
    for a, b in zip(one, two):
        assert a.keys() == b.keys()
        for key in a:
            if key == "sweep":
                assert a[key] == b[key]
            else:
                assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-6)


def test_ablation_command_line_builds_the_notebooks_runs(monkeypatch, tmp_path):
    from evaluation import ablation

    seen = {}
    monkeypatch.setattr(ablation, "run_ablation", lambda sounds, out, sweeps, **kw: seen.update(sweeps=sweeps, **kw))
    assert main(["ablation", str(tmp_path), "--out", str(tmp_path / "o"), "--base-downshift", "40",
                 "--brightness", "-1", "0.05", "--prompt", "ambient, saxophone", "--steps", "3"]) == 0
    assert seen["sweeps"] == {"brightness": [-1.0, 0.05]}
    base = seen["base"]
    assert (base.mask.downshift, base.mask.contrast, base.prompt, base.steps) == (40.0, 200.0, "ambient, saxophone", 3)
    seen.clear()
    assert main(["ablation", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert seen["sweeps"] == {"downshift": [0.0, 40.0, 80.0, 150.0, 200.0]} and seen["mode"] == "paper"
