"""The studio: one registry, one device manager, and the loaders that connect them.

app.py builds one ``Studio`` and calls its pipelines with plain Python values; it never sees a
torch device. Nothing is loaded when a Studio is created (except on ZeroGPU, see ``preload``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .device import ZERO_GPU, DeviceManager, choose_device
from .models import ModelRegistry, load_or_explain


def _budget_from_env() -> int | None:
    value = os.environ.get("STUDIO_MEMORY_BUDGET_GB")
    return int(float(value) * 2**30) if value else None


@dataclass
class StudioInfo:
    profile: str
    device: str
    dtype: str


class Studio:
    """Owns the registry and the device manager; registers one loader per pipeline."""

    def __init__(self, profile: str = "hub", device: str | None = None, budget_bytes: int | None = None):
        choice = choose_device(device)
        self.registry = ModelRegistry(profile)
        self.manager = DeviceManager(
            device=choice.device,
            dtype=None if choice.device == "cpu" else choice.dtype,
            budget_bytes=budget_bytes if budget_bytes is not None else _budget_from_env(),
        )
        self.info = StudioInfo(profile, choice.device, choice.dtype_name)
        self._register_loaders()

    @property
    def device(self) -> str:
        return self.manager.device

    # -- loaders -------------------------------------------------------------------------------------
    def _register_loaders(self) -> None:
        for role in ("riffusion", "mask_model", "sd15"):
            self.manager.register(role, lambda role=role: self.load_sd_img2img(role))

    def load_sd_img2img(self, role: str) -> Any:
        """A Stable Diffusion img2img pipeline for ``role``, on the CPU, fp32 (moved by the manager)."""
        from diffusers import StableDiffusionImg2ImgPipeline

        source = self.registry.resolve(role)
        pipe = load_or_explain(
            source,
            StableDiffusionImg2ImgPipeline.from_pretrained,
            safety_checker=None,
            requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(leave=False)
        return pipe

    def preload(self) -> None:
        """On ZeroGPU the platform wants models on "cuda" before requests arrive."""
        if ZERO_GPU:
            self.manager.preload()

    # -- what the About panel shows ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "profile": self.info.profile,
            "device": self.info.device,
            "dtype": self.info.dtype,
            "zero_gpu": ZERO_GPU,
            "models": self.manager.status(),
            "roles": self.registry.describe(),
        }
