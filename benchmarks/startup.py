"""Start-up time and idle memory of `python app.py --profile tiny`, median of --runs starts.

    python benchmarks/startup.py --runs 3

Start-up is what app.py prints (process start to serving) and, for a peer in the same run, the
time a bare `import gradio` takes in a fresh interpreter. Idle RSS is read 2 s after serving.
"""

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_once() -> tuple[float, float, float]:
    wall0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--profile", "tiny", "--device", "cpu", "--port", str(free_port())],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("Serving"):
                wall = time.perf_counter() - wall0
                printed = float(line.split("after ")[1].split(" s")[0])
                break
        else:
            raise RuntimeError("app.py exited before serving")
        time.sleep(2)
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        return printed, wall, rss
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def gradio_import() -> float:
    out = subprocess.run([sys.executable, "-c", "import time; t=time.perf_counter(); import gradio; "
                          "print(time.perf_counter()-t)"], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    starts = [start_once() for _ in range(runs)]
    imports = [gradio_import() for _ in range(runs)]
    printed = statistics.median(s[0] for s in starts)
    wall = statistics.median(s[1] for s in starts)
    rss = statistics.median(s[2] for s in starts)
    bare = statistics.median(imports)
    print(f"app.py --profile tiny, median of {runs}:")
    print(f"  start to serving (printed by app.py) {printed:6.2f} s")
    print(f"  start to serving (wall, this script) {wall:6.2f} s")
    print(f"  bare `import gradio`                 {bare:6.2f} s   ratio app/gradio import {wall / bare:.2f}")
    print(f"  idle RSS after serving               {rss:6.0f} MB  (no model loaded)")


if __name__ == "__main__":
    main()
