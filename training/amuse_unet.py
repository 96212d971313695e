"""Train the AMUSE VAE-conditioned spectrogram UNet (needs a trained playlist VAE: ``--vae``).

    python -m training.amuse_unet --data music/ --vae models/amuse_vae --output models/amuse_unet
    accelerate launch -m training.amuse_unet --data music/ --vae models/amuse_vae --output models/amuse_unet \
        --mixed-precision fp16
    STUDIO_MODEL_AMUSE_VAE=models/amuse_vae STUDIO_MODEL_AMUSE_UNET=models/amuse_unet python app.py

Recipe (AMUSE's "VAE Conditioned Diffusion Model Training" notebook, which follows diffusers'
``train_unconditional.py``; seed-systems.md section 6; hub alppo/vae-conditioned-diffusion-model_v2):
- data: the same 256x256 audio-diffusion mel images as ``training.amuse_vae``, normalised to [-1, 1]
  (``Normalize([0.5], [0.5])``);
- condition: the frozen VAE's cat(mu, logvar) of the image (64 values), min-max scaled to [-1, 1]
  (``pipelines.systems.playlist_to_music.track_vectors``, what the tab feeds at inference) as
  ``encoder_hidden_states`` (batch, 1, 64); with probability ``--p-uncond`` (0.1) it is replaced by
  the encoding of an all-zero image, unscaled (``unconditional_vector``), which is the vector the tab
  uses for classifier-free guidance;
- UNet2DConditionModel with the architecture of the profile's ``amuse_unet`` (the hub repo's:
  1 channel, 256 px, blocks 128..512, cross-attention in one down/up block and the mid block,
  cross_attention_dim 64), from random weights (``--init base`` fine-tunes the registry's weights);
- DDPM, 1000 steps, linear betas; loss MSE(eps_theta(x_t, t, c), eps), t uniform;
- AdamW lr 1e-4, betas (0.95, 0.999), weight decay 1e-6, eps 1e-8, batch 16, cosine schedule after
  500 warm-up steps (diffusers' ``train_unconditional.py`` defaults).
Output: ``OUTPUT/unet/`` + ``OUTPUT/scheduler/`` + ``model_index.json`` (a DDPMPipeline folder, as
the hub repo), which ``pipelines.models.loaders.load_amuse_unet`` reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from core import files
from core.errors import InputError
from training import common
from training.amuse_vae import mel_dataset


def arguments(argv: list[str] | None = None):
    p = common.parser("python -m training.amuse_unet", __doc__.split("\n\n")[0], max_steps=10_000,
                      learning_rate=1e-4, batch_size=16, checkpoint_every=500, lr_scheduler="cosine",
                      lr_warmup_steps=500)
    p.add_argument("--vae", required=True, help="a trained playlist VAE folder (training.amuse_vae's output)")
    p.add_argument("--p-uncond", type=float, default=0.1, help="probability of the unconditional vector")
    p.add_argument("--init", choices=("scratch", "base"), default="scratch",
                   help="random weights in the base architecture, or the registry's amuse_unet weights")
    p.add_argument("--slice", choices=("all", "middle"), default="all")
    return p.parse_args(argv)


class ConditionedImages(torch.utils.data.Dataset):
    """(image (1, 256, 256) in [-1, 1], condition (64,)) pairs; conditions computed once with the VAE."""

    def __init__(self, images: torch.utils.data.Dataset, vae):
        from pipelines.systems.playlist_to_music import track_vectors

        self.images = [images[i] for i in range(len(images))]  # [0, 1]
        self.conditions = track_vectors(vae, torch.stack(self.images))  # (n, 64), eval-mode BatchNorm

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return {"pixels": self.images[index] * 2 - 1, "condition": self.conditions[index]}


def base_unet(profile: str, init: str):
    """The profile's amuse_unet: its architecture with fresh weights, or its weights (``init="base"``)."""
    from diffusers import UNet2DConditionModel

    from pipelines.models import loaders
    from pipelines.models.registry import load_or_explain

    source = common.model_source("amuse_unet", profile)
    loaded = load_or_explain(source, loaders.load_amuse_unet)
    if init == "base":
        return loaded.train(), source
    return UNet2DConditionModel.from_config(loaded.config).train(), source


def setup(argv: list[str] | None = None) -> common.Recipe:
    from diffusers import DDPMScheduler

    from pipelines.models import loaders
    from pipelines.systems.playlist_to_music import CONDITION_DIM, IMAGE_SIZE, TRAIN_TIMESTEPS, unconditional_vector

    args = common.check_args(arguments(argv))
    if not 0 <= args.p_uncond <= 1:
        raise InputError(f"--p-uncond must be between 0 and 1; got {args.p_uncond}.")
    vae_dir = Path(args.vae).expanduser()
    if not (vae_dir / "config.json").is_file():
        raise InputError(f"--vae {vae_dir} is not a playlist VAE folder (no config.json): train one with "
                         "python -m training.amuse_vae first.")
    vae = loaders.load_amuse_vae(str(vae_dir))
    vae.requires_grad_(False)
    dataset = ConditionedImages(mel_dataset(args.data, args.slice), vae)
    accelerator = common.make_accelerator(args)
    unet, source = base_unet(args.profile, args.init)
    config = unet.config
    if config.in_channels != 1 or config.sample_size != IMAGE_SIZE or config.cross_attention_dim != CONDITION_DIM:
        raise InputError(f"The amuse_unet base ({source.location}) is not a 1-channel {IMAGE_SIZE} px UNet "
                         f"conditioned on {CONDITION_DIM} values.")
    scheduler = DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS)
    uncond = unconditional_vector(vae).reshape(1, CONDITION_DIM).to(accelerator.device)

    def loss_fn(model, batch, generator):
        pixels = batch["pixels"].to(accelerator.device)
        condition = batch["condition"].to(accelerator.device)
        drop = torch.rand(pixels.shape[0], generator=generator, device=pixels.device) < args.p_uncond
        condition = torch.where(drop[:, None], uncond.expand_as(condition), condition)[:, None, :]
        noisy, noise, t = common.noise_latents(scheduler, pixels, generator)
        return common.diffusion_loss(model(noisy, t, encoder_hidden_states=condition).sample, noise)

    def finish(model, summary):
        out = Path(args.output)
        model.save_pretrained(out / "unet", safe_serialization=True)
        scheduler.save_pretrained(out / "scheduler")
        (out / "model_index.json").write_text(json.dumps({
            "_class_name": "DDPMPipeline", "scheduler": ["diffusers", "DDPMScheduler"],
            "unet": ["diffusers", "UNet2DConditionModel"]}, indent=2) + "\n")
        (out / "unet_training.json").write_text(json.dumps(
            {"recipe": "amuse_unet", "vae": str(vae_dir.resolve()), "base": source.location, "init": args.init,
             "p_uncond": args.p_uncond, "steps": summary.steps, "images": len(dataset)}, indent=2) + "\n")
        files.readable(out)  # save_pretrained (safetensors) leaves its temporary file's 0600
        print(f"saved the conditioned UNet in {out}; set STUDIO_MODEL_AMUSE_UNET={out.resolve()} "
              f"and STUDIO_MODEL_AMUSE_VAE={vae_dir.resolve()}")

    return common.Recipe(accelerator, args, unet, dataset, loss_fn, finish, "amuse_unet",
                         optimizer_kwargs={"betas": (0.95, 0.999), "weight_decay": 1e-6, "eps": 1e-8})


def train(argv: list[str] | None = None) -> common.TrainSummary:
    """Run the recipe; the pipeline folder is ``--output``."""
    return setup(argv).train()


main = common.main_wrapper(train)

if __name__ == "__main__":
    sys.exit(main())
