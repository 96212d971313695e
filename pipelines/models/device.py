"""DeviceManager: the one owner of the accelerator.

Pipelines never move models themselves. They register a loader under a name and then ask:

    manager.register("riffusion", load_riffusion)          # loader returns the model on the CPU
    result = manager.run("riffusion", lambda pipe: pipe(...))

The manager loads lazily on first use, moves the model to the device with the chosen dtype, keeps
as many models resident as the memory budget allows (evicting the least recently used: moved back
to the CPU, or dropped), serialises GPU work behind one lock while CPU-side work runs freely, and
retries once after freeing every other model when the device runs out of memory.

ZeroGPU (Hugging Face's shared GPUs) is detected with ``SPACES_ZERO_GPU``: there the platform wants
models on "cuda" from the start and GPU work inside ``spaces.GPU``-decorated calls; ``gpu_task``
wraps a function that way, and is the identity everywhere else.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from core.errors import OutOfMemoryError, StudioError
from pipelines.models.memory import model_nbytes

log = logging.getLogger(__name__)

ZERO_GPU = bool(os.environ.get("SPACES_ZERO_GPU"))
# What ZeroGPU accepts (Hugging Face's ZeroGPU page, 2026): the README front matter's python_version and
# pre-requirements.txt's torch pin must be among these (tests/test_spaces_conventions.py checks both).
ZERO_GPU_PYTHONS = ("3.10", "3.12")  # 3.10.13 and 3.12.12
ZERO_GPU_TORCH = ("2.8.0", "2.11.0")  # oldest and newest accepted
# ``spaces.GPU(size=...)``: "large" is half a card (the default, 1x quota), "xlarge" a whole one (2x quota).
# Every tab's models fit half a card (17.6 GB fp32 for all of them together), so requests ask for "large"
# unless STUDIO_ZERO_GPU_SIZE says otherwise.
ZERO_GPU_SIZES = ("large", "xlarge")


def zero_gpu_size() -> str:
    """The ZeroGPU size requests ask for: ``STUDIO_ZERO_GPU_SIZE`` ("large" or "xlarge"), else "large"."""
    value = os.environ.get("STUDIO_ZERO_GPU_SIZE", "large").strip().lower()
    if value not in ZERO_GPU_SIZES:
        raise StudioError(f"STUDIO_ZERO_GPU_SIZE must be one of {', '.join(ZERO_GPU_SIZES)}, not {value!r}.")
    return value


def import_spaces_first() -> Any | None:
    """Import ``spaces`` on ZeroGPU, which must happen before torch is imported anywhere."""
    if not ZERO_GPU:
        return None
    import spaces  # noqa: PLC0415  (optional package, only on Spaces)

    return spaces


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    dtype_name: str  # "float16", "bfloat16" or "float32": a name, so this module imports torch lazily

    @property
    def dtype(self):
        import torch

        return getattr(torch, self.dtype_name)


def choose_device(requested: str | None = None) -> DeviceChoice:
    """CUDA with fp16, Apple MPS with fp32 (fp16 misses kernels there), else CPU with fp32."""
    import torch

    name = (requested or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available() or ZERO_GPU:
            name = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name.startswith("cuda"):
        if not (torch.cuda.is_available() or ZERO_GPU):
            raise StudioError(f"Device {name!r} was asked for, but no CUDA GPU is available here.")
        return DeviceChoice(name, "float16")
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise StudioError("Device 'mps' was asked for, but Apple MPS is not available here.")
        return DeviceChoice("mps", "float32")
    if name == "cpu":
        return DeviceChoice("cpu", "float32")
    raise StudioError(f"Unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps.")


def is_out_of_memory(error: BaseException) -> bool:
    try:
        import torch

        if isinstance(error, torch.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


@dataclass
class _Entry:
    name: str
    loader: Callable[[], Any]
    model: Any = None
    on_device: bool = False
    nbytes: int = 0
    last_used: float = 0.0
    uses: int = 0
    load_lock: threading.Lock = field(default_factory=threading.Lock)
    load_seconds: float = 0.0


class DeviceManager:
    """Lazy loading, LRU residency under a memory budget, one GPU lock, OOM retry.

    Args:
        device: where models run ("cpu", "cuda", "mps", or any name a fake model accepts in tests).
        dtype: the torch dtype for that device (None keeps the model's own).
        budget_bytes: most bytes of weights resident on the device at once (None: no limit).
        eviction: "offload" moves evicted models back to the CPU (fast to bring back), "drop"
            deletes them (frees host memory too). On the CPU there is nowhere to offload to, so
            models over the budget are always dropped.
    """

    def __init__(
        self,
        device: str = "cpu",
        dtype: Any = None,
        budget_bytes: int | None = None,
        eviction: str = "offload",
    ):
        if eviction not in ("offload", "drop"):
            raise ValueError("eviction must be 'offload' or 'drop'")
        self.device = device
        self.dtype = dtype
        self.budget_bytes = budget_bytes
        self.eviction = "drop" if device == "cpu" else eviction
        self._entries: dict[str, _Entry] = {}
        self._state_lock = threading.RLock()  # guards the table; held only briefly
        self._gpu_lock = threading.RLock()  # held for the whole of a model's use on the device
        self._clock = 0.0
        self.events: list[tuple[str, str]] = []  # ("load"|"to_device"|"offload"|"drop"|"oom_retry", name)

    # -- registration -----------------------------------------------------------------------------
    def register(self, name: str, loader: Callable[[], Any], *, replace: bool = False) -> None:
        """Name a model and the function that builds it on the CPU; nothing is loaded yet."""
        with self._state_lock:
            if name in self._entries and not replace:
                return
            self._entries[name] = _Entry(name, loader)

    # -- public use ---------------------------------------------------------------------------------
    @contextmanager
    def use(self, name: str) -> Iterator[Any]:
        """Hold the GPU lock and yield the model on the device. Prefer ``run`` for OOM retry."""
        with self._gpu_lock:
            yield self._ready(name)

    def run(self, name: str, fn: Callable[[Any], Any]) -> Any:
        """Call ``fn(model)`` with the model on the device, under the GPU lock.

        On out-of-memory, every other model is evicted and ``fn`` runs once more; a second failure
        raises ``OutOfMemoryError`` with a message for the user.
        """
        with self._gpu_lock:
            for attempt in (1, 2):
                try:
                    return fn(self._ready(name))
                except Exception as error:  # noqa: BLE001  (re-raised unless it is an OOM)
                    if not is_out_of_memory(error):
                        raise
                    self.events.append(("oom_retry" if attempt == 1 else "oom", name))
                    self._free_cache()
                    if attempt == 2:
                        raise OutOfMemoryError(
                            f"The GPU ran out of memory running '{name}', even after unloading every "
                            "other model. Try fewer steps, shorter audio or a smaller image."
                        ) from error
                    self.evict_all(keep={name})
        raise AssertionError("unreachable")

    def get_cpu(self, name: str) -> Any:
        """The model as loaded, wherever it is, without the GPU lock: for models that run on the
        CPU anyway, and for tests that call a pipeline directly."""
        entry = self._load(name)
        entry.uses += 1
        return entry.model

    def gpu_task(self, fn: Callable, duration: int | Callable = 60, size: str | Callable | None = None) -> Callable:
        """Wrap a function that does GPU work: ``spaces.GPU(duration=..., size=...)`` on ZeroGPU, else as is.

        ``duration`` (seconds) and ``size`` ("large" or "xlarge", ``ZERO_GPU_SIZES``; None: ``zero_gpu_size()``)
        may each be a number/name or a callable of the request's arguments, so every request asks for
        what it needs. ``spaces.GPU`` takes one fixed size, so a callable size picks, per call, one of two
        decorated copies of ``fn``."""
        if not ZERO_GPU:
            return fn
        spaces = import_spaces_first()
        size = zero_gpu_size() if size is None else size

        def decorate(name: str) -> Callable:  # "large" is spaces' default: not named, so older spaces work too
            return spaces.GPU(duration=duration, **({} if name == "large" else {"size": name}))(fn)

        if not callable(size):
            return decorate(size)
        import functools

        sized = {name: decorate(name) for name in ZERO_GPU_SIZES}

        @functools.wraps(fn)
        def per_request(*args, **kwargs):
            name = size(*args, **kwargs)
            if name not in sized:
                raise StudioError(f"A ZeroGPU size must be one of {', '.join(ZERO_GPU_SIZES)}, not {name!r}.")
            return sized[name](*args, **kwargs)

        return per_request

    def preload(self, names: list[str] | None = None) -> None:
        """Load and place models now (ZeroGPU wants them on "cuda" before any request)."""
        for name in names or list(self._entries):
            with self._gpu_lock:
                self._ready(name)

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        with self._state_lock:
            return list(self._entries)

    # -- state --------------------------------------------------------------------------------------
    def status(self) -> list[dict]:
        """One row per registered model: where it is and how big, for the About panel."""
        with self._state_lock:
            rows = []
            for e in self._entries.values():
                where = "not loaded" if e.model is None else (self.device if e.on_device else "cpu")
                rows.append(
                    {
                        "name": e.name,
                        "where": where,
                        "mb": round(e.nbytes / 2**20, 1),
                        "uses": e.uses,
                        "load_s": round(e.load_seconds, 2),
                    }
                )
            return rows

    def resident_bytes(self) -> int:
        """Bytes of weights on the device."""
        with self._state_lock:
            return sum(e.nbytes for e in self._entries.values() if e.on_device and e.model is not None)

    def evict_all(self, keep: set[str] | None = None) -> None:
        keep = keep or set()
        with self._state_lock:
            for e in list(self._entries.values()):
                if e.name not in keep and e.model is not None and (e.on_device or self.eviction == "drop"):
                    self._evict(e)
        self._free_cache()

    # -- internals ----------------------------------------------------------------------------------
    def _load(self, name: str) -> _Entry:
        try:
            entry = self._entries[name]
        except KeyError:
            raise StudioError(f"No model is registered under {name!r}.") from None
        with entry.load_lock:  # two requests for the same model load it once
            if entry.model is None:
                start = time.perf_counter()
                model = entry.loader()
                entry.load_seconds = time.perf_counter() - start
                with self._state_lock:
                    entry.model = model
                    entry.on_device = False
                    entry.nbytes = model_nbytes(model)
                self.events.append(("load", name))
                log.info("loaded %s in %.2fs (%.1f MB)", name, entry.load_seconds, entry.nbytes / 2**20)
        return entry

    def _ready(self, name: str) -> Any:
        """Load ``name``, make room, move it to the device; returns the model."""
        entry = self._entries.get(name)
        if entry is not None and entry.model is None and entry.nbytes:
            # a dropped model coming back: its size is known, so make room before loading it, not
            # after (on the CPU the evicted model and the new one would otherwise both be held)
            self._make_room(entry.nbytes, keep={name})
        entry = self._load(name)
        if not entry.on_device:
            self._make_room(model_nbytes(entry.model, self.dtype), keep={name})  # its size once moved
            self._to_device(entry)
        entry.last_used = self._tick()
        entry.uses += 1
        return entry.model

    def _tick(self) -> float:
        with self._state_lock:
            self._clock += 1
            return self._clock

    def _make_room(self, need: int, keep: set[str]) -> None:
        if self.budget_bytes is None:
            return
        with self._state_lock:
            while self.resident_bytes() + need > self.budget_bytes:
                candidates = [
                    e
                    for e in self._entries.values()
                    if e.on_device and e.model is not None and e.name not in keep
                ]
                if not candidates:
                    break  # the model alone is over budget: try anyway, OOM handling catches it
                self._evict(min(candidates, key=lambda e: e.last_used))
        self._free_cache()

    def _to_device(self, entry: _Entry) -> None:
        if self.device != "cpu" or self.dtype is not None:
            self._move(entry.model, self.device, self.dtype)
            with self._state_lock:
                # the size as held: a model loaded in fp32 and cast to fp16 on the way weighs half
                entry.nbytes = model_nbytes(entry.model)
        entry.on_device = True
        self.events.append(("to_device", entry.name))

    def _evict(self, entry: _Entry) -> None:
        if self.eviction == "offload" and self.device != "cpu":
            self._move(entry.model, "cpu", None)
            entry.on_device = False
            self.events.append(("offload", entry.name))
        else:
            entry.model = None
            entry.on_device = False
            self.events.append(("drop", entry.name))
            gc.collect()

    @staticmethod
    def _move(model: Any, device: str, dtype: Any) -> None:
        if dtype is None:
            model.to(device)
        else:
            model.to(device, dtype)

    def _free_cache(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
