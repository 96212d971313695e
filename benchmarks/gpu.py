"""Every GPU figure in one command: what a lent GPU runs first (and what CI runs on the CPU, tiny).

    python benchmarks/gpu.py --json                        # full size on the GPU, ~5 min on one H100
    python benchmarks/gpu.py --json --out gpu.json --budget-s 200     # a shorter lease
    python benchmarks/gpu.py --profile tiny --device cpu --json --steps 2 --long-seconds 6 \\
        --text-seconds 6 --music-seconds 1 --image-size 64 --training-recipes style --training-steps 2

It builds only the full-size families its stages need (random weights in the real shapes, on the GPU's
RNG: ``STUDIO_FULLSIZE_DEVICE``), then runs these stages in this order, each under its share of
``--budget-s`` (a stage that would start with too little time left, or that runs past its share, is
reported as "skipped: reason"; the stages that go through the Studio are cancelled by its own
``should_stop``), so a short lease still returns the figures measured so far. ``--out`` is rewritten
after every stage.

1. ``window``: one 5.12 s sound-to-music window at the paper's settings (50 steps, strength 0.8, the
   repo's PNDM: 41 UNet calls) against stock ``StableDiffusionImg2ImgPipeline`` on the same
   components, image and settings, each with a per-stage split (text encoder, VAE, UNet, codec,
   mask, metrics, other) and call counts (``fullsize_window.run_window``).
2. ``sound_to_music_60s``: a 60 s sound (13 windows) through ``Studio.sound_to_music`` as the app calls
   it, at the "paper" and "fast" presets, window batch auto (``windows.window_batch_size``) and 1:
   seconds, real-time factor, UNet and text-encoder calls, peak host and GPU memory.
3. ``style``: ``Studio.style_interpolation`` on one window (2 styles, MusicTI's 50 steps at 0.7) against
   stock img2img with the same DDIM scheduler, steps, strength and guidance; UNet and text-encoder
   calls (one text-encoder call per request).
4. ``music_to_image``: the description (classifiers, tempo) timed apart, then ``Studio.music_to_image``
   from that sentence with the LoRA at scale 1 (fused: every UNet call checked) against stock
   ``StableDiffusionPipeline`` text-to-image without it, same steps, size and seed.
5. ``image_to_music``: ``Studio.image_to_music`` for ``--music-seconds`` (10): caption seconds, MusicGen
   seconds per generated second, decoder forwards.
6. ``text_to_music``: ``Studio.text_to_music`` for ``--text-seconds`` (12): seconds, windows, UNet calls.
7. ``compile``: the UNet's seconds per call (CFG batch 2, 512x512) eager and compiled
   (``unet_compile.compile_unet``), the compile's first-call cost, and the calls it takes to pay it back;
   what ``STUDIO_COMPILE`` changes. CUDA only (skipped elsewhere, with ``unet_compile.compile_choice``'s reason).
8. ``training``: seconds per optimizer step of every training recipe (``training.benchmark_recipes``,
   fp16 mixed precision on CUDA, fp32 elsewhere).

UNet and text-encoder call counts per request are in every diffusion stage's JSON. ``--steps N``
replaces every step count (CPU smoke runs); the JSON says which settings ran. ``--json`` ends the
output with one JSON line.

The stages themselves are in ``gpu_stages.py``; the log, the "skipped" outcomes, the machine's
description and the JSON writing in ``gpu_report.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCHMARKS))
from core.numba_cache import numba_cache_for  # noqa: E402

numba_cache_for("benchmark")  # before numba is imported (core/numba_cache.py)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KERAS_BACKEND", "torch")

from gpu_report import annotate, log, machine, save, skipped  # noqa: E402
from gpu_stages import STAGE_FUNCTIONS, Context  # noqa: E402

STAGES = ("window", "sound_to_music_60s", "style", "music_to_image", "image_to_music", "text_to_music", "compile",
          "training")
# share of --budget-s each stage may take (leftover time flows to the later stages)
SHARES = {"window": 0.10, "sound_to_music_60s": 0.30, "style": 0.06, "music_to_image": 0.06, "image_to_music": 0.08,
          "text_to_music": 0.06, "compile": 0.12, "training": 0.22}
# the fullsize tabs (benchmarks/fullsize.py TAB_FAMILIES) whose families each stage needs built
STAGE_TABS = {"window": ("sound_to_music",), "sound_to_music_60s": ("sound_to_music",), "style": ("style",),
              "music_to_image": ("music_to_image",), "image_to_music": ("image_to_music",),
              "text_to_music": ("sound_to_music",), "compile": ("sound_to_music",), "training": ()}
MIN_START_S = 3.0  # a stage is not started with less than this left


def run(args) -> dict:
    """Run the chosen stages under the budget; returns the JSON summary (also written to ``--out``)."""
    chosen = [s for s in STAGES if s in args.stages]
    summary: dict = {"profile": args.profile, "budget_s": args.budget_s, "steps_override": args.steps,
                     "machine": machine(args.device), "stages": {}}

    started = time.perf_counter()
    os.environ.setdefault("STUDIO_CACHE", str(ROOT / ".cache" / "studio"))
    if args.profile == "fullsize":
        from fullsize import build_cache

        tabs = sorted({t for s in chosen for t in STAGE_TABS[s]})
        summary["build_s"] = round(build_cache(tabs, args.device), 1) if tabs else 0.0
    from pipelines.studio import Studio

    studio = Studio(profile=args.profile, device=args.device)
    summary["dtype"] = studio.info.dtype
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    summary["cpu_threads"] = torch.get_num_threads()
    deadline = time.perf_counter() + args.budget_s  # the build is not counted: it happens once per machine
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as folder:
        ctx = Context(studio, args, Path(folder))
        for index, name in enumerate(STAGES):
            if name not in chosen:
                summary["stages"][name] = skipped("not asked for (--stages)")
                continue
            left = deadline - time.perf_counter()
            if left < MIN_START_S:
                summary["stages"][name] = skipped(f"the time budget of {args.budget_s:g} s is spent")
                save(summary, args.out)
                continue
            later = sum(SHARES[s] for s in STAGES[index:] if s in chosen)
            ctx.deadline = time.perf_counter() + left * SHARES[name] / later  # its share of what is left
            log(f"stage {name}: up to {ctx.deadline - time.perf_counter():.0f} s ...")
            load_before = os.getloadavg()[0]
            stage_start = time.perf_counter()
            try:
                outcome = STAGE_FUNCTIONS[name](ctx)
            except Exception as error:  # noqa: BLE001  (one failed stage must not lose the others' figures)
                from core.errors import Cancelled

                if isinstance(error, Cancelled):
                    outcome = skipped(f"cancelled past its share of the budget ({time.perf_counter() - stage_start:.0f} s)")
                else:
                    outcome = skipped(f"error: {type(error).__name__}: {str(error)[:300]}")
            summary["stages"][name] = outcome = annotate(outcome, stage_start, load_before)
            log(f"stage {name}: {outcome if isinstance(outcome, str) else 'done'} "
                f"({time.perf_counter() - stage_start:.1f} s)")
            if ctx.cuda:
                torch.cuda.empty_cache()
            else:
                studio.manager.evict_all()  # on the CPU one stage's models at a time (full size: ~4.3 GB each)
            save(summary, args.out)
    summary["total_s"] = round(time.perf_counter() - started, 1)
    save(summary, args.out)
    return summary


def parse(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="fullsize", choices=("fullsize", "tiny"))
    parser.add_argument("--device", default=None, help="cuda (default when there is one) or cpu")
    parser.add_argument("--budget-s", type=float, default=270.0,
                        help="seconds for all the stages (the full-size build is not counted)")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated: " + ", ".join(STAGES))
    parser.add_argument("--steps", type=int, default=None, help="every step count (default: each tab's paper setting)")
    parser.add_argument("--long-seconds", type=float, default=60.0, help="the long sound for sound to music")
    parser.add_argument("--text-seconds", type=float, default=12.0, help="text to music length")
    parser.add_argument("--music-seconds", type=float, default=10.0, help="image to music length")
    parser.add_argument("--image-size", type=int, default=512, help="music to image width and height")
    parser.add_argument("--training-recipes", default=None, help="comma-separated (default: every recipe)")
    parser.add_argument("--training-steps", type=int, default=4, help="optimizer steps per recipe (>= 3)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="ours and stock timed alternately this many times each (medians reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch's CPU threads (default: torch's own); 1 makes the CPU-seconds ratios "
                             "steady on a shared machine")
    parser.add_argument("--out", default=None, help="JSON file, rewritten after every stage")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    args.stages = {s.strip() for s in args.stages.split(",") if s.strip()}
    if unknown := args.stages - set(STAGES):
        parser.error(f"unknown stage(s): {', '.join(sorted(unknown))}")
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    summary = run(args)
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
