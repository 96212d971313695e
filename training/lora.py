"""Train the music-to-image LoRA (TechJam's recipe) on image/caption pairs.

    python -m training.lora --data frames/ --output loras/m2i          # frames/metadata.jsonl
    python -m training.lora --data pairs.csv --output loras/m2i        # a CSV: file_name,text
    accelerate launch -m training.lora --data frames/ --output loras/m2i --mixed-precision fp16
    STUDIO_MODEL_M2I_LORA=loras/m2i python app.py      # the music-to-image tab uses it

Recipe: diffusers' ``examples/text_to_image/train_text_to_image_lora.py``, which TechJam ran on
MelBench frames and captions (seed-systems.md, section 4), with peft:
- base: the app's ``sd15`` role (Stable Diffusion 1.5); UNet, VAE and CLIP frozen;
- LoRA rank 4 (alpha 4, gaussian init: the up matrices start at zero, so step 0 is plain SD) on the
  UNet attention projections to_q, to_k, to_v, to_out.0;
- AdamW lr 1e-4 (betas 0.9/0.999, weight decay 1e-2, eps 1e-8), constant schedule, gradient
  norm clipped at 1, 512 px (resize shorter side bilinear, centre crop), pixels x / 127.5 - 1;
- loss MSE(eps_theta(z_t, t, CLIP(caption)), eps) with the model's DDPM training schedule,
  t uniform, z = VAE sample x 0.18215; 15 000 steps (the script's README example).
Data: a Hugging Face *imagefolder* (``metadata.jsonl`` lines ``{"file_name": ..., "text": ...}``,
or ``metadata.csv``) or a CSV file with the columns ``file_name`` (or ``image``/``path``) and ``text``
(or ``caption``); paths are relative to the metadata file.
Output: ``OUTPUT/pytorch_lora_weights.safetensors`` as diffusers' ``save_lora_weights`` writes it
(keys ``unet.<module>.lora.down.weight`` (rank, in) and ``.lora.up.weight`` (out, rank)), which
``load_lora_weights`` reads (the app: ``pipelines.models.lora.load_lora``).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

from core import files
from core.errors import InputError
from pipelines.models.lora import LORA_FILE
from training import common, prior

TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")  # diffusers' text-to-image LoRA script
IMAGE_COLUMNS = ("file_name", "image", "path")
TEXT_COLUMNS = ("text", "caption")


def add_lora_arguments(p, rank: int = 4) -> None:
    p.add_argument("--rank", type=int, default=rank, help="LoRA rank (alpha = rank)")
    p.add_argument("--resolution", type=int, default=512, help="training side in pixels")
    p.add_argument("--max-grad-norm", type=float, default=1.0)


def check_lora_args(args) -> None:
    """InputError for a ``--rank`` or ``--resolution`` (``add_lora_arguments``) that cannot train."""
    if args.rank < 1:
        raise InputError(f"--rank must be at least 1; got {args.rank}.")
    if args.resolution % 8 or args.resolution < 64:
        raise InputError("--resolution must be a multiple of 8, at least 64.")


def arguments(argv: list[str] | None = None):
    p = common.parser("python -m training.lora", __doc__.split("\n\n")[0], max_steps=15_000, learning_rate=1e-4,
                      batch_size=1, checkpoint_every=500)
    p.add_argument("--base", default="sd15", help="registry role of the base model")
    add_lora_arguments(p)
    return p.parse_args(argv)


# -- image/caption pairs ---------------------------------------------------------------------------


def _column(row: dict, names: tuple[str, ...], where: Path, what: str) -> str:
    for name in names:
        if name in row and row[name] not in (None, ""):
            return str(row[name])
    raise InputError(f"{where}: a row has no {what} (columns {', '.join(names)}): {row}.")


def read_pairs(data: str | Path) -> list[tuple[Path, str]]:
    """(image path, caption) pairs from an imagefolder (``metadata.jsonl`` / ``metadata.csv``) or a CSV file.

    Errors (InputError): no metadata, a row without image or caption, a listed image that is missing.
    """
    data = Path(data).expanduser()
    if data.is_file() and data.suffix.lower() == ".csv":
        meta = data
    elif data.is_dir():
        meta = next((data / n for n in ("metadata.jsonl", "metadata.csv") if (data / n).is_file()), None)
        if meta is None:
            raise InputError(f"{data} has no metadata.jsonl or metadata.csv (imagefolder: one line per image with "
                             '"file_name" and "text").')
    else:
        raise InputError(f"{data} is neither an imagefolder nor a CSV file.")
    if meta.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(meta.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as error:
                    raise InputError(f"{meta} line {number} is not JSON: {error}") from error
    else:
        with open(meta, newline="") as handle:
            rows = list(csv.DictReader(handle))
    pairs = [(meta.parent / _column(r, IMAGE_COLUMNS, meta, "image file"), _column(r, TEXT_COLUMNS, meta, "caption"))
             for r in rows]
    if not pairs:
        raise InputError(f"{meta} lists no images.")
    missing = [str(p) for p, _ in pairs if not p.is_file()]
    if missing:
        raise InputError(f"{len(missing)} image(s) listed in {meta} do not exist, e.g. {missing[0]}.")
    return pairs


def centre_crop_pixels(image, size: int) -> torch.Tensor:
    """PIL -> (3, size, size) in [-1, 1]: shorter side resized to ``size`` (bilinear), centre crop."""
    from PIL import Image

    image = image.convert("RGB")
    scale = size / min(image.size)
    image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                         Image.Resampling.BILINEAR)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)


class CaptionedImages(torch.utils.data.Dataset):
    """(pixels (3, size, size) in [-1, 1], caption token ids (77,)) pairs; images decoded once."""

    def __init__(self, pairs, tokenizer, size: int):
        from pipelines.signal.images import open_image

        self.pixels, self.captions = [], []
        for path, caption in pairs:
            try:
                image = open_image(str(path), what="training image")
            except InputError:
                raise  # names the file (on a command line, its path)
            except Exception as error:  # noqa: BLE001  (name the file whatever the decoder raised)
                raise InputError(f"{path} could not be read as an image: {error}") from error
            self.pixels.append(centre_crop_pixels(image, size))
            self.captions.append(caption)
        self.ids = tokenizer(self.captions, padding="max_length", max_length=tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int):
        return {"pixels": self.pixels[index], "ids": self.ids[index]}


def collate(items):
    return {"pixels": torch.stack([i["pixels"] for i in items]), "ids": torch.stack([i["ids"] for i in items])}


# -- the UNet LoRA (shared with riffusion_lora) -----------------------------------------------------


def unet_lora_recipe(args, accelerator, pipe, dataset, name: str, target_modules=TARGET_MODULES,
                     extra_info: dict | None = None, prior_loss_weight: float | None = None) -> common.Recipe:
    """A rank-``args.rank`` peft LoRA on the pipe's UNet, trained with the text-to-image loss.

    ``dataset`` items: ``{"pixels": (3, H, W) in [-1, 1], "ids": (77,) caption tokens}``.
    With ``prior_loss_weight`` (DreamBooth prior preservation, ``training.prior``) the items are
    ``prior.DreamBoothPairs``' instance+class pairs, batched instances first, and the loss is
    instance MSE + prior_loss_weight x class MSE.
    Writes ``OUTPUT/pytorch_lora_weights.safetensors`` (diffusers' LoRA format) at the end.
    """
    from diffusers import DDPMScheduler
    from diffusers.training_utils import cast_training_params
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    check_lora_args(args)
    text_encoder, vae, unet = pipe.text_encoder, pipe.vae, pipe.unet
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # the model's own training schedule
    common.freeze(accelerator, text_encoder, vae, unet)
    unet.add_adapter(LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian",
                                target_modules=list(target_modules)))
    cast_training_params(unet, dtype=torch.float32)  # the adapter trains in fp32 under mixed precision
    dtype, device, scale = common.frozen_dtype(accelerator), accelerator.device, vae.config.scaling_factor

    def loss_fn(model, batch, generator):
        with torch.no_grad():
            latents = vae.encode(batch["pixels"].to(device, dtype)).latent_dist.sample(generator=generator) * scale
            cond = text_encoder(batch["ids"].to(device))[0]
        noisy, noise, t = common.noise_latents(scheduler, latents.float(), generator)
        target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(latents, noise, t)
        prediction = model(noisy.to(dtype), t, encoder_hidden_states=cond.to(dtype)).sample
        if prior_loss_weight is None:
            return common.diffusion_loss(prediction, target)
        return prior.prior_preservation_loss(prediction, target, prior_loss_weight)

    def finish(model, summary):
        from diffusers import StableDiffusionPipeline

        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(model))
        StableDiffusionPipeline.save_lora_weights(args.output, unet_lora_layers=layers, weight_name=LORA_FILE,
                                                  safe_serialization=True)
        info = {"recipe": name, "rank": args.rank, "target_modules": list(target_modules), "steps": summary.steps,
                "learning_rate": args.learning_rate, "resolution": args.resolution, **(extra_info or {})}
        (Path(args.output) / "lora.json").write_text(json.dumps(info, indent=2) + "\n")
        files.readable(Path(args.output) / LORA_FILE)  # save_lora_weights (safetensors) leaves 0600
        print(f"saved {Path(args.output) / LORA_FILE}")

    return common.Recipe(accelerator, args, unet, dataset, loss_fn, finish, name,
                         optimizer_kwargs={"betas": (0.9, 0.999), "weight_decay": 1e-2, "eps": 1e-8},
                         collate_fn=collate if prior_loss_weight is None else prior.collate_pairs,
                         max_grad_norm=args.max_grad_norm)


def setup(argv: list[str] | None = None) -> common.Recipe:
    args = common.check_args(arguments(argv))
    pairs = read_pairs(args.data)
    accelerator = common.make_accelerator(args)
    source = common.model_source(args.base, args.profile)
    pipe = common.load_stable_diffusion(args.base, args.profile)
    dataset = CaptionedImages(pairs, pipe.tokenizer, args.resolution)
    return unet_lora_recipe(args, accelerator, pipe, dataset, "lora",
                            extra_info={"base_model": source.location, "images": len(dataset)})


def train(argv: list[str] | None = None) -> common.TrainSummary:
    """Run the recipe; the LoRA is ``--output``/pytorch_lora_weights.safetensors."""
    return setup(argv).train()


main = common.main_wrapper(train)

if __name__ == "__main__":
    sys.exit(main())
