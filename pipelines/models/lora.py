"""LoRA adapters on a shared Stable Diffusion pipeline: loaded once, switched on for one run, off after.

The riffusion and SD 1.5 pipelines are shared between tabs (and between the two sound-to-music model
choices), so an adapter never stays switched on: ``switched_on`` loads it under its name the first
time (diffusers' ``load_lora_weights`` with the peft backend, through ``music_to_image.load_lora``,
which also reads TechJam's old key format), fuses it into the UNet's weights at the asked scale for the
``with`` block (``music_to_image.fused_lora``) and restores the exact base weights however the block ends. ``loaded`` only loads (music to image switches its adapter
itself, inside ``generate_image``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

GENRE_ADAPTER = "genre"  # sound to music's genre LoRA (role s2m_lora, training.riffusion_lora)


def loaded(pipe: Any, location: str | None, adapter_name: str | None = None) -> Any:
    """``pipe`` with the LoRA at ``location`` loaded (once) and left switched off; None: ``pipe`` as
    it is. Raises ModelUnavailableError for a LoRA that cannot be read."""
    if location is not None:
        from pipelines.systems.music_to_image import DEFAULT_ADAPTER, load_lora  # the TechJam loader (old keys converted)

        load_lora(pipe, location, adapter_name=adapter_name or DEFAULT_ADAPTER)
    return pipe


@contextmanager
def switched_on(pipe: Any, location: str | None, scale: float, adapter_name: str = GENRE_ADAPTER) -> Iterator[Any]:
    """Inside the block, ``pipe`` runs with the LoRA at ``location`` at ``scale`` (loaded the first
    time); after it, with none. ``location`` None: the block runs on the plain pipe."""
    if location is None:
        yield pipe
        return
    from pipelines.systems.music_to_image import fused_lora

    loaded(pipe, location, adapter_name)
    # fused into the UNet's weights for the block (no adapter beside every projection), then the exact
    # base weights back and the adapter off: the pipe is shared (style tab, the other model choice)
    with fused_lora(pipe, adapter_name, float(scale)):
        yield pipe
