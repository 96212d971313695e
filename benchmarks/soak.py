"""Soak test (not in CI): N clients for M minutes over every endpoint of the real app (tiny profile).

    python benchmarks/soak.py --clients 4 --minutes 3

Starts ``app.py --profile tiny`` as its own process with fresh temporary folders, then each client
(one ``gradio_client.Client``, one session) loops: a random endpoint with valid inputs or, one time in
three, invalid ones (wrong numbers, empty text, a text file named .wav, no file); one call in six is
cancelled after a random delay; with ``--hostile F`` a fraction F of the calls sends a hostile file
instead (a WAV that hangs libsndfile, a float WAV with a peak of 1e30, a 7000x7000 float TIFF that
must decode within its memory bound, the app's own source as a sound), each of which must be refused
in our words or, the TIFF, answered. It reports:

- calls by outcome per endpoint: ``ok``, ``refused`` (a clear user error), ``cancelled``, ``busy``
  (our per-user limit or gradio's full queue), ``internal`` (an unexpected error, a server path or
  gradio's "Could not preprocess" in a message: these must stay at zero), ``transport``;
- p50 / p95 latency per endpoint (calls that ran to an answer);
- server RSS (and its decode workers'), gradio's temp folder in files and MB and the studio's
  output files over time, and how many decode workers were killed and replaced.

The exit status is 1 when any internal error was seen.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
sys.path.insert(0, str(ROOT))


def hanging_wav(size: int = 16 * 1024) -> bytes:
    """A 16 kB PCM WAV whose LIST/INFO holds an unknown sub-chunk of declared size 0xFFFFFFF8:
    libsndfile 1.2.2 re-reads that sub-chunk forever (libsndfile issue #1118)."""
    fmt = struct.pack("<HHIIHH", 1, 1, 44100, 88200, 2, 16)
    info = b"INFO" + b"ZZZZ" + struct.pack("<I", 0xFFFFFFF8) + b"\0" * 16
    head = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"LIST" + struct.pack("<I", len(info)) + info
    samples = size - 12 - len(head) - 8
    body = b"WAVE" + head + b"data" + struct.pack("<I", samples) + b"\0" * samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_hostile_files(folder: Path) -> dict[str, Path]:
    """The soak's hostile files: name -> path."""
    import numpy as np
    import soundfile as sf
    from PIL import Image

    files = {"hanging": folder / "hanging.wav", "absurd": folder / "absurd.wav", "float_tiff": folder / "float.tif"}
    files["hanging"].write_bytes(hanging_wav())
    sf.write(files["absurd"], (np.sin(np.arange(44100) / 20.0) * 1e30).astype(np.float32), 44100, subtype="FLOAT")
    values = np.full((7000, 7000), 2.0, np.float32)  # 0.3 MB on disk, 196 MB decoded
    values[0] = -1.0
    Image.fromarray(values, "F").save(files["float_tiff"], compression="tiff_adobe_deflate")
    return files


def _hostile_calls(files: dict[str, Path]):
    """name -> (endpoint, args factory, words the refusal must hold)."""
    from gradio_client import handle_file

    return {
        "hanging wav": ("/audio_to_spectrogram", lambda: [handle_file(str(files["hanging"])), "riffusion", False],
                        "could not be decoded within"),
        "1e30 wav": ("/describe_music", lambda: [handle_file(str(files["absurd"]))], "far beyond full scale"),
        "7000px float tiff": ("/recommend_songs", lambda: [handle_file(str(files["float_tiff"])), ""], None),
        # gradio_client uploads whatever path it is given, so the app's own source arrives as an upload
        "app.py as sound": ("/audio_to_spectrogram", lambda: [handle_file(str(ROOT / "app.py")), "riffusion", False],
                            "could not be read as audio"),
    }


def _calls(bad_text: str, spectrogram_png: str):
    """endpoint -> (valid args, invalid args) factories; files go through handle_file."""
    from gradio_client import handle_file

    wav = lambda name="groove.wav": handle_file(str(ASSETS / name))  # noqa: E731
    png = lambda name="sunset.png": handle_file(str(ASSETS / name))  # noqa: E731
    junk = lambda: handle_file(bad_text)  # noqa: E731
    masked = lambda audio, steps=4: [audio, "mask_model", "funk drums", "", 1.0, 0.05, 200, 150, steps, 0.75,  # noqa: E731
                                     8.0, 1, "repo"]
    return {
        "/status": (lambda: [], lambda: []),  # nothing to get wrong
        "/audio_to_spectrogram": (lambda: [wav("kettle.wav"), "riffusion", False], lambda: [junk(), "riffusion", False]),
        "/spectrogram_to_audio": (lambda: [handle_file(spectrogram_png), "auto"], lambda: [junk(), "auto"]),
        "/preview_mask": (lambda: [wav("kettle.wav"), 1.0, 0.05, 200, 150], lambda: [None, 1.0, 0.05, 200, 150]),
        "/describe_music": (lambda: [wav()], lambda: [junk()]),
        "/masked_img2img": (lambda: masked(wav("knocks.wav")), lambda: masked(wav("knocks.wav"), steps=0)),
        "/music_to_image": (lambda: [None, "a red violin in the rain", 2, 7.5, 64, 64, 3, 0.0],
                            lambda: [None, "   ", 2, 7.5, 64, 64, 3, 0.0]),
        "/image_to_music": (lambda: [None, "calm piano by the sea", 2, 3.0, 1.0, 250, 0.0, 0],
                            lambda: [None, "x", 99, 3.0, 1.0, 250, 0.0, 0]),
        "/recommend_songs": (lambda: [png("forest.png"), ""], lambda: [junk(), ""]),
        "/style_interpolation": (lambda: [wav("knocks.wav"), ["jazz", "rock"], "0.5, 0.5", 0.5, 4, 5.0, 23],
                                 lambda: [wav("knocks.wav"), ["jazz"], "1, 2, 3", 0.5, 4, 5.0, 23]),
        "/playlist_to_music": (lambda: [[wav(), wav("knocks.wav")], 3, 7.5, 1], lambda: [[], 3, 7.5, 1]),
    }


_LEAKS = re.compile(r"Could not preprocess|Something unexpected|Traceback|/tmp/|/work/|\w+Error:")


def classify(error: BaseException) -> str:
    text = str(error)
    if "Busy" in text or "Queue is full" in text:
        return "busy"
    if type(error).__name__ == "AppError":
        return "internal" if _LEAKS.search(text) else "refused"
    if "cancel" in type(error).__name__.lower():
        return "cancelled"
    return "transport"


class Soak:
    def __init__(self, url: str, minutes: float, seed: int, bad_text: str, hostile: dict | None = None,
                 hostile_share: float = 0.0):
        from gradio_client import Client, handle_file

        # a spectrogram the app made itself: the valid input of /spectrogram_to_audio
        png, _ = Client(url, verbose=False).predict(handle_file(str(ASSETS / "kettle.wav")), "riffusion", False,
                                                    api_name="/audio_to_spectrogram")
        self.url, self.end, self.rng = url, time.monotonic() + 60 * minutes, random.Random(seed)
        self.calls = _calls(bad_text, png)
        self.hostile, self.hostile_share = hostile or {}, hostile_share
        self.outcomes: dict[str, Counter] = defaultdict(Counter)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.internal: list[str] = []
        self.refusals: dict[tuple[str, bool], str] = {}  # (endpoint, valid input) -> one message
        self.lock = threading.Lock()

    def client(self, index: int) -> None:
        from gradio_client import Client

        client = Client(self.url, verbose=False)
        rng = random.Random(self.rng.random() + index)
        while time.monotonic() < self.end:
            expected = None
            if self.hostile and rng.random() < self.hostile_share:
                kind = rng.choice(sorted(self.hostile))
                endpoint, make, expected = self.hostile[kind]
                args, valid, cancel, label = make(), False, False, f"{endpoint} [{kind}]"
            else:
                endpoint = rng.choice(sorted(self.calls))
                valid = endpoint == "/status" or rng.random() > 1 / 3
                args = self.calls[endpoint][0 if valid else 1]()
                cancel = rng.random() < 1 / 6
                label = endpoint
            start = time.perf_counter()
            try:
                job = client.submit(*args, api_name=endpoint)
                if cancel:
                    time.sleep(rng.uniform(0.0, 1.5))
                    job.cancel()
                    outcome = "cancelled"
                    try:
                        job.result(timeout=60)
                    except Exception:  # noqa: BLE001  (a cancelled job may end either way)
                        pass
                else:
                    job.result(timeout=600)
                    outcome = "ok" if valid or (label != endpoint and expected is None) else "accepted-invalid"
            except BaseException as error:  # noqa: BLE001
                outcome = classify(error)
                if outcome == "refused" and expected and expected not in str(error):
                    outcome = "internal"  # a hostile file must get its own clear answer
                with self.lock:
                    if outcome == "internal":
                        self.internal.append(f"{label}: {str(error)[:300]}")
                    elif outcome == "refused":
                        self.refusals.setdefault((label, valid), str(error)[:200])
            seconds = time.perf_counter() - start
            with self.lock:
                self.outcomes[label][outcome] += 1
                if outcome in ("ok", "refused", "accepted-invalid"):
                    self.latency[label].append(seconds)


def count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder)) if folder.exists() else 0


def folder_mb(folder: Path) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files
               if os.path.exists(os.path.join(d, f))) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--hostile", type=float, default=0.1, help="share of calls that send a hostile file")
    parser.add_argument("--decode-seconds", type=float, default=None,
                        help="the server's decode time limit (STUDIO_DECODE_SECONDS; default: the app's own)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="studio-soak-"))
    gradio_cache = work / "gradio"
    bad_text = work / "not-audio.wav"
    bad_text.write_text("this is text, not sound")
    port = 7860 + random.Random().randrange(1000)
    env = {**os.environ, "GRADIO_TEMP_DIR": str(gradio_cache), "TMPDIR": str(work), "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    if args.decode_seconds is not None:
        env["STUDIO_DECODE_SECONDS"] = str(args.decode_seconds)
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--profile", "tiny", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log_lines: list[str] = []
    ready = threading.Event()

    def read_log():
        for line in server.stdout:
            log_lines.append(line)
            if line.startswith("Serving"):
                ready.set()

    threading.Thread(target=read_log, daemon=True).start()
    if not ready.wait(180):
        server.kill()
        sys.exit("the app did not start:\n" + "".join(log_lines[-30:]))
    outputs = Path(work) / "studio-outputs"  # pipelines.schema.outputs.OUTPUT_ROOT under the server's TMPDIR
    proc = psutil.Process(server.pid)
    soak = Soak(f"http://127.0.0.1:{port}/", args.minutes, args.seed, str(bad_text),
                _hostile_calls(write_hostile_files(work)), args.hostile)
    samples = []

    def sample() -> tuple:
        rss = proc.memory_info().rss
        for child in proc.children(recursive=True):  # the decode workers
            try:
                rss += child.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return (time.monotonic() - start, rss / 2**20, count_files(gradio_cache), folder_mb(gradio_cache),
                count_files(outputs))

    threads = [threading.Thread(target=soak.client, args=(i,), daemon=True) for i in range(args.clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        samples.append(sample())
        time.sleep(args.sample_seconds)
    samples.append(sample())
    killed = sum("decode worker killed" in line or "decode worker died" in line for line in log_lines)
    server.terminate()
    server.wait(30)

    print(f"\nSoak: {args.clients} clients x {args.minutes:g} min on the tiny profile "
          f"({sum(sum(c.values()) for c in soak.outcomes.values())} calls)\n")
    print(f"{'endpoint':44} {'calls':>5} {'p50 s':>7} {'p95 s':>7}  outcomes")
    for endpoint in sorted(soak.outcomes):
        times = sorted(soak.latency[endpoint])
        p50 = f"{statistics.median(times):7.2f}" if times else "      -"
        p95 = f"{times[min(len(times) - 1, int(0.95 * len(times)))]:7.2f}" if times else "      -"
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(soak.outcomes[endpoint].items()))
        print(f"{endpoint:44} {sum(soak.outcomes[endpoint].values()):5d} {p50} {p95}  {outcomes}")
    totals = Counter()
    for counter in soak.outcomes.values():
        totals.update(counter)
    print("\nerrors by kind:", ", ".join(f"{k} {v}" for k, v in sorted(totals.items())))
    print(f"decode workers killed and replaced: {killed}")
    print(f"\n{'t s':>6} {'RSS MB':>8} {'gradio files':>13} {'gradio MB':>10} {'output files':>13}")
    for t, rss, cache, cache_mb, out in samples:
        print(f"{t:6.0f} {rss:8.0f} {cache:13d} {cache_mb:10.1f} {out:13d}")
    print("\none refusal per endpoint and input kind (a valid input refused would be a bug):")
    for (endpoint, valid), message in sorted(soak.refusals.items()):
        print(f"  {endpoint} {'VALID' if valid else 'invalid'}: {message}")
    for line in soak.internal[:10]:
        print("internal:", line)
    sys.exit(1 if soak.internal else 0)


if __name__ == "__main__":
    main()
