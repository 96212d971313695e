"""Time of describing a clip (genre CNN + emotion CNN over the whole track, and the beat tracker).

    python benchmarks/music_description.py                 # tiny classifiers and the real-size
                                                           # architectures with random weights, CPU
    python benchmarks/music_description.py --seconds 60 --runs 3

Real-size timings need no weights: the original architectures are built with random weights
(same layers and widths as the TechJam .h5 files, so the same arithmetic). The first run pays
librosa's numba compilation and torch's warm-up; the median of the later runs is printed too.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def clip(seconds: float):
    import numpy as np

    sr = 22050
    t = np.arange(int(seconds * sr)) / sr
    y = 0.05 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    for start in np.arange(0.5, seconds - 0.05, 0.5):  # 120 BPM clicks
        i = int(start * sr)
        n = min(441, y.size - i)
        y[i : i + n] += np.sin(2 * np.pi * 1000 * t[:n]) * np.exp(-t[:n] * 200)
    return y.astype("float32")


def timed(fn, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:] or times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from classifiers import emotion, genre
    from classifiers.tempo import estimate_tempo
    from pipelines.systems import music_to_image
    from pipelines.models.building import tiny

    y = clip(args.seconds)
    tiny_g, tiny_e = genre.load(tiny.ensure("keras_genre")), emotion.load(tiny.ensure("keras_emotion"))
    first, median = timed(lambda: music_to_image.describe_music(y, 22050, tiny_g, tiny_e), args.runs)
    print(f"describe_music, tiny classifiers, {args.seconds:g} s clip: first {first:.2f} s, then {median:.2f} s")
    first, median = timed(lambda: estimate_tempo(y), args.runs)
    print(f"  of which tempo: first {first:.2f} s, then {median:.2f} s")

    with tempfile.TemporaryDirectory() as folder:
        for module in (genre, emotion):
            module.build_model().save(os.path.join(folder, module.WEIGHTS_FILE))
        real_g, real_e = genre.load(folder), emotion.load(folder)
    for name, model in (("genre (real size)", real_g), ("emotion (real size)", real_e)):
        first, median = timed(lambda: model.classify(y), args.runs)
        params = model.model.count_params()
        print(f"{name}: {params:,} params, {args.seconds:g} s clip: first {first:.2f} s, then {median:.2f} s")
    first, median = timed(lambda: music_to_image.describe_music(y, 22050, real_g, real_e), args.runs)
    print(f"describe_music, real-size classifiers: first {first:.2f} s, then {median:.2f} s")


if __name__ == "__main__":
    main()
