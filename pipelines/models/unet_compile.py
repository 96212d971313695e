"""Whether and how the SD UNets are compiled on a device (applied by ``loaders.tune_sd``).

Split from ``device.py``, which places and budgets models; this module only decides about and runs
``torch.compile``. ZeroGPU is read from ``device.ZERO_GPU`` (its one home).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from core.errors import StudioError

from pipelines.models import device as _device


# -- the UNet as fast as the card allows: the decisions (applied by ``loaders.tune_sd``) -----------------
# torch.compile pays where inductor's fused Triton kernels beat cuDNN/cuBLAS eager by more than the
# compile costs: Ampere and newer (A10G, L4, A100, H100: compute capability >= 8.0). Regional
# compilation (only the UNet's repeated transformer block, diffusers' ``compile_repeated_blocks``)
# keeps the compile to the block's few shapes, shared by every block and every SD UNet of the process.
COMPILE_MIN_CAPABILITY = (8, 0)
# distinct shapes one compiled block may see with ``dynamic=False``: 4 resolutions of the 512x512 UNet
# (64x64 down to 8x8 latents) times the batch sizes a request runs (1 inversion, 2 CFG, 2B windows)
COMPILE_SHAPE_LIMIT = 64


@dataclass(frozen=True)
class CompileChoice:
    """Whether the SD UNets are compiled on a device, and why (shown in ``pipe.tuning``)."""

    on: bool
    reason: str


def compile_choice(device: str) -> CompileChoice:
    """``torch.compile`` for the SD UNets on ``device``, from ``STUDIO_COMPILE`` and the card.

    STUDIO_COMPILE unset or "auto": on for CUDA cards of compute capability >= ``COMPILE_MIN_CAPABILITY``
    with a C compiler (Triton builds its kernel launcher with one), off elsewhere; "1" forces it on
    any CUDA card, "0" turns it off. Never on the CPU or MPS (minutes of compiling for little) nor on
    ZeroGPU (each request gets a fresh GPU slot: compiled kernels would not survive; ahead-of-time
    compile is the route there). Raises StudioError for another value.
    """
    import shutil

    value = os.environ.get("STUDIO_COMPILE", "").strip().lower()
    if value not in ("", "auto", "0", "1"):
        raise StudioError(f"STUDIO_COMPILE must be 0, 1 or auto, not {value!r}.")
    if not device.startswith("cuda"):
        return CompileChoice(False, f"{device}: torch.compile is used on CUDA only")
    if _device.ZERO_GPU:
        return CompileChoice(False, "ZeroGPU: every request gets a fresh GPU slot (ahead-of-time compile is the route)")
    if value == "0":
        return CompileChoice(False, "STUDIO_COMPILE=0")
    if value == "1":
        return CompileChoice(True, "STUDIO_COMPILE=1")
    import torch

    major, minor = torch.cuda.get_device_capability(torch.device(device))
    if (major, minor) < COMPILE_MIN_CAPABILITY:
        return CompileChoice(False, f"auto: compute capability {major}.{minor} < "
                                    f"{COMPILE_MIN_CAPABILITY[0]}.{COMPILE_MIN_CAPABILITY[1]}")
    if not (shutil.which("cc") or shutil.which("gcc")):
        return CompileChoice(False, "auto: no C compiler for Triton's launcher")
    return CompileChoice(True, f"auto: compute capability {major}.{minor}")


def compile_unet(unet: Any, **options: Any) -> int:
    """Regional ``torch.compile`` of a diffusers UNet in place: each repeated transformer block
    (``unet._repeated_blocks``) is compiled with fixed shapes (``dynamic=False``; a 512x512 request
    always has the same ones), and since every block runs the same code, dynamo compiles each shape
    once per process and reuses it for every block and every SD UNet loaded later. A compile that
    fails (no Triton, a compiler error) falls back to eager instead of failing the request.
    ``options`` go to ``torch.compile`` (tests pass ``backend="eager"``). Returns the blocks compiled.
    """
    import torch

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), COMPILE_SHAPE_LIMIT))
    config.suppress_errors = True
    blocks = [m for m in unet.modules() if type(m).__name__ in getattr(unet, "_repeated_blocks", ())]
    for block in blocks:
        block.compile(dynamic=False, **options)
    return len(blocks)
