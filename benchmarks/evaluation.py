"""What evaluation costs per item: SSIM/CENS of a pair in each mode, and CLAP embeddings.

    python benchmarks/evaluation.py                      # the mask paper's six pairs, tiny CLAP, CPU
    python benchmarks/evaluation.py --profile fullsize   # CLAP at its real size (random weights)
    python benchmarks/evaluation.py --device cuda --profile hub

Pairs: the mask paper's own (5.11 s each; scripts/real_data.py finds them) when present, else synthetic 5 s sounds. CLAP:
one 10 s window at 48 kHz, embedded ``--runs`` times after one warm-up (median printed). Prints the
paper-mode values of each pair too, so the numbers in the README can be checked.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pairs():
    import numpy as np

    from scripts.real_data import find_real_data

    if (found := find_real_data("mask-paper")) is not None:
        from evaluation.pair import load_44k

        real = found / "mask-paper"

        for path in sorted((real / "everyday").glob("*.wav")):
            yield path.stem, load_44k(path), load_44k(real / "generated" / f"{path.stem}_output.wav")
        return
    rng = np.random.default_rng(0)
    for i in range(3):
        a = (rng.standard_normal(5 * 44100) * 0.1).astype("float32")
        yield f"noise{i}", a, (a + rng.standard_normal(a.size).astype("float32") * 0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny", choices=("tiny", "fullsize", "hub"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import numpy as np

    from pipelines.signal import metrics
    from pipelines.studio import Studio

    times = {"paper": [], "studio": []}
    values = []
    for name, a, b in pairs():
        for mode, spent in times.items():
            start = time.perf_counter()
            result = metrics.pair_metrics(a, b, mode)
            spent.append(time.perf_counter() - start)
            if mode == "paper":
                values.append((name, result))
    for name, result in values:
        print(f"paper {name:14s} SSIM {result['ssim']:.4f}  CENS {result['chroma_cens']:.4f}")
    print(f"paper  mean  SSIM {np.mean([r['ssim'] for _, r in values]):.4f}  "
          f"CENS {np.mean([r['chroma_cens'] for _, r in values]):.4f}")
    for mode, seconds in times.items():
        print(f"pair metrics, {mode} mode: median {statistics.median(seconds):.2f} s per pair ({len(seconds)} pairs)")

    studio = Studio(profile=args.profile, device=args.device)
    t = np.arange(10 * 48000) / 48000
    window = (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32")
    start = time.perf_counter()
    studio.with_clap(lambda e: e.audio([window], 48000))
    print(f"CLAP ({args.profile}, {args.device}) load + first embedding: {time.perf_counter() - start:.2f} s")
    runs = []
    for _ in range(args.runs):
        start = time.perf_counter()
        studio.with_clap(lambda e: e.audio([window], 48000))
        runs.append(time.perf_counter() - start)
    print(f"CLAP audio embedding of one 10 s window: median {statistics.median(runs):.3f} s over {args.runs} runs")


if __name__ == "__main__":
    main()
