"""Fine-tune Riffusion for one genre: DreamBooth with LoRA on the genre's spectrograms.

    python -m training.riffusion_lora --data music/jazz --instance-prompt "jazz" --output loras/jazz
    accelerate launch -m training.riffusion_lora --data music/jazz --instance-prompt "jazz" --output loras/jazz
    python -m training.riffusion_lora --data music/jazz --instance-prompt "jazz" --output loras/jazz \
        --with-prior-preservation --class-data class/music --class-prompt "music"
    STUDIO_MODEL_S2M_LORA=loras/jazz python app.py     # sound to music: "genre LoRA" scale above 0

The mask paper (CappiePappies, ECAI'25) fine-tuned Riffusion with DreamBooth on genre spectrograms
(its ``cappiepappie/stable-diffusion-music-25`` is such a fine-tune). This recipe trains the light
version a user can run on one GPU: diffusers' ``examples/dreambooth/train_dreambooth_lora.py`` with
peft, prior preservation optional:
- data: every file of the genre -> mono 44.1 kHz -> 5.12 s windows -> riffusion spectrograms (the
  app's codec), 512 px, pixels x / 127.5 - 1; every image has the one instance prompt;
- LoRA rank 4 (alpha 4, gaussian init) on to_q, to_k, to_v, to_out.0 (the script also targets
  add_k_proj/add_v_proj, which SD 1.x's UNet does not have); UNet, VAE and CLIP frozen;
- AdamW lr 1e-4 (the script's README), weight decay 1e-2, constant rate, batch 1, 500 steps,
  gradient norm clipped at 1; loss MSE on the noise with the model's DDPM training schedule;
- ``--with-prior-preservation`` (off by default; ``training.prior``): ``--class-data DIR`` is topped
  up to ``--num-class-images`` (100) spectrograms that the base model generates from
  ``--class-prompt`` ("music") in ``--class-inference-steps`` (25) steps at the training size, saved
  as ``class-NNNNN.png`` and reused by the next run (only missing ones are made; PNG/JPEG files of
  your own count too); each batch is the instance windows followed by as many class images (so twice
  the work per step), and the loss is instance MSE + ``--prior-loss-weight`` (1.0) x class MSE.
  Errors (InputError): no ``--class-data``, ``--class-data``/``--class-prompt`` without the flag, an
  empty class prompt, fewer than one class image or inference step, a negative weight.
Output: ``OUTPUT/pytorch_lora_weights.safetensors`` (diffusers' LoRA format), which the sound-to-music
tab applies at the "genre LoRA" scale when ``STUDIO_MODEL_S2M_LORA`` names the folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from core.errors import InputError
from training import common, data, prior
from training.lora import add_lora_arguments, check_lora_args, unet_lora_recipe

CLASS_PROMPT = "music"  # the default class: what Riffusion makes of music in general


def arguments(argv: list[str] | None = None):
    p = common.parser("python -m training.riffusion_lora", __doc__.split("\n\n")[0], max_steps=500,
                      learning_rate=1e-4, batch_size=1, checkpoint_every=100)
    p.add_argument("--instance-prompt", help="the prompt of every training image (default: the data folder's name)")
    p.add_argument("--base", default="riffusion", choices=("riffusion", "mask_model"),
                   help="registry role of the model to fine-tune")
    add_lora_arguments(p)
    prior_args = p.add_argument_group("prior preservation (DreamBooth's class images)")
    prior_args.add_argument("--with-prior-preservation", action="store_true",
                            help="add the class images' loss, so the base model's idea of the class is kept")
    prior_args.add_argument("--class-data", default=None, metavar="DIR",
                            help="class images folder (PNG/JPEG); topped up to --num-class-images by the base model")
    prior_args.add_argument("--class-prompt", default=None,
                            help=f"the prompt of the class images (default with prior preservation: '{CLASS_PROMPT}')")
    prior_args.add_argument("--num-class-images", type=int, default=100, help="class images to train with")
    prior_args.add_argument("--prior-loss-weight", type=float, default=1.0, help="weight of the class images' loss")
    prior_args.add_argument("--class-inference-steps", type=int, default=25,
                            help="inference steps per generated class image")
    args = p.parse_args(argv)
    args.instance_prompt = args.instance_prompt or Path(args.data).expanduser().resolve().name
    return args


def check_prior_args(args):
    """InputError for prior-preservation flags that cannot work; fills in the default class prompt."""
    if not args.with_prior_preservation:
        given = [flag for flag, value in (("--class-data", args.class_data), ("--class-prompt", args.class_prompt))
                 if value is not None]
        if given:
            raise InputError(f"{' and '.join(given)} only apply with --with-prior-preservation; add it or drop them.")
        return args
    if not args.class_data:
        raise InputError("--with-prior-preservation needs --class-data DIR (a folder for the class images).")
    args.class_prompt = CLASS_PROMPT if args.class_prompt is None else args.class_prompt
    if not args.class_prompt.strip():
        raise InputError("--class-prompt must not be empty.")
    if args.num_class_images < 1:
        raise InputError(f"--num-class-images must be at least 1; got {args.num_class_images}.")
    if args.class_inference_steps < 1:
        raise InputError(f"--class-inference-steps must be at least 1; got {args.class_inference_steps}.")
    if not args.prior_loss_weight >= 0:
        raise InputError(f"--prior-loss-weight must be 0 or more; got {args.prior_loss_weight}.")
    return args


class PromptedSpectrograms(torch.utils.data.Dataset):
    """{"pixels": (3, size, size) in [-1, 1], "ids": the instance prompt's (77,) tokens} per window."""

    def __init__(self, folder, tokenizer, prompt: str, size: int):
        self.images = data.SpectrogramDataset(folder, transform=data.sd_pixels(size))
        self.ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                             return_tensors="pt").input_ids[0]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return {"pixels": self.images[index], "ids": self.ids}


def setup(argv: list[str] | None = None) -> common.Recipe:
    args = common.check_args(arguments(argv))
    if not args.instance_prompt.strip():
        raise InputError("--instance-prompt must not be empty.")
    check_lora_args(args)  # before any class image is generated at --resolution
    check_prior_args(args)
    accelerator = common.make_accelerator(args)
    source = common.model_source(args.base, args.profile)
    pipe = common.load_stable_diffusion(args.base, args.profile)
    instances = PromptedSpectrograms(args.data, pipe.tokenizer, args.instance_prompt, args.resolution)
    info = {"base_model": source.location, "instance_prompt": args.instance_prompt, "windows": len(instances),
            "files": len(instances.images.files)}
    if not args.with_prior_preservation:
        return unet_lora_recipe(args, accelerator, pipe, instances, "riffusion_lora", extra_info=info)
    common.freeze(accelerator, pipe.text_encoder, pipe.vae, pipe.unet)  # generate on the training device and dtype
    prior.generate_class_images(accelerator, pipe, args.class_data, args.class_prompt, args.num_class_images,
                                steps=args.class_inference_steps, size=args.resolution, seed=args.seed)
    class_files = prior.class_images(args.class_data)[:args.num_class_images]
    dataset = prior.DreamBoothPairs(instances, class_files, pipe.tokenizer, args.class_prompt, args.resolution)
    info["prior_preservation"] = {"class_prompt": args.class_prompt, "class_images": len(class_files),
                                  "prior_loss_weight": args.prior_loss_weight}
    return unet_lora_recipe(args, accelerator, pipe, dataset, "riffusion_lora", extra_info=info,
                            prior_loss_weight=args.prior_loss_weight)


def train(argv: list[str] | None = None) -> common.TrainSummary:
    """Run the recipe; the LoRA is ``--output``/pytorch_lora_weights.safetensors."""
    return setup(argv).train()


main = common.main_wrapper(train)

if __name__ == "__main__":
    sys.exit(main())
