"""Memory: what a model weighs, and how much of a device the model manager may keep loaded.

``model_nbytes`` counts a model's weights as they will be after a move (the manager's eviction and
the full-size size checks use it); ``default_budget`` is the manager's budget on a device
(``STUDIO_MEMORY_BUDGET_GB``, else 75% of the card or of the host memory available at start).
"""

from __future__ import annotations

import os
from typing import Any

from core.errors import StudioError


def model_nbytes(model: Any, dtype: Any = None) -> int:
    """Bytes of a model's weights: torch modules, diffusers pipelines, or anything with ``nbytes``.

    dtype: the bytes the model will hold once moved with ``.to(device, dtype)``, which casts only
    floating-point tensors (None: as it is now). Objects with their own ``nbytes`` report that.
    """
    if isinstance(getattr(model, "parts", None), dict):  # a loaders.ModelBundle: its parts, each cast
        dtype = None if getattr(model, "cpu_only", False) else dtype  # cpu_only bundles never move
        return sum(model_nbytes(part, dtype) for part in model.parts.values()
                   if hasattr(part, "parameters") or hasattr(part, "nbytes"))
    if hasattr(model, "nbytes") and not hasattr(model, "parameters"):
        return int(model.nbytes)
    modules = []
    if hasattr(model, "components"):  # diffusers pipeline
        modules = [m for m in model.components.values() if hasattr(m, "parameters")]
    elif hasattr(model, "parameters"):
        modules = [model]
    seen: set[int] = set()
    total = 0
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                itemsize = dtype.itemsize if dtype is not None and tensor.is_floating_point() else tensor.element_size()
                total += tensor.numel() * itemsize
    return total


def available_memory_bytes() -> int | None:
    """Host memory available for new allocations now (Linux ``MemAvailable``: free memory plus the
    page cache that can be dropped), else the free pages the OS reports; None when neither is known."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kiB
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_budget(device: str) -> int | None:
    """Bytes of weights the manager keeps loaded on ``device``: STUDIO_MEMORY_BUDGET_GB when set; on
    CUDA 75% of the card (activations, the CUDA context and the allocator's cache need the rest);
    on the CPU and MPS (which shares host memory) 75% of the host memory available when the Studio
    starts (the rest for activations, audio and the app), so a CPU Space drops the least recently
    used model instead of running out of memory (every tab once holds ~17.6 GB in fp32); on ZeroGPU
    none (the platform places the models)."""
    value = os.environ.get("STUDIO_MEMORY_BUDGET_GB")
    if value:
        try:
            gigabytes = float(value)
        except ValueError:
            gigabytes = -1.0
        if not gigabytes > 0:
            raise StudioError(f"STUDIO_MEMORY_BUDGET_GB must be a positive number of GiB, not {value!r}.")
        return int(gigabytes * 2**30)
    from pipelines.models import device as device_module  # read at call time: tests and the platform set it

    if device_module.ZERO_GPU:
        return None
    if device.startswith("cuda"):
        import torch

        return int(0.75 * torch.cuda.get_device_properties(torch.device(device)).total_memory)
    available = available_memory_bytes()
    return None if available is None else int(0.75 * available)
