"""Train the AMUSE playlist VAE on audio-diffusion mel images of a folder of music.

    python -m training.amuse_vae --data music/ --output models/amuse_vae
    accelerate launch -m training.amuse_vae --data music/ --output models/amuse_vae
    STUDIO_MODEL_AMUSE_VAE=models/amuse_vae python app.py    # the playlist tab's VAE

Recipe (AMUSE's "VAE Training and Tests" notebook, alppotuk/AMUSE; seed-systems.md section 6):
- data: every file -> mono 22.05 kHz -> 256x256 audio-diffusion mel images, one per ~5.9 s window
  (n_fft 2048, hop 512, top_db 80: the app's ``spectrogram.AUDIO_DIFFUSION``), pixels / 255 in [0, 1];
- encoder: ``pipelines.models.playlist_vae.PlaylistVAE`` (5 x [Conv stride 2, BatchNorm, LeakyReLU,
  residual block], widths 32..512, latent 32; fc_mu and fc_var), the very module the app loads;
- decoder: the mirror image (Linear -> 512 x 8 x 8, 4 x [ConvTranspose stride 2, BatchNorm,
  LeakyReLU, residual block], a last ConvTranspose + BatchNorm + LeakyReLU, Conv 3x3 to one channel,
  Sigmoid for [0, 1] pixels); z = mu + exp(logvar / 2) * eps;
- loss = MSE(reconstruction, x) + kld_weight * mean_batch(-1/2 sum(1 + logvar - mu^2 - exp(logvar))),
  logvar clamped to [-30, 20] inside the loss and the sampling only (as diffusers' Gaussian does):
  the encoder's output, which the app reads, is unchanged.
The notebook itself is not in our reference: the encoder is what AMUSE published; decoder, loss and
defaults follow the vanilla VAE of AntixK/PyTorch-VAE that this encoder extends (Adam, kld_weight
2.5e-4, batch 64), except the learning rate: PyTorch-VAE's 5e-3 (for 64 px images) diverged here in
two steps at 256 px (fc_var reads 512 x 8 x 8 values; measured: loss inf at step 2), so the default
is 1e-4. Say so when comparing with the original.
Output: ``OUTPUT/config.json`` + ``OUTPUT/diffusion_pytorch_model.safetensors`` (the encoder, as
``PlaylistVAE.from_pretrained`` reads it) and ``OUTPUT/decoder.safetensors`` (for reconstructions).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

from core import files
from training import common, data

ORIGINAL_WIDTHS = (32, 64, 128, 256, 512)
TINY_WIDTHS = (8, 8, 16, 16, 32)  # pipelines.models.building.tiny's amuse_vae


def arguments(argv: list[str] | None = None):
    p = common.parser("python -m training.amuse_vae", __doc__.split("\n\n")[0], max_steps=10_000,
                      learning_rate=1e-4, batch_size=64, checkpoint_every=500)
    p.add_argument("--hidden-dims", help="comma-separated widths of the 5 stages (default 32..512; tiny profile 8..32)")
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--kld-weight", type=float, default=2.5e-4)
    p.add_argument("--slice", choices=("all", "middle"), default="all",
                   help="all windows of every file, or only each file's middle one (what the app encodes)")
    args = p.parse_args(argv)
    if args.hidden_dims:
        args.hidden_dims = tuple(int(v) for v in args.hidden_dims.split(","))
    else:
        args.hidden_dims = TINY_WIDTHS if args.profile == "tiny" else ORIGINAL_WIDTHS
    return args


class Decoder(nn.Module):
    """z (batch, latent) -> (batch, 1, side, side) in [0, 1]; the encoder's stages in reverse."""

    def __init__(self, hidden_dims, latent_dim: int, image_size: int):
        from pipelines.models.playlist_vae import _ResidualBlock

        super().__init__()
        widths = list(reversed(hidden_dims))
        self.side = image_size // 2 ** len(hidden_dims)
        self.first = widths[0]
        self.decoder_input = nn.Linear(latent_dim, widths[0] * self.side * self.side)
        stages = []
        for width, following in zip(widths, widths[1:]):
            stages.append(nn.Sequential(
                nn.ConvTranspose2d(width, following, kernel_size=3, stride=2, padding=1, output_padding=1),
                nn.BatchNorm2d(following), nn.LeakyReLU(), _ResidualBlock(following)))
        self.decoder = nn.Sequential(*stages)
        last = widths[-1]
        self.final_layer = nn.Sequential(
            nn.ConvTranspose2d(last, last, kernel_size=3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(last), nn.LeakyReLU(), nn.Conv2d(last, 1, kernel_size=3, padding=1), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.decoder_input(z).view(-1, self.first, self.side, self.side)
        return self.final_layer(self.decoder(x))


class TrainableVAE(nn.Module):
    """The app's ``PlaylistVAE`` (as ``vae``) with a decoder, for training."""

    def __init__(self, hidden_dims, latent_dim: int, image_size: int = 256):
        from pipelines.models.playlist_vae import PlaylistVAE

        super().__init__()
        self.vae = PlaylistVAE(hidden_dims=tuple(hidden_dims), latent_dim=latent_dim, image_size=image_size)
        self.decoder = Decoder(hidden_dims, latent_dim, image_size)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """(reconstruction (b, 1, H, W) in [0, 1], mu (b, latent), logvar (b, latent) clamped to [-30, 20])."""
        mu, logvar = self.vae.encode(x)
        logvar = logvar.clamp(-30.0, 20.0)  # exp() of an early, wild logvar would overflow to inf
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return self.decoder(mu + torch.exp(0.5 * logvar) * eps), mu, logvar


def vae_loss(reconstruction, x, mu, logvar, kld_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, reconstruction MSE, KL divergence to N(0, I) summed over latents, mean over the batch)."""
    reconstruction_loss = nn.functional.mse_loss(reconstruction.float(), x.float())
    kld = torch.mean(-0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1))
    return reconstruction_loss + kld_weight * kld, reconstruction_loss, kld


class MiddleSlices(torch.utils.data.Dataset):
    """One mel image per file, from its middle ~5.9 s, exactly as the playlist tab makes it."""

    def __init__(self, folder):
        from pipelines.signal import audio as audio_io
        from pipelines.systems.playlist_to_music import SAMPLE_RATE, track_image

        self.files = data.list_files(folder, data.AUDIO_SUFFIXES, "audio files")
        self.images = []
        for path in self.files:
            try:
                sound = audio_io.load_audio(path, SAMPLE_RATE, channels=1, max_seconds=None, min_seconds=None)
            except common.InputError:
                raise  # names the file (on a command line, its path)
            except Exception as error:  # noqa: BLE001  (the file's name, whatever the decoder raised)
                raise common.InputError(f"{path}: {error}") from error
            self.images.append(track_image(sound.samples[0], "middle"))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return data.unit_pixels(self.images[index])


def mel_dataset(folder, slice_mode: str = "all") -> torch.utils.data.Dataset:
    """(1, 256, 256) images in [0, 1] from a folder of audio (audio-diffusion mel preset)."""
    from pipelines.signal import spectrogram

    if slice_mode == "middle":
        return MiddleSlices(folder)
    return data.SpectrogramDataset(folder, spectrogram.AUDIO_DIFFUSION, transform=data.unit_pixels)


def setup(argv: list[str] | None = None) -> common.Recipe:
    args = common.check_args(arguments(argv))
    if len(args.hidden_dims) < 1 or min(args.hidden_dims) < 1 or args.latent_dim < 1:
        raise common.InputError("--hidden-dims and --latent-dim must be positive.")
    dataset = mel_dataset(args.data, args.slice)
    accelerator = common.make_accelerator(args)
    model = TrainableVAE(args.hidden_dims, args.latent_dim)

    def loss_fn(module, pixels, generator):
        pixels = pixels.to(accelerator.device)
        reconstruction, mu, logvar = module(pixels, generator)
        return vae_loss(reconstruction, pixels, mu, logvar, args.kld_weight)[0]

    def finish(module, summary):
        from safetensors.torch import save_file

        module.vae.save_pretrained(args.output, safe_serialization=True)
        save_file({k: v.contiguous() for k, v in module.decoder.state_dict().items()},
                  str(Path(args.output) / "decoder.safetensors"))
        (Path(args.output) / "vae_training.json").write_text(json.dumps(
            {"recipe": "amuse_vae", "hidden_dims": list(args.hidden_dims), "latent_dim": args.latent_dim,
             "kld_weight": args.kld_weight, "steps": summary.steps, "images": len(dataset)}, indent=2) + "\n")
        files.readable(args.output)  # save_pretrained and save_file leave their temporary files' 0600
        print(f"saved the playlist VAE in {args.output}; set STUDIO_MODEL_AMUSE_VAE={Path(args.output).resolve()}")

    # the VAE trains in full precision on every device (BatchNorm statistics); Adam as PyTorch-VAE
    return common.Recipe(accelerator, args, model, dataset, loss_fn, finish, "amuse_vae",
                         optimizer_cls=torch.optim.Adam)


def train(argv: list[str] | None = None) -> common.TrainSummary:
    """Run the recipe; the encoder folder is ``--output``."""
    return setup(argv).train()


main = common.main_wrapper(train)

if __name__ == "__main__":
    sys.exit(main())
