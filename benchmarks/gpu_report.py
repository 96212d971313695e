"""What ``benchmarks/gpu.py`` writes: the log lines, the "skipped: reason" outcomes, the machine's
description and the JSON fields every stage shares (call counts, peak memory, load average).

A stage's outcome is a dict of figures or the string ``"skipped: reason"``; ``save`` writes the whole
summary to ``--out`` (rewritten after every stage, so a lease cut short keeps what was measured).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from fullsize_tabs import GB, PeakMemory, Stages


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def skipped(reason: str) -> str:
    return f"skipped: {reason}"


def calls_of(stages: Stages) -> dict:
    """UNet and text-encoder calls counted by ``stages`` (the JSON's per-request call counts)."""
    return {"unet_calls": stages.calls["UNet"], "text_encoder_calls": stages.calls["text encoder"]}


def memory_of(memory: PeakMemory) -> dict:
    """Peak host and (CUDA) device memory in GB, 2 decimals; ``peak_gpu_gb`` None off CUDA."""
    return {"peak_rss_gb": round(memory.peak_rss / GB, 2),
            "peak_gpu_gb": None if memory.peak_device is None else round(memory.peak_device / GB, 2)}


def machine(device: str) -> dict:
    """The device, library versions, CPU cores and load average (and the GPU's name and memory)."""
    import diffusers
    import torch
    import transformers

    info = {"device": device, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "cpu_cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(torch.device(device)).total_memory / GB, 1)
    return info


def annotate(outcome, stage_start: float, load_before: float):
    """A finished stage's outcome with its wall seconds and the 1-minute load average before and after
    (CPU figures are honest only on a quiet machine); a "skipped" string is returned as it is."""
    if isinstance(outcome, dict):
        outcome["stage_s"] = round(time.perf_counter() - stage_start, 1)
        outcome["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return outcome


def save(summary: dict, out: str | None) -> None:
    """Write the summary as indented JSON to ``out`` (nothing when None)."""
    if out:
        Path(out).write_text(json.dumps(summary, indent=1) + "\n")
