"""LoRA adapters on a shared Stable Diffusion pipeline: loaded once, switched on for one run, off after.

The riffusion and SD 1.5 pipelines are shared between tabs (and between the two sound-to-music model
choices), so an adapter never stays switched on: ``switched_on`` loads it under its name the first
time (diffusers' ``load_lora_weights`` with the peft backend, through ``load_lora``, which also reads
TechJam's old key format; a visitor's trained LoRA, ``trained_adapter``, is deleted from the pipe after
its run instead of kept), fuses it into the UNet's weights at the asked scale for the ``with`` block
(``fused_lora``) and restores the exact base weights however the block ends. ``loaded`` only loads
(music to image switches its adapter itself, inside ``generate_image``).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.errors import ModelUnavailableError

GENRE_ADAPTER = "genre"  # sound to music's genre LoRA (role s2m_lora, training.riffusion_lora)
DEFAULT_ADAPTER = "m2i"  # music to image's LoRA (role m2i_lora, TechJam's)
LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' file name, the one TechJam published
TRAINED_PREFIX = "trained_"  # a visitor's LoRA (the Train tab): loaded for one run, then deleted from the pipe


def trained_adapter(location: str | Path) -> str:
    """The adapter name of a visitor's trained LoRA at ``location`` (``TRAINED_PREFIX`` + 12 hex digits)."""
    return TRAINED_PREFIX + hashlib.sha256(str(location).encode()).hexdigest()[:12]


def loaded(pipe: Any, location: str | None, adapter_name: str | None = None) -> Any:
    """``pipe`` with the LoRA at ``location`` loaded (once) and left switched off; None: ``pipe`` as
    it is. Raises ModelUnavailableError for a LoRA that cannot be read."""
    if location is not None:
        load_lora(pipe, location, adapter_name=adapter_name or DEFAULT_ADAPTER)
    return pipe


@contextmanager
def switched_on(pipe: Any, location: str | None, scale: float, adapter_name: str = GENRE_ADAPTER) -> Iterator[Any]:
    """Inside the block, ``pipe`` runs with the LoRA at ``location`` at ``scale`` (loaded the first
    time); after it, with none. ``location`` None: the block runs on the plain pipe."""
    if location is None:
        yield pipe
        return
    loaded(pipe, location, adapter_name)
    # fused into the UNet's weights for the block (no adapter beside every projection), then the exact
    # base weights back and the adapter off: the pipe is shared (style tab, the other model choice)
    try:
        with fused_lora(pipe, adapter_name, float(scale)):
            yield pipe
    finally:
        if adapter_name.startswith(TRAINED_PREFIX):  # a visitor's LoRA expires with their session: not kept
            pipe.delete_adapters(adapter_name)


def load_lora(
    pipe, path_or_folder: str | Path, adapter_name: str = DEFAULT_ADAPTER, weight_name: str = LORA_FILE
) -> str:
    """Load a LoRA into ``pipe`` once (diffusers' ``load_lora_weights``, peft backend) and return its name.

    ``path_or_folder``: a .safetensors file, a folder holding ``weight_name``, or a Hub repo id.
    The TechJam file's old keys (``unet.<block>.attn1.processor.to_q_lora.down.weight``) are
    converted by diffusers itself (``.processor.`` dropped, ``to_q_lora.down`` -> ``to_q.lora_A``).
    The adapter is left switched off; ``generate_image`` switches it on at the asked scale.
    """
    if not isinstance(adapter_name, str) or not adapter_name.isidentifier():
        raise ValueError(f"adapter_name must be a simple name, got {adapter_name!r}")
    if adapter_name in adapter_names(pipe):
        return adapter_name
    location = Path(str(path_or_folder)).expanduser()
    if location.is_file():
        location, weight_name = location.parent, location.name
    elif location.is_dir() and not (location / weight_name).is_file():
        raise ModelUnavailableError(f"{location} has no {weight_name}.")
    try:
        pipe.load_lora_weights(str(location) if location.exists() else str(path_or_folder),
                               weight_name=weight_name, adapter_name=adapter_name)
    except Exception as error:  # noqa: BLE001  (diffusers/peft raise many types; the user needs one message)
        raise ModelUnavailableError(
            f"The LoRA {path_or_folder} could not be loaded: {type(error).__name__}: {str(error)[:300]}"
        ) from error
    pipe.disable_lora()  # off until a generation asks for it: the UNet may be shared with other tabs
    return adapter_name


def lora_layers(unet, adapter_name: str) -> list:
    """The peft layers of ``unet`` that hold ``adapter_name`` (one per adapted projection)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [module for module in unet.modules()
            if isinstance(module, BaseTunerLayer) and adapter_name in getattr(module, "lora_A", {})]


@contextmanager
def fused_lora(pipe, adapter_name: str, scale: float) -> Iterator[int]:
    """The adapter ``adapter_name`` fused into ``pipe.unet``'s weights at ``scale`` while inside; the
    exact base weights afterwards. Yields the number of projections fused (0: nothing to fuse).

    W' = W + scale * (alpha / r) * B @ A, computed by peft on the weights' device (diffusers'
    ``fuse_lora``), so every UNet call inside costs what the plain model costs (the adapters no longer
    run beside every projection). On the way out ``unfuse_lora`` subtracts the same product and the
    fused projections' weights are then copied back from a copy taken before fusing: W + d - d is W
    only up to rounding (in fp16 an ulp per call, which would drift over many calls), the copy is W
    bit for bit. The copy weighs what the adapted projections weigh (SD 1.5: ~93 M parameters) and
    lives only for the call, in ONE buffer: as 128 separate tensors (0.4-6.5 MB each, inside glibc's
    heap) it made the CPU allocator fault the UNet's activations in afresh at every call (3.4x the
    minor page faults, 6-15% slower UNet calls at full size on the CPU; measured by the benchmark's
    CPU split). The LoRA is left switched off (``disable_lora``): the UNet may be shared.
    """
    layers = lora_layers(pipe.unet, adapter_name) if scale else []
    if not layers:
        yield 0
        return
    import torch

    sizes = [layer.get_base_layer().weight.numel() for layer in layers]
    originals = torch.cat([layer.get_base_layer().weight.detach().reshape(-1) for layer in layers])  # see above
    pipe.enable_lora()  # a disabled peft layer unmerges itself on its next forward: enable first
    pipe.set_adapters([adapter_name], adapter_weights=[float(scale)])
    try:
        pipe.fuse_lora(components=["unet"], lora_scale=1.0, adapter_names=[adapter_name])
        yield len(layers)
    finally:
        if any(layer.merged for layer in layers):
            with warnings.catch_warnings():  # peft warns for every other adapted layer: "Already unmerged"
                warnings.filterwarnings("ignore", message="Already unmerged")
                pipe.unfuse_lora(components=["unet"])

        with torch.no_grad():
            for layer, original in zip(layers, originals.split(sizes)):
                weight = layer.get_base_layer().weight
                weight.copy_(original.view_as(weight))
        pipe.disable_lora()


def adapter_names(pipe) -> list[str]:
    """The names of the LoRA adapters loaded into ``pipe`` (any component), [] before the first."""
    try:
        return [name for names in pipe.get_list_adapters().values() for name in names]
    except (ValueError, AttributeError):  # no peft layers yet
        return []
