"""Speed and quality of the spectrogram codec against naive peers, measured in the same run.

    python benchmarks/spectrogram.py [--runs 5]

Signal: a deterministic music-like clip (harmonic notes with attack/decay envelopes, noise bursts
like hi-hats, a noise floor), one image wide. Quality is spectral convergence (SC) against the
original at the preset's full STFT parameters after the best overall gain
(pipelines.signal.metrics.spectral_convergence; lower is better). Times are medians; "per 5.12 s"
rescales audio-diffusion's 5.94 s images for comparison. torch runs on 2 threads.

Peers (benchmarks/peers.py):
* naive torch, riffusion preset: the pseudo-inverse, then 32 iterations of plain Griffin-Lim, both
  at n_fft 17640; its audio -> image builds the mel basis on every call.
* librosa, audio-diffusion preset: teticio's Mel path, librosa.feature.melspectrogram forwards and
  librosa.feature.inverse.mel_to_audio (NNLS + 32 Griffin-Lim iterations, momentum 0.99) back.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.peers import (  # noqa: E402
    librosa_audio_to_image,
    librosa_mel_to_audio,
    naive_audio_to_mel,
    naive_mel_to_audio,
)
from pipelines.signal import spectrogram as S  # noqa: E402
from pipelines.signal.metrics import spectral_convergence  # noqa: E402


def music_like(sample_rate: int, n_samples: int, seed: int = 0) -> np.ndarray:
    """A few harmonic notes with envelopes, hi-hat-like noise bursts and a noise floor; peak 0.8."""
    rng = np.random.default_rng(seed)
    seconds = n_samples / sample_rate
    t = np.arange(n_samples) / sample_rate
    out = np.zeros(n_samples)
    notes = [196.0, 220.0, 261.63, 293.66, 329.63, 392.0, 440.0, 523.25]
    for start in np.sort(rng.uniform(0, seconds - 0.5, 10)):
        f0 = rng.choice(notes) * rng.choice([0.5, 1.0, 2.0])
        dur = rng.uniform(0.3, 1.5)
        since = np.clip(t - start, 0, None)
        env = np.clip((t - start) / 0.01, 0, 1) * np.exp(-since * rng.uniform(1.5, 5)) * (t < start + dur)
        for h in range(1, 9):
            if f0 * h < sample_rate / 2:
                out += env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) * (0.6 / h**1.2)
    for start in np.arange(0, seconds, 0.25):
        out += 0.05 * np.exp(-np.clip(t - start, 0, None) * 40) * (t >= start) * rng.standard_normal(n_samples)
    out += 0.003 * rng.standard_normal(n_samples)
    return (0.8 * out / np.abs(out).max()).astype(np.float32)


def timed(fn, runs: int):
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per timing of our method (median)")
    parser.add_argument("--peer-runs", type=int, default=3, help="runs per timing of the slow peers")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []

    def row(name, preset, fwd, inv, sc, params):
        per = 5.12 / params.window_seconds
        rows.append((name, preset, fwd * per, inv * per, sc))

    # --- riffusion preset -------------------------------------------------------------------
    p = S.RIFFUSION
    x = music_like(p.sample_rate, p.window_samples)
    S.audio_to_image(x, p)  # warm the caches (mel basis, pinv) outside the timings
    S.image_to_audio(S.audio_to_image(x, p))
    t_fwd, img = timed(lambda: S.audio_to_image(x, p), args.runs)
    t_inv, y = timed(lambda: S.image_to_audio(img), args.runs)
    row("ours (pinv + mel-consistent fast GL, n_fft 4410)", p.name, t_fwd, t_inv, spectral_convergence(x, y, p), p)
    mel = S.image_to_mel(img)
    t_fwd_n, _ = timed(lambda: S.mel_to_image(naive_audio_to_mel(x, p), p), args.peer_runs)
    t_inv_n, y_n = timed(lambda: naive_mel_to_audio(mel, p), args.peer_runs)
    row("naive torch (pinv + 32 plain GL, n_fft 17640)", p.name, t_fwd_n, t_inv_n, spectral_convergence(x, y_n, p), p)

    # --- audio-diffusion preset ---------------------------------------------------------------
    import librosa

    q = S.AUDIO_DIFFUSION
    xa = music_like(q.sample_rate, q.window_samples, seed=1)
    S.image_to_audio(S.audio_to_image(xa, q))
    t_fwd_a, img_a = timed(lambda: S.audio_to_image(xa, q), args.runs)
    t_inv_a, ya = timed(lambda: S.image_to_audio(img_a), args.runs)
    row("ours", q.name, t_fwd_a, t_inv_a, spectral_convergence(xa, ya, q), q)
    mel_a = S.image_to_mel(img_a).numpy()[0].astype(np.float64)

    t_fwd_l, _ = timed(lambda: librosa_audio_to_image(xa, q), args.peer_runs)
    t_inv_l, yl = timed(lambda: librosa_mel_to_audio(mel_a, q), args.peer_runs)
    row("librosa mel_to_audio (NNLS + 32 fast GL)", q.name, t_fwd_l, t_inv_l, spectral_convergence(xa, yl, q), q)

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, librosa {librosa.__version__}; "
          f"median of {args.runs} runs (ours) / {args.peer_runs} (peers); times per 5.12 s of audio")
    print(f"{'method':52s} {'preset':16s} {'audio->image':>13s} {'image->audio':>13s} {'SC':>7s}")
    for name, preset, fwd, inv, sc in rows:
        print(f"{name:52s} {preset:16s} {fwd:12.3f}s {inv:12.3f}s {sc:7.4f}")
    ours_r, naive_r, ours_a, lib_a = rows
    print(f"riffusion: image->audio {naive_r[3] / ours_r[3]:.1f}x faster than naive, "
          f"audio->image {naive_r[2] / ours_r[2]:.1f}x, SC ratio ours/naive {ours_r[4] / naive_r[4]:.2f}")
    print(f"audio-diffusion: image->audio {lib_a[3] / ours_a[3]:.1f}x faster than librosa, "
          f"audio->image {lib_a[2] / ours_a[2]:.1f}x, SC ratio ours/librosa {ours_a[4] / lib_a[4]:.2f}")
    target = "met" if ours_r[3] <= 1.0 and ours_r[4] <= naive_r[4] else "NOT met"
    print(f"target (riffusion image->audio <= 1.0 s per 5.12 s, SC <= naive): {target}")


if __name__ == "__main__":
    main()
