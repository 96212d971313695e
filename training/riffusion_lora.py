"""Fine-tune Riffusion for one genre: DreamBooth with LoRA on the genre's spectrograms.

    python -m training.riffusion_lora --data music/jazz --instance-prompt "jazz" --output loras/jazz
    accelerate launch -m training.riffusion_lora --data music/jazz --instance-prompt "jazz" --output loras/jazz
    STUDIO_MODEL_S2M_LORA=loras/jazz python app.py     # sound to music: "genre LoRA" scale above 0

The mask paper (CappiePappies, ECAI'25) fine-tuned Riffusion with DreamBooth on genre spectrograms
(its ``cappiepappie/stable-diffusion-music-25`` is such a fine-tune). This recipe trains the light
version a user can run on one GPU: diffusers' ``examples/dreambooth/train_dreambooth_lora.py`` with
peft, without prior preservation:
- data: every file of the genre -> mono 44.1 kHz -> 5.12 s windows -> riffusion spectrograms (the
  app's codec), 512 px, pixels x / 127.5 - 1; every image has the one instance prompt;
- LoRA rank 4 (alpha 4, gaussian init) on to_q, to_k, to_v, to_out.0 (the script also targets
  add_k_proj/add_v_proj, which SD 1.x's UNet does not have); UNet, VAE and CLIP frozen;
- AdamW lr 1e-4 (the script's README), weight decay 1e-2, constant rate, batch 1, 500 steps,
  gradient norm clipped at 1; loss MSE on the noise with the model's DDPM training schedule.
Output: ``OUTPUT/pytorch_lora_weights.safetensors`` (diffusers' LoRA format), which the sound-to-music
tab applies at the "genre LoRA" scale when ``STUDIO_MODEL_S2M_LORA`` names the folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from core.errors import InputError
from training import common
from training.lora import add_lora_arguments, unet_lora_recipe


def arguments(argv: list[str] | None = None):
    p = common.parser("python -m training.riffusion_lora", __doc__.split("\n\n")[0], max_steps=500,
                      learning_rate=1e-4, batch_size=1, checkpoint_every=100)
    p.add_argument("--instance-prompt", help="the prompt of every training image (default: the data folder's name)")
    p.add_argument("--base", default="riffusion", choices=("riffusion", "mask_model"),
                   help="registry role of the model to fine-tune")
    add_lora_arguments(p)
    args = p.parse_args(argv)
    args.instance_prompt = args.instance_prompt or Path(args.data).expanduser().resolve().name
    return args


class PromptedSpectrograms(torch.utils.data.Dataset):
    """{"pixels": (3, size, size) in [-1, 1], "ids": the instance prompt's (77,) tokens} per window."""

    def __init__(self, folder, tokenizer, prompt: str, size: int):
        self.images = common.SpectrogramDataset(folder, transform=common.sd_pixels(size))
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
    accelerator = common.make_accelerator(args)
    source = common.model_source(args.base, args.profile)
    pipe = common.load_stable_diffusion(args.base, args.profile)
    dataset = PromptedSpectrograms(args.data, pipe.tokenizer, args.instance_prompt, args.resolution)
    return unet_lora_recipe(args, accelerator, pipe, dataset, "riffusion_lora",
                            extra_info={"base_model": source.location, "instance_prompt": args.instance_prompt,
                                        "windows": len(dataset), "files": len(dataset.images.files)})


def train(argv: list[str] | None = None) -> common.TrainSummary:
    """Run the recipe; the LoRA is ``--output``/pytorch_lora_weights.safetensors."""
    return setup(argv).train()


main = common.main_wrapper(train)

if __name__ == "__main__":
    sys.exit(main())
