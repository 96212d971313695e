"""Seconds per optimizer step of every training recipe, on toy data made here, at tiny or full size.

    python benchmarks/training.py                          # tiny profile, 4 steps per recipe
    python benchmarks/training.py --profile fullsize --steps 3     # real sizes (builds ~9 GB of models once)
    python benchmarks/training.py --only style,lora --json

Each recipe runs as its user runs it (``python -m training.<recipe> ...``, one process on the CPU
unless ``--device cuda``), on three synthesised 6.5 s clips or three captioned 512 px pictures; the
figure is the recipe's own ``training.json`` ``seconds_per_step`` (wall time per optimizer step, the
first step left out), beside the process's peak resident memory. The first step pays the model
load and the allocator's warm-up, so use at least 3 steps. The CPU figures are honest only on a
quiet machine: the table prints the load average before and after each recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("style", "lora", "amuse_vae", "amuse_unet", "riffusion_lora")
RATE = 44100


def toy_data(folder: Path) -> tuple[Path, Path]:
    """Three tones with a slow tremolo (mono 44.1 kHz WAV) and three noise pictures with captions."""
    import numpy as np
    import soundfile as sf
    from PIL import Image

    clips, frames = folder / "clips", folder / "frames"
    clips.mkdir(parents=True, exist_ok=True)
    frames.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(RATE * 6.5)) / RATE
    for i, freq in enumerate((220.0, 330.0, 440.0)):
        tone = 0.3 * np.sin(2 * np.pi * freq * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
        sf.write(clips / f"tone{i}.wav", tone.astype(np.float32), RATE)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)).save(frames / f"p{i}.png")
        rows.append(json.dumps({"file_name": f"p{i}.png", "text": f"a calm picture number {i}"}))
    (frames / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return clips, frames


def run_recipe(recipe: str, flags: list[str], env: dict) -> tuple[int, float, str]:
    """Return code, peak RSS in GB and the output tail of ``python -m training.<recipe> flags``."""
    child = subprocess.Popen([sys.executable, "-m", f"training.{recipe}", *flags], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss / 1024**2, output[-1500:]


def benchmark_recipes(chosen: list[str], profile: str, steps: int, mixed_precision: str = "no",
                      batch_size: int | None = None, echo: bool = False,
                      deadline: float | None = None) -> list[dict]:
    """Run each recipe as its user does on toy data; one row per recipe (``seconds_per_step`` from its
    ``training.json``, peak RSS, load average around it). A recipe not started before ``deadline``
    (a ``time.perf_counter()`` value) gets a row with ``skipped`` instead."""
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1" if profile != "hub" else "0")}
    rows = []
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        clips, frames = toy_data(Path(tmp))
        for recipe in chosen:
            if deadline is not None and time.perf_counter() > deadline:
                rows.append({"recipe": recipe, "skipped": "time budget spent before it started"})
                continue
            output = Path(tmp) / "out" / recipe
            flags = ["--data", str(frames if recipe == "lora" else clips), "--output", str(output),
                     "--max-steps", str(steps), "--profile", profile, "--mixed-precision", mixed_precision,
                     "--checkpoint-every", "0"]
            if recipe == "riffusion_lora":
                flags += ["--instance-prompt", "jazz"]
            if recipe == "amuse_unet":
                flags += ["--vae", str(Path(tmp) / "out" / "amuse_vae")]
            batch = batch_size or (1 if recipe == "amuse_unet" else None)
            if batch:
                flags += ["--batch-size", str(batch)]
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            code, rss_gb, tail = run_recipe(recipe, flags, env)
            row = {"recipe": recipe, "profile": profile, "mixed_precision": mixed_precision, "returncode": code,
                   "wall_s": round(time.perf_counter() - started, 1), "peak_rss_gb": round(rss_gb, 2),
                   "load_before": round(load_before, 1), "load_after": round(os.getloadavg()[0], 1)}
            if code == 0:
                info = json.loads((output / "training.json").read_text())
                row.update(seconds_per_step=round(info["seconds_per_step"], 2), batch_size=batch or "recipe default")
            else:
                row["error"] = tail
            rows.append(row)
            if echo:
                figure = f"{row['seconds_per_step']:8.2f} s/step" if code == 0 else "  FAILED"
                print(f"{recipe:<16}{figure}   peak {row['peak_rss_gb']:5.1f} GB   wall {row['wall_s']:6.1f} s   "
                      f"load {row['load_before']} -> {row['load_after']}", flush=True)
                if code:
                    print(tail)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="tiny", choices=("tiny", "fullsize", "hub"))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--only", default=",".join(RECIPES), help="comma-separated recipes")
    parser.add_argument("--batch-size", type=int, default=None, help="per process (default: amuse_unet 1, others theirs)")
    parser.add_argument("--mixed-precision", default="no", choices=("no", "fp16", "bf16"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    chosen = [r for r in args.only.split(",") if r]
    unknown = set(chosen) - set(RECIPES)
    if unknown:
        parser.error(f"unknown recipe(s) {sorted(unknown)}; choose from {', '.join(RECIPES)}")
    if "amuse_unet" in chosen and "amuse_vae" not in chosen:
        chosen.insert(chosen.index("amuse_unet"), "amuse_vae")  # the UNet is conditioned on a trained VAE

    rows = benchmark_recipes(chosen, args.profile, args.steps, args.mixed_precision, args.batch_size,
                             echo=not args.json)
    if args.json:
        print(json.dumps(rows, indent=1))
    if any(r.get("returncode") for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
