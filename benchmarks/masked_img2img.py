"""Time per 5.12 s window of sound-to-music, split into spectrogram, diffusion and inversion.

    python benchmarks/masked_img2img.py                          # tiny models on the CPU (no network)
    python benchmarks/masked_img2img.py --profile hub --device cuda --runs 5   # the real model on a GPU

Prints the median of --runs runs for each stage, the whole window, and peak GPU memory on CUDA.
Peer figure from the paper: 5-10 s per 5 s clip on a T4 (fp16, 40 of 50 steps run). Our target on an
H100/A100 in fp16 is under 1 s per window.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="tiny", choices=["tiny", "hub"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="mask_model", choices=["mask_model", "riffusion"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--strength", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.profile == "tiny":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    torch.set_num_threads(args.threads)
    from pipelines.signal import audio, spectrogram
    from pipelines.systems.masked_img2img import SoundToMusicSettings, make_mask, steps_that_run, with_scheduler
    from pipelines.studio import Studio

    studio = Studio(profile=args.profile, device=args.device)
    settings = SoundToMusicSettings(steps=args.steps, strength=args.strength)
    sound = audio.load_audio(Path(__file__).resolve().parents[1] / "assets" / "kettle.wav", 44100)
    window = sound.samples[:, : spectrogram.RIFFUSION.window_samples]

    start = time.perf_counter()
    with studio.manager.use(args.model) as pipe:
        load_s = time.perf_counter() - start
        pipe.set_progress_bar_config(disable=True)
        masked = with_scheduler(pipe, settings.scheduler)
        steps_run = steps_that_run(pipe, settings)  # what runs: PNDM's warm-up adds one to steps x strength
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        stages = {"spectrogram+mask": [], "diffusion": [], "inversion": [], "window": []}
        for run in range(args.runs + 1):  # the first run warms up and is not counted
            t0 = time.perf_counter()
            image = spectrogram.audio_to_image(window, spectrogram.RIFFUSION, device=studio.device)
            change_map = make_mask(image, settings.mask)
            sync()
            t1 = time.perf_counter()
            out = masked(prompt=settings.prompt, image=image.convert("RGB"), strength=settings.strength,
                         num_inference_steps=settings.steps, guidance_scale=settings.guidance,
                         generator=torch.Generator().manual_seed(settings.seed), change_map=change_map).images[0]
            sync()
            t2 = time.perf_counter()
            spectrogram.image_to_audio(out.convert("L").convert("RGB"), spectrogram.RIFFUSION, device=studio.device)
            sync()
            t3 = time.perf_counter()
            if run:
                for key, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                    stages[key].append(value)
    print(f"profile {args.profile}, model {args.model}, device {studio.device} ({studio.info.dtype}), "
          f"torch threads {torch.get_num_threads()}, {args.steps} steps x strength {args.strength} "
          f"= {steps_run} UNet calls run ({type(masked.scheduler).__name__}); load {load_s:.2f} s; median of {args.runs}")
    for key, values in stages.items():
        print(f"  {key:<18} {statistics.median(values):7.3f} s per 5.12 s window")
    if args.device.startswith("cuda"):
        print(f"  peak GPU memory    {torch.cuda.max_memory_allocated() / 2**30:7.2f} GiB")
    window_s = statistics.median(stages["window"])
    print(f"  real-time factor   {5.12 / window_s:7.2f}x (5.12 s of audio per {window_s:.2f} s)")


if __name__ == "__main__":
    main()
