"""Learn a MusicTI style (time-varying textual inversion) from a folder of audio in that style.

    python -m training.style --data clips/accordion --output styles/accordion
    accelerate launch -m training.style --data clips/accordion --output styles/accordion   # 1..N GPUs
    STUDIO_MODEL_MUSIC_STYLES=styles python app.py      # the style tab lists "accordion"

Recipe (MusicTI, AAAI 2024; lsfhuihuiff/MusicTI_AAAI2024 ``configs/stable-diffusion/v1-finetune.yaml``,
``ldm/data/personalized.py``, ``ldm/modules/embedding_manager.py``):
- data: every file -> mono 44.1 kHz -> 5.12 s windows -> riffusion spectrogram images (the app's
  codec), resized to 512 px bicubic, pixels x / 127.5 - 1;
- the only prompt is the placeholder itself, "*" (the repo's template list is reduced to ``'{}'``);
- the trained network is ``pipelines.models.style_embedding.StyleEmbedding`` (17.9 M parameters at width
  768): v_t = attention(SiLU-Linear(MLP(timestep_embedding(t))) + initial_embedding), where the
  initial embedding is the frozen token embedding of ``--init-word`` (``main.py --init_word``);
  v_t replaces the token embedding of "*" before CLIP's transformer;
- UNet, VAE and CLIP frozen; loss = MSE(eps_theta(z_t, t, c_t), eps), t uniform in [0, 1000) on
  LDM's linear schedule (beta 0.00085..0.012, diffusers' "scaled_linear"); z = VAE sample x 0.18215;
- AdamW, lr 5e-3 (base_learning_rate, batch 1, one GPU), batch 1, 10 000 steps (``max_steps``),
  a checkpoint every 300 steps (``every_n_train_steps``).
Output: ``OUTPUT/style.json`` + ``OUTPUT/style.safetensors`` (``style_embedding.save_style``), named
after the folder unless ``--name`` is given; the style tab lists the folders under
``STUDIO_MODEL_MUSIC_STYLES``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from core.errors import InputError
from training import common, data

PLACEHOLDER = "*"
INIT_WORD = "music"


def arguments(argv: list[str] | None = None):
    p = common.parser("python -m training.style", __doc__.split("\n\n")[0], max_steps=10_000, learning_rate=5e-3,
                      batch_size=1, checkpoint_every=300)
    p.add_argument("--name", help="the style's name (default: the output folder's name)")
    p.add_argument("--init-word", default=INIT_WORD, help="word whose token embedding starts (and anchors) the style")
    p.add_argument("--resolution", type=int, default=512, help="spectrogram side in pixels (MusicTI: 512)")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=64)
    args = p.parse_args(argv)
    args.name = args.name or Path(args.output).name
    return args


def initial_embedding(tokenizer, text_encoder, word: str) -> torch.Tensor:
    """(1, width): the token embedding of ``word`` (the mean of its tokens if the tokenizer splits it)."""
    ids = tokenizer(word, add_special_tokens=False, return_tensors="pt").input_ids[0]
    if ids.numel() == 0:
        raise InputError(f"--init-word {word!r} gives no tokens.")
    with torch.no_grad():
        return text_encoder.get_input_embeddings()(ids.to(text_encoder.device)).float().mean(0, keepdim=True).cpu()


def noise_scheduler(pipe):
    """LDM's training schedule (MusicTI's config), as a diffusers DDPMScheduler."""
    from diffusers import DDPMScheduler

    from pipelines.systems.style_interpolation import DDIM_SCHEDULE

    keys = ("beta_start", "beta_end", "beta_schedule", "num_train_timesteps")
    return DDPMScheduler.from_config(pipe.scheduler.config, **{k: DDIM_SCHEDULE[k] for k in keys})


def setup(argv: list[str] | None = None) -> common.Recipe:
    """The recipe from command-line arguments (models loaded, data made); ``.train()`` runs it."""
    from pipelines.models.style_embedding import StyleEmbedding, save_style
    from pipelines.systems.style_interpolation import encode_with_token_embeddings, mix_token_embeddings

    args = common.check_args(arguments(argv))
    if args.resolution % 8 or args.resolution < 64:
        raise InputError("--resolution must be a multiple of 8, at least 64.")
    accelerator = common.make_accelerator(args)
    dataset = data.SpectrogramDataset(args.data, transform=data.sd_pixels(args.resolution))
    source = common.model_source("riffusion", args.profile)
    pipe = common.load_stable_diffusion("riffusion", args.profile)
    tokenizer, text_encoder, vae, unet = pipe.tokenizer, pipe.text_encoder, pipe.vae, pipe.unet
    scheduler = noise_scheduler(pipe)
    placeholder = tokenizer(PLACEHOLDER, add_special_tokens=False).input_ids
    if len(placeholder) != 1:
        raise InputError(f"The placeholder {PLACEHOLDER!r} is not one token for this tokenizer.")

    width = text_encoder.config.hidden_size
    style = StyleEmbedding(width=width, heads=args.heads, head_dim=args.head_dim,
                           initial_embedding=initial_embedding(tokenizer, text_encoder, args.init_word))
    common.freeze(accelerator, text_encoder, vae, unet)
    dtype, device = common.frozen_dtype(accelerator), accelerator.device
    ids = tokenizer(PLACEHOLDER, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    mask = ids == placeholder[0]
    scale = vae.config.scaling_factor

    def loss_fn(model, pixels, generator):
        b = pixels.shape[0]
        with torch.no_grad():
            latents = vae.encode(pixels.to(device, dtype)).latent_dist.sample(generator=generator) * scale
        noisy, noise, t = common.noise_latents(scheduler, latents.float(), generator)
        base = text_encoder.get_input_embeddings()(ids.expand(b, -1)).float()
        embeds = mix_token_embeddings([model], None, t, base, mask.expand(b, -1))
        cond = encode_with_token_embeddings(text_encoder, ids.expand(b, -1), embeds)
        prediction = unet(noisy.to(dtype), t, encoder_hidden_states=cond.to(dtype)).sample
        return common.diffusion_loss(prediction, noise)

    def finish(model, summary):
        save_style(model, args.output, args.name, PLACEHOLDER,
                   extra={"source": "training.style", "base_model": source.location, "init_word": args.init_word,
                          "steps": summary.steps, "training_files": len(dataset.files)})
        print(f"saved the style {args.name!r} in {args.output}; point STUDIO_MODEL_MUSIC_STYLES at "
              f"{Path(args.output).resolve().parent}")

    return common.Recipe(accelerator, args, style, dataset, loss_fn, finish, "style")


def train(argv: list[str] | None = None) -> common.TrainSummary:
    """Run the recipe; returns the TrainSummary (the style folder is ``--output``)."""
    return setup(argv).train()


main = common.main_wrapper(train)

if __name__ == "__main__":
    sys.exit(main())
