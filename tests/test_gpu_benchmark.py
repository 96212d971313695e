"""benchmarks/gpu.py, the one command for every GPU figure, runs on the CPU with the tiny models and
its JSON holds every stage: figures, or "skipped: reason"."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("window", "sound_to_music_60s", "style", "music_to_image", "image_to_music", "text_to_music", "compile",
          "training")


def test_the_gpu_benchmark_runs_tiny_on_the_cpu_and_reports_every_stage(tmp_path):
    out = tmp_path / "gpu.json"
    command = [sys.executable, "benchmarks/gpu.py", "--profile", "tiny", "--device", "cpu", "--json",
               "--steps", "2", "--long-seconds", "6", "--text-seconds", "6", "--music-seconds", "1",
               "--image-size", "64", "--training-recipes", "style", "--training-steps", "2", "--budget-s", "900",
               "--repeats", "2", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == summary  # the --out file holds the same figures
    stages = summary["stages"]
    assert tuple(stages) == STAGES
    for name, outcome in stages.items():
        assert isinstance(outcome, dict) or outcome.startswith("skipped: "), (name, outcome)
    assert stages["compile"] == "skipped: cpu: torch.compile is used on CUDA only"
    assert summary["machine"]["device"] == "cpu" and summary["steps_override"] == 2

    window = stages["window"]  # ours vs stock img2img, split per stage, the same UNet calls on both sides
    assert window["ours_s"] > 0 and window["stock_s"] > 0
    assert len(window["ours_runs_s"]) == len(window["stock_runs_s"]) == 2  # --repeats 2: medians of alternating runs
    assert window["ours_split"]["UNet"]["calls"] == window["stock_split"]["UNet"]["calls"] == window["unet_calls"]
    assert {"spectrogram codec", "mask", "metrics", "text encoder", "VAE encode", "VAE decode", "other"} <= set(
        window["ours_split"])
    assert all(part["cpu_s"] >= 0 for part in window["ours_split"].values())  # CPU seconds beside wall ones
    assert 0 < window["ours_unet_share"] < 1 and 0 < window["stock_unet_share_cpu"] < 1
    assert len(window["ours_cpu_runs_s"]) == 2 and window["ours_over_stock_cpu"] > 0

    long = stages["sound_to_music_60s"]  # 6 s: 2 windows; on the CPU the auto batch is one window
    assert long["windows"] == 2 and long["auto_window_batch"] == 1
    for preset, scheduler in (("paper", "repo"), ("fast", "dpm++")):
        run = long[f"{preset}_batch_1"]
        assert run["scheduler"] == scheduler and run["seconds"] > 0 and run["peak_rss_gb"] > 0
        assert run["unet_calls"] == 2 * run["steps_run"]  # one UNet call per step per window
        assert long[f"{preset}_batch_auto"].startswith("skipped: auto is 1 window")

    style = stages["style"]  # one text-encoder call per style request
    assert style["text_encoder_calls"] == style["text_encoder_calls_recorded"] == 1
    assert style["unet_calls"] == 1 + style["stock_unet_calls"]  # MusicTI's one-step inversion, then the same steps
    assert style["stock_text_encoder_calls"] == 2 and len(style["ours_runs_s"]) == 2

    image = stages["music_to_image"]  # the LoRA fused into every UNet call
    assert image["lora_fused"] is True and image["lora_fused_layers"] > 0
    assert image["unet_calls"] == 2 and image["ours_s"] > 0 and image["stock_s"] > 0

    # UNet and text-encoder calls per request in every diffusion stage, ours and stock's where compared
    for name in ("window", "style", "music_to_image", "text_to_music"):
        assert stages[name]["unet_calls"] > 0 and stages[name]["text_encoder_calls"] > 0, name
    for name in ("window", "style", "music_to_image"):
        assert stages[name]["stock_unet_calls"] > 0 and stages[name]["stock_text_encoder_calls"] > 0, name
        assert stages[name]["ours_cpu_s"] > 0 and stages[name]["stock_cpu_s"] > 0, name
    assert window["text_encoder_calls"] == window["stock_text_encoder_calls"] == 2  # prompt and negative, once
    assert window["unet_calls"] == window["stock_unet_calls"]
    assert style["ours_unet_cpu_s"] > 0 and image["stock_unet_s"] > 0  # seconds inside the UNet (off CUDA)
    assert summary["cpu_threads"] >= 1

    music = stages["image_to_music"]
    assert music["musicgen_s_per_generated_s"] > 0 and music["caption"] and music["decoder_forwards"] > 50
    assert stages["text_to_music"]["windows"] == 2 and stages["text_to_music"]["unet_calls"] > 0

    training = stages["training"]
    assert training["mixed_precision"] == "no" and training["style"]["seconds_per_step"] > 0
    assert training["lora"] == "skipped: not asked for (--training-recipes)"


def test_the_static_cache_figures_of_the_image_to_music_stage_run(studio, monkeypatch, tmp_path):
    """What the stage adds on CUDA (the opt-in static KV cache timed beside the dynamic one), run here on
    the CPU with the switch forced: the fields its default will be decided from."""
    import types

    from PIL import Image

    from pipelines.schema.settings import ImageToMusicSettings
    from pipelines.systems import image_to_music

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_stages

    wanted = []  # the switch as each call finds it; on the CPU the real decision is always off

    def switch(device):
        wanted.append(os.environ.get(image_to_music.STATIC_CACHE_ENV))
        return wanted[-1] == "1"

    monkeypatch.setattr(image_to_music, "static_cache_wanted", switch)
    monkeypatch.delenv(image_to_music.STATIC_CACHE_ENV, raising=False)
    ctx = gpu_stages.Context(studio, types.SimpleNamespace(steps=None), tmp_path)
    picture = Image.new("RGB", (64, 64), (200, 120, 40))
    settings = ImageToMusicSettings(seconds=1.0)
    dynamic = studio.image_to_music(picture, settings=settings)
    figures = gpu_stages.static_cache_figures(ctx, picture, settings, dynamic)
    assert wanted == [None, "1", "1"], "the dynamic run, then both timed calls with the switch on"
    assert image_to_music.STATIC_CACHE_ENV not in os.environ, "the switch is put back"
    assert figures["first_call_s"] > 0 and figures["musicgen_s_per_generated_s"] > 0
    assert figures["fell_back_to_dynamic"] is False
    assert figures["same_audio_as_dynamic"] is True  # fp32 on the CPU: the same tokens, bit for bit
