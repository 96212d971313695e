"""Variations (``/variations``): N seeds of one request, each the single call with its seed."""

import numpy as np
import pytest
from gradio_client.exceptions import AppError
from PIL import Image

from pipelines.signal import audio as audio_io
from pipelines.schema.settings import TextToMusicSettings

SR = 44100


def args(prompt="funk bassline", engine="riffusion", seconds=6.0, seed=11, count=4, steps=2, guidance=None):
    return [prompt, engine, seconds, seed, count, steps, guidance]


def samples(path, rate=SR):
    return audio_io.load_audio(path, rate, allow_silence=True).samples


@pytest.mark.slow
def test_four_seeds_give_four_different_results_each_the_single_call(client):
    wavs, seeds = client.predict(*args(), api_name="/variations")
    assert seeds == [11, 12, 13, 14] and len(wavs) == 4
    made = [samples(wav) for wav in wavs]
    for one in range(4):
        for other in range(one + 1, 4):
            assert np.abs(made[one] - made[other]).max() > 0.01
    for seed, sound, wav in zip(seeds, made, wavs):
        single, _ = client.predict("funk bassline", "", 6.0, 2, 7.0, seed, "riffusion", api_name="/text_to_music")
        assert np.array_equal(samples(single), sound)
        assert audio_io.read_wav_metadata(wav)["seed"] == seed


def test_musicgen_variations_are_its_single_calls(client):
    wavs, seeds = client.predict(*args(prompt="calm piano", engine="musicgen", seconds=2.0, seed=5, count=2),
                                 api_name="/variations")
    assert seeds == [5, 6]
    for seed, wav in zip(seeds, wavs):
        _, single, _ = client.predict(None, "calm piano", 2.0, 3.0, 1.0, 250, 0.0, seed, None, False,
                                      api_name="/image_to_music")
        assert np.array_equal(samples(single, 32000), samples(wav, 32000))
    assert np.abs(samples(wavs[0], 32000) - samples(wavs[1], 32000)).max() > 0


@pytest.mark.slow
def test_a_batch_of_first_windows_equals_the_windows_made_one_by_one(studio, monkeypatch):
    """Where memory allows the seeds' first windows share one UNet batch (forced here on the CPU):
    each is its single call's window up to float rounding (at most one grey level)."""
    monkeypatch.setenv("STUDIO_WINDOW_BATCH", "3")
    settings = TextToMusicSettings(prompt="church bells", seconds=4.0, steps=2, seed=7)
    made = studio.variations("riffusion", settings, 3)
    monkeypatch.setenv("STUDIO_WINDOW_BATCH", "1")
    for seed, result in zip([7, 8, 9], made.results):
        single = studio.text_to_music(TextToMusicSettings(prompt="church bells", seconds=4.0, steps=2, seed=seed))
        batched, alone = (np.asarray(r.spectrogram.convert("L"), dtype=np.int16) for r in (result, single))
        assert np.abs(batched - alone).max() <= 1
        assert result.parameters["seed"] == seed and result.parameters["model"] == "riffusion"
    assert np.abs(np.asarray(made.results[0].spectrogram, dtype=np.int16)
                  - np.asarray(made.results[1].spectrogram, dtype=np.int16)).mean() > 1


@pytest.mark.parametrize("changes,words", [
    ({"count": 9}, r"^Variations \(parameter count\) must be a whole number from 2 to 8"),
    ({"count": 1}, r"^Variations \(parameter count\) must be a whole number from 2 to 8"),
    ({"engine": "amuse"}, r"\(parameter engine\) must be one of .riffusion., .musicgen.; got .amuse."),
    ({"prompt": ""}, r"^Prompt \(parameter prompt\) is empty"),
    ({"engine": "musicgen", "prompt": " "}, r"^Prompt \(parameter prompt\) is empty"),
])
def test_bad_variations_arguments(client, changes, words):
    with pytest.raises(AppError, match=words):
        client.predict(*args(**changes), api_name="/variations")


def test_the_page_lays_out_one_player_per_seed_each_with_use_this(studio):
    import gradio as gr

    import app

    demo = app.build_demo(studio)
    assert sum(isinstance(b, gr.Button) and b.value == "Use this" for b in demo.blocks.values()) == 8
    show = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "show" and len(f.outputs) == 25)
    *updates, chosen = show(["/tmp/a.wav", "/tmp/b.wav", "/tmp/c.wav"], [3, 4, 5])
    assert chosen == "/tmp/a.wav"  # the first seed's, the one in the seed box, is the chosen one at first
    assert show([], [])[-1] is None
    columns, players, seeds = updates[0::3], updates[1::3], updates[2::3]
    assert [c.visible for c in columns] == [True] * 3 + [False] * 5
    assert [p.label for p in players[:3]] == ["Seed 3", "Seed 4", "Seed 5"] and seeds[:4] == [3, 4, 5, None]
    use = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "use")
    assert use(4, "/tmp/b.wav") == (4, "/tmp/b.wav")  # its seed into the seed box, it becomes the chosen one
    with pytest.raises(gr.Error, match="make variations first"):
        use(None, None)
