"""The AMUSE playlist VAE's encoder: the model class itself, apart from the pipeline that uses it.

``loaders`` opens it, ``tiny`` and ``fullsize_specs`` build it and ``playlist_to_music`` runs it;
none of them needs the pipeline for that. Shapes and the original's layout: ``PlaylistVAE``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

IMAGE_SIZE = 256  # the UNet's sample size and the mel image's side
CONDITION_DIM = 64  # cat(mu, logvar) of a 32-dim latent: the UNet's cross-attention width
TRAIN_TIMESTEPS = 1000  # AMUSE's DDPM training schedule (the UNet's scheduler when its repo has none)


# -- the VAE ---------------------------------------------------------------------------------------


class _ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input, then ReLU (the original's block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class _Encoder(nn.Module):
    def __init__(self, in_channels: int, hidden_dims: Sequence[int], latent_dim: int, image_size: int):
        super().__init__()
        stages = []
        channels = in_channels
        for width in hidden_dims:
            stages.append(nn.Sequential(
                nn.Conv2d(channels, width, kernel_size=3, stride=2, padding=1),
                nn.BatchNorm2d(width),
                nn.LeakyReLU(),
                _ResidualBlock(width),
            ))
            channels = width
        self.encoder = nn.Sequential(*stages)
        side = image_size // 2 ** len(hidden_dims)
        self.fc_mu = nn.Linear(channels * side * side, latent_dim)
        self.fc_var = nn.Linear(channels * side * side, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.flatten(self.encoder(x), start_dim=1)
        return self.fc_mu(x), self.fc_var(x)


class PlaylistVAE(ModelMixin, ConfigMixin):
    """The AMUSE VAE's encoder (the app never decodes, so the decoder is left out).

    Input: (batch, 1, 256, 256) mel images as pixels / 255 in [0, 1]. Output of ``encode``:
    (mu, logvar), each (batch, latent_dim). ``hidden_dims`` are the widths of the stride-2 stages;
    the tiny model uses small ones.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        in_channels: int = 1,
        hidden_dims: tuple[int, ...] = (32, 64, 128, 256, 512),
        latent_dim: int = 32,
        image_size: int = IMAGE_SIZE,
    ):
        super().__init__()
        if image_size % 2 ** len(hidden_dims):
            raise ValueError(f"image_size {image_size} is not divisible by 2**{len(hidden_dims)}")
        self.encoder = _Encoder(in_channels, tuple(hidden_dims), latent_dim, image_size)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(images)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(images)
