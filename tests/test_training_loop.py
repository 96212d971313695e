"""The loop every recipe shares (``training.common.run``): checkpoints resume exactly, a checkpoint of
another recipe is refused, and two processes under ``accelerate launch`` train one usable model (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import soundfile as sf
import torch

from core.errors import InputError
from training_toys import ROOT, base_flags


# -- checkpoints and exact resume ------------------------------------------------------------------------------------------


def test_resume_from_a_checkpoint_reproduces_the_uninterrupted_run(tmp_path, clips):
    from safetensors.torch import load_file

    from training import amuse_vae, common

    flags = ["--batch-size", "2", "--checkpoint-every", "2"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert amuse_vae.main(base_flags(clips, straight, 4)[:-2] + flags) == 0
    assert amuse_vae.main(base_flags(clips, split, 2)[:-2] + flags) == 0
    assert amuse_vae.main(base_flags(clips, split, 4)[:-2] + flags + ["--resume", "latest"]) == 0
    assert common.read_losses(split) == common.read_losses(straight)
    a = load_file(str(straight / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(split / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    first = load_file(str(straight / "checkpoints" / "step-2" / "trainable.safetensors"))
    last = load_file(str(straight / "checkpoints" / "step-4" / "trainable.safetensors"))
    assert any(not torch.equal(first[k], last[k]) for k in first)  # the comparison above can fail


def test_an_interrupted_run_with_a_schedule_resumes_exactly(tmp_path, clips):
    """The same command resumed from its step-2 checkpoint (into another folder) gives the same steps 3 and 4:
    the cosine schedule's position comes back with the optimizer."""
    from safetensors.torch import load_file

    from training import amuse_vae, common

    flags = ["--batch-size", "2", "--checkpoint-every", "2", "--lr-scheduler", "cosine", "--lr-warmup-steps", "1"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert amuse_vae.main(base_flags(clips, straight, 4)[:-2] + flags) == 0
    checkpoint = straight / "checkpoints" / "step-2"
    assert (checkpoint / "lr_scheduler.pt").is_file()
    assert amuse_vae.main(base_flags(clips, resumed, 4)[:-2] + flags + ["--resume", str(checkpoint)]) == 0
    assert common.read_losses(resumed) == common.read_losses(straight)[2:]
    a = load_file(str(straight / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(resumed / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_checkpoint_of_another_recipe(tmp_path, clips):
    from training import amuse_vae

    out = tmp_path / "vae"
    assert amuse_vae.main(base_flags(clips, out, 1)) == 0
    with pytest.raises(InputError, match="other trainable parameters"):
        amuse_vae.train(base_flags(clips, tmp_path / "other", 2, "--hidden-dims", "4,4,4,4,4",
                                   "--resume", out / "checkpoints" / "step-1"))

@pytest.mark.slow
def test_two_process_accelerate_launch_on_the_cpu_gives_a_usable_vae(tmp_path, clips):
    from pipelines.models import loaders
    from pipelines.systems.playlist_to_music import taste_vector, track_image
    from training import common

    out = tmp_path / "vae"
    # accelerate's --cpu runs one process; its torchrun launcher (--multi_gpu) with ACCELERATE_USE_CPU
    # gives data parallel over CPU processes (gloo), the same code path as several GPUs
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "training.amuse_vae",
               *base_flags(clips, out, 2, "--batch-size", "1")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / common.SUMMARY_FILE).read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2
    vae = loaders.load_amuse_vae(str(out))
    samples = sf.read(clips / "tone1.wav", dtype="float32")[0]
    assert taste_vector(vae, [track_image(samples)]).shape == (1, 1, 64)
