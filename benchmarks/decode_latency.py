"""Decode latency of a normal upload: in a warm decode worker (pipelines.signal.sandbox) vs in this process.

    python benchmarks/decode_latency.py [--calls 50]

``load_audio`` of a 5 s stereo 44.1 kHz 16-bit WAV to 22.05 kHz mono, ``--calls`` times each way after
one warm-up call; prints the median and the 90th percentile. In-process (``limits.DECODE_WORKERS = 0``)
is how every file was decoded before the worker pool.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.schema import limits  # noqa: E402
from pipelines.signal.audio import load_audio  # noqa: E402


def measure(path: str, calls: int) -> list[float]:
    load_audio(path, 22050)  # warm-up: the worker is started, the libraries imported
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        load_audio(path, 22050)
        times.append(time.perf_counter() - start)
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    rate = 44100
    tone = 0.3 * np.sin(np.arange(5 * rate) * 2 * np.pi * 440 / rate)
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "five-seconds.wav")
        sf.write(path, np.stack([tone, tone], 1), rate, subtype="PCM_16")
        workers = limits.DECODE_WORKERS
        for label, count in (("in this process", 0), ("in a decode worker", workers)):
            limits.DECODE_WORKERS = count
            times = measure(path, args.calls)
            print(f"{label:20} median {1000 * statistics.median(times):6.2f} ms   "
                  f"p90 {1000 * times[int(0.9 * len(times))]:6.2f} ms")


if __name__ == "__main__":
    main()
