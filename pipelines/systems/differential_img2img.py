"""Differential img2img in diffusers: ``StableDiffusionImg2ImgPipeline`` plus a per-pixel change map.

The source latent is noised to every timestep with one shared noise (the noise the parent pipeline
drew for its img2img start); before step i every latent pixel whose map value exceeds i/N is reset
to the noised source. A pixel with map value v therefore follows the source for about the first
v*N of the N steps that run: white pixels stay close to the source, black ones are repainted.

Imported lazily by masked_img2img.py: importing diffusers' pipelines takes seconds, and the app
must start without it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

from core.errors import InputError


class DifferentialImg2ImgPipeline(StableDiffusionImg2ImgPipeline):
    """Stable Diffusion img2img with a per-pixel change map (differential img2img).

    Build it from a loaded pipeline without copying weights: ``DifferentialImg2ImgPipeline(**pipe.components)``.
    With ``change_map=None`` it is exactly the parent pipeline.
    """

    def get_timesteps(self, num_inference_steps, strength, device):
        timesteps, steps = super().get_timesteps(num_inference_steps, strength, device)
        self._run_timesteps = timesteps  # the steps that will run, for the thresholds
        return timesteps, steps

    def prepare_latents(self, *args, **kwargs):
        # The parent encodes the source, draws the noise and noises the source once. We keep the
        # clean source and that same noise (the "one shared noise") by recording the add_noise call.
        recorded = {}
        add_noise = self.scheduler.add_noise

        def recording_add_noise(original, noise, timesteps):
            recorded.update(source=original, noise=noise)
            return add_noise(original, noise, timesteps)

        self.scheduler.add_noise = recording_add_noise
        try:
            latents = super().prepare_latents(*args, **kwargs)
        finally:
            del self.scheduler.add_noise  # back to the class method
        self._source_latents, self._shared_noise = recorded["source"], recorded["noise"]
        return latents

    @torch.no_grad()
    def __call__(
        self,
        *args,
        change_map: Image.Image | torch.Tensor | list | None = None,
        change_map_resize: str = "antialias",
        should_stop: Callable[[], bool] | None = None,
        on_step: Callable[[int, int], None] | None = None,
        callback_on_step_end=None,
        **kwargs,
    ):
        """Arguments as ``StableDiffusionImg2ImgPipeline.__call__``, plus:

        change_map: grayscale image (or a 0-1 tensor) the size of ``image``; a pixel with value v
            follows the noised source for the first v*N of the N steps that run. None: plain img2img.
            A list of maps gives each image of a batch its own (``image`` a list of the same length).
        change_map_resize: how an image map reaches latent size: "antialias" (PIL bilinear, which
            averages every source pixel on the way down) or "paper" (bilinear interpolation without
            antialiasing, torchvision ``Resize(antialias=None)`` on a tensor, as the mask paper;
            each latent pixel then reads only the 2x2 source pixels nearest its centre).
        should_stop: polled after every step; returning True ends the loop early (cancel).
        on_step: called after every step with (steps done, steps that run): the UNet calls, which
            is not ``num_inference_steps * strength`` for every scheduler (PNDM's PLMS warm-up
            repeats one timestep: 50 steps at strength 0.8 run 41).
        """
        if callback_on_step_end is not None:
            raise ValueError("DifferentialImg2ImgPipeline uses callback_on_step_end itself.")
        if change_map_resize not in ("antialias", "paper"):
            raise InputError(f"Unknown change map resize {change_map_resize!r}: use 'antialias' or 'paper'.")
        self._change_map, self._change_map_resize = change_map, change_map_resize
        self._latent_map_cache = None  # the map at latent size, made once per call, not once per step

        def on_step_end(pipe, i, t, callback_kwargs):
            if on_step is not None:
                on_step(i + 1, len(self._run_timesteps))
            if should_stop is not None and should_stop():
                pipe._interrupt = True
            if change_map is None:
                return {}
            return {"latents": self._blend_with_source(i + 1, callback_kwargs["latents"])}

        return super().__call__(*args, callback_on_step_end=on_step_end,
                                callback_on_step_end_tensor_inputs=["latents"], **kwargs)

    def _blend_with_source(self, next_step: int, latents: torch.Tensor) -> torch.Tensor:
        """Before step ``next_step``: reset the pixels whose map value is above next_step/N."""
        timesteps = self._run_timesteps
        n = len(timesteps)
        if next_step >= n:
            return latents
        if self._latent_map_cache is None:
            self._latent_map_cache = self._latent_map(latents)
        weights = self._latent_map_cache
        keep = (weights > next_step / n).to(latents.dtype)
        noised = self.scheduler.add_noise(self._source_latents, self._shared_noise, timesteps[next_step : next_step + 1])
        return noised * keep + latents * (1 - keep)

    def _latent_map(self, latents: torch.Tensor) -> torch.Tensor:
        """The change map at latent size, (1, 1, h, w), or (B, 1, h, w) for a list of B maps."""
        if isinstance(self._change_map, (list, tuple)):
            maps = [_one_latent_map(m, self._change_map_resize, latents) for m in self._change_map]
            if len(maps) != latents.shape[0]:
                raise InputError(f"{len(maps)} change maps were given for a batch of {latents.shape[0]} images.")
            return torch.cat(maps)
        return _one_latent_map(self._change_map, self._change_map_resize, latents)


def _one_latent_map(change_map, resize: str, latents: torch.Tensor) -> torch.Tensor:
    """One change map (image or 0-1 tensor) at the latents' size, (1, 1, h, w) float32."""
    size = latents.shape[-2:]
    if isinstance(change_map, Image.Image):
        gray = change_map.convert("L")
        if resize == "paper":
            full = torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)[None, None]
            change_map = torch.nn.functional.interpolate(full, size=tuple(size), mode="bilinear",
                                                         align_corners=False, antialias=False)[0, 0]
        else:
            small = gray.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            change_map = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0)
    change_map = change_map.to(latents.device, torch.float32)
    if change_map.shape[-2:] != size:
        raise InputError(f"The change map is {tuple(change_map.shape[-2:])}, the latent is {tuple(size)}.")
    return change_map.reshape(1, 1, *size)
