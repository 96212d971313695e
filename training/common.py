"""What every training recipe shares: the command line, the base models, the loop.

A recipe (``training/style.py``, ``lora.py``, ``amuse_vae.py``, ``amuse_unet.py``,
``riffusion_lora.py``) parses ``parser(...)``'s flags, loads its base models from the app's registry
(``model_source``), builds its data set (``training.data``: spectrogram images of a folder of audio)
and a ``loss_fn(model, batch, generator)``, and returns a ``Recipe``; ``Recipe.train()`` runs ``run``
and writes the app's format. The same command runs on a
CPU, one GPU or many (``accelerate launch -m training.<recipe>``: data parallel through
``accelerate.Accelerator``; on CPUs ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu
--num_processes N`` gives N gloo processes), with mixed precision, gradient accumulation,
checkpoints every N optimizer steps, ``--resume``, a tqdm progress bar, the loss written to
``OUTPUT/loss.csv`` and a seed.

Reproducibility: the data order comes from accelerate's seedable sampler (seed + epoch) and every
micro-batch draws its noise and timesteps from its own generator seeded by (seed, micro-batch number,
process), so a run resumed from a checkpoint continues exactly as the uninterrupted run would have
(the test checks the weights match).

Checkpoints (``training.checkpoints``) hold only what is trained plus the optimizer state and the
step: ``OUTPUT/checkpoints/step-<N>/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.errors import InputError, command_line
from pipelines.models.registry import PROFILES
from training.checkpoints import CHECKPOINTS, find_checkpoint, load_checkpoint, save_checkpoint

LOSS_FILE = "loss.csv"
SUMMARY_FILE = "training.json"


# -- the command line ------------------------------------------------------------------------------


LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")


def parser(prog: str, description: str, *, max_steps: int, learning_rate: float, batch_size: int,
           checkpoint_every: int = 500, lr_scheduler: str = "constant", lr_warmup_steps: int = 0
           ) -> argparse.ArgumentParser:
    """The flags every recipe takes; a recipe adds its own and passes its original's defaults."""
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="training data folder")
    p.add_argument("--output", required=True, help="folder the result is written to (the format the app loads)")
    p.add_argument("--max-steps", type=int, default=max_steps, help="optimizer steps")
    p.add_argument("--profile", choices=PROFILES, default="hub",
                   help="where base models come from: the Hub, tiny random models, or full-size random models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning-rate", type=float, default=learning_rate)
    p.add_argument("--lr-scheduler", choices=LR_SCHEDULERS, default=lr_scheduler,
                   help="learning-rate schedule over --max-steps (diffusers' get_scheduler)")
    p.add_argument("--lr-warmup-steps", type=int, default=lr_warmup_steps, help="optimizer steps of linear warm-up")
    p.add_argument("--batch-size", type=int, default=batch_size, help="per process, per micro-batch")
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no",
                   help="autocast for the trained part; frozen models are stored in this dtype")
    p.add_argument("--checkpoint-every", type=int, default=checkpoint_every, help="optimizer steps; 0: never")
    p.add_argument("--resume", default=None, help="a checkpoint folder, or 'latest' (the newest in OUTPUT/checkpoints)")
    p.add_argument("--log-every", type=int, default=1, help="write the loss every N optimizer steps")
    p.add_argument("--num-workers", type=int, default=0, help="data loader worker processes")
    return p


def check_args(args: argparse.Namespace) -> argparse.Namespace:
    """Clear errors for numbers that cannot train (InputError)."""
    for name in ("max_steps", "batch_size", "gradient_accumulation_steps", "log_every"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1; got {getattr(args, name)}.")
    if getattr(args, "lr_warmup_steps", 0) < 0:
        raise InputError("--lr-warmup-steps must be 0 or more.")
    if args.checkpoint_every < 0:
        raise InputError("--checkpoint-every must be 0 (never) or more.")
    if not args.learning_rate > 0:
        raise InputError(f"--learning-rate must be above 0; got {args.learning_rate}.")
    return args


def main_wrapper(main: Callable[[list[str] | None], Any]) -> Callable[[list[str] | None], int]:
    """Run a recipe as a command line (``core.errors.command_line``: file errors name the path given)
    and turn InputError into one line on stderr and exit status 2 (bad data, bad flags)."""
    import sys

    def wrapped(argv: list[str] | None = None) -> int:
        try:
            with command_line():
                main(argv)
        except InputError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0

    return wrapped


# -- base models from the app's registry -------------------------------------------------------------


def model_source(role: str, profile: str):
    """Where the app would load ``role`` from in ``profile`` (``STUDIO_MODEL_<ROLE>`` overrides apply);
    tiny and fullsize models are built on first use. Returns ``pipelines.models.registry.ModelSource``.
    Every recipe's base model comes through here, so the console becomes the app's first (the
    libraries' unactionable notes and save bars dropped: ``loaders.import_model_libraries``)."""
    from pipelines.models import loaders

    loaders.import_model_libraries()
    from pipelines.models.registry import ModelRegistry

    return ModelRegistry(profile).resolve(role)  # a built profile's builder comes with the registry


def load_stable_diffusion(role: str, profile: str):
    """The Stable Diffusion pipeline of ``role`` (riffusion, sd15, ...) through the app's own loader."""
    from pipelines.models import loaders
    from pipelines.models.registry import load_or_explain

    return load_or_explain(model_source(role, profile), loaders.load_sd_img2img)


# -- the loop --------------------------------------------------------------------------------------


def make_accelerator(args: argparse.Namespace):
    """An ``accelerate.Accelerator`` for the flags, with the seed set everywhere (call before building
    models, so every process starts from the same random initialisation)."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, set_seed

    accelerator = Accelerator(mixed_precision=args.mixed_precision,
                              gradient_accumulation_steps=args.gradient_accumulation_steps,
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    set_seed(args.seed)
    return accelerator


def frozen_dtype(accelerator) -> torch.dtype:
    """The dtype frozen models are kept in: half under mixed precision (as diffusers' scripts do)."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


def freeze(accelerator, *modules: torch.nn.Module) -> None:
    """No gradients, eval mode, on the accelerator's device in ``frozen_dtype``."""
    dtype = frozen_dtype(accelerator)
    for module in modules:
        module.requires_grad_(False)
        module.eval()
        # a cast to the dtype they already have only makes diffusers warn
        module.to(accelerator.device, dtype) if dtype != torch.float32 else module.to(accelerator.device)


@dataclass
class Recipe:
    """A recipe ready to run: what ``run`` trains and how the result is written.

    ``finish(model, summary)`` writes the app's format from the trained module (main process only);
    tests use ``loss_fn`` with a fixed generator to measure a loss before and after training.
    """

    accelerator: Any
    args: argparse.Namespace
    trainable: torch.nn.Module
    dataset: torch.utils.data.Dataset
    loss_fn: Callable[[torch.nn.Module, Any, torch.Generator], torch.Tensor]
    finish: Callable[[torch.nn.Module, "TrainSummary"], None]
    name: str
    optimizer_cls: type = torch.optim.AdamW
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    collate_fn: Callable | None = None
    max_grad_norm: float | None = None

    def train(self) -> "TrainSummary":
        model, summary = run(self.accelerator, self.args, trainable=self.trainable, dataset=self.dataset,
                             loss_fn=self.loss_fn, optimizer_cls=self.optimizer_cls,
                             optimizer_kwargs=self.optimizer_kwargs, collate_fn=self.collate_fn,
                             max_grad_norm=self.max_grad_norm, name=self.name)
        if self.accelerator.is_main_process:
            self.finish(self.accelerator.unwrap_model(model), summary)
        self.accelerator.wait_for_everyone()
        return summary

    @torch.no_grad()
    def evaluate(self, seeds: Sequence[int] = (0, 1, 2, 3)) -> float:
        """Mean loss over the whole data set with fixed generators: comparable before and after training."""
        module = self.trainable
        was_training = module.training
        module.eval()
        total, count = 0.0, 0
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=1, shuffle=False, collate_fn=self.collate_fn)
        for seed in seeds:
            for index, batch in enumerate(loader):
                generator = torch.Generator(device=self.accelerator.device).manual_seed(seed * 100_003 + index)
                batch = batch.to(self.accelerator.device) if isinstance(batch, torch.Tensor) else batch
                total += float(self.loss_fn(module, batch, generator))
                count += 1
        module.train(was_training)
        return total / count


@dataclass
class TrainSummary:
    """What a run did: ``losses[i]`` is the mean loss of optimizer step ``first_step + i + 1``."""

    steps: int
    losses: list[float]
    first_step: int = 0
    seconds_per_step: float | None = None  # wall time per optimizer step, first step left out
    checkpoints: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "first_step": self.first_step, "seconds_per_step": self.seconds_per_step,
                "losses": self.losses, "checkpoints": self.checkpoints}


def _generator(accelerator, seed: int, micro_step: int) -> torch.Generator:
    """Every micro-batch's own noise: the same on resume, different on each process."""
    g = torch.Generator(device=accelerator.device)
    g.manual_seed((seed * 1_000_003 + micro_step * 7919 + accelerator.process_index * 104_729) % 2**63)
    return g


def run(
    accelerator,
    args: argparse.Namespace,
    *,
    trainable: torch.nn.Module,
    dataset: torch.utils.data.Dataset,
    loss_fn: Callable[[torch.nn.Module, Any, torch.Generator], torch.Tensor],
    optimizer_cls: type = torch.optim.AdamW,
    optimizer_kwargs: dict[str, Any] | None = None,
    collate_fn: Callable | None = None,
    max_grad_norm: float | None = None,
    name: str = "train",
) -> tuple[torch.nn.Module, TrainSummary]:
    """Train the ``requires_grad`` parameters of ``trainable`` for ``args.max_steps`` optimizer steps.

    loss_fn(model, batch, generator) -> scalar loss, where ``model`` is ``trainable`` as prepared by
    accelerate (moved to the device, wrapped for data parallel) and ``generator`` (on the device) is
    the only randomness it should draw from, so that a resumed run is exact.
    Optimizer: ``optimizer_cls(params, lr=args.learning_rate, **optimizer_kwargs)`` (AdamW by default);
    learning rate: ``args.lr_scheduler`` with ``args.lr_warmup_steps`` of warm-up (constant by default). ``args.resume`` restores a checkpoint (``find_checkpoint``).

    Returns (the prepared module, TrainSummary). The loss of each optimizer step (averaged over its
    micro-batches and processes) goes to the progress bar and to ``OUTPUT/loss.csv`` (``step,loss``);
    ``OUTPUT/training.json`` gets the summary. Checkpoints every ``args.checkpoint_every`` steps and
    at the end go to ``OUTPUT/checkpoints/step-<N>``.
    """
    from tqdm.auto import tqdm

    check_args(args)
    output = Path(args.output)
    params = [p for p in trainable.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError("Nothing to train: no parameter requires grad.")
    optimizer = optimizer_cls(params, lr=args.learning_rate, **(optimizer_kwargs or {}))
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=False,
                                         collate_fn=collate_fn, num_workers=args.num_workers,
                                         generator=torch.Generator().manual_seed(args.seed))
    from diffusers.optimization import get_scheduler

    # accelerate steps a prepared schedule once per process per optimizer step: count in those units
    schedule = get_scheduler(getattr(args, "lr_scheduler", "constant"), optimizer,
                             num_warmup_steps=getattr(args, "lr_warmup_steps", 0) * accelerator.num_processes,
                             num_training_steps=args.max_steps * accelerator.num_processes)
    model, optimizer, loader, schedule = accelerator.prepare(trainable, optimizer, loader, schedule)
    accelerator.print(f"{name}: {len(dataset)} examples, {accelerator.num_processes} process(es), "
                      f"{sum(p.numel() for p in params):,} trained parameters")

    step = 0
    checkpoint = find_checkpoint(output, args.resume)
    if checkpoint is not None:
        step = load_checkpoint(accelerator, checkpoint, model, optimizer, schedule)
        accelerator.print(f"resumed from {checkpoint} at step {step}")
    first_step = step
    per_epoch = len(loader)
    micro = step * args.gradient_accumulation_steps  # micro-batches already consumed (per process)
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        if checkpoint is None or not (output / LOSS_FILE).is_file():  # resumed into a new folder: a new log
            (output / LOSS_FILE).write_text("step,loss\n")
    losses: list[float] = []
    saved: list[str] = []
    step_times: list[float] = []
    pending: list[torch.Tensor] = []
    bar = tqdm(total=args.max_steps, initial=step, desc=name, disable=not accelerator.is_local_main_process,
               dynamic_ncols=True)
    model.train()
    started = time.perf_counter()
    while step < args.max_steps:
        epoch, skip = divmod(micro, per_epoch)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        for batch in batches:
            with accelerator.accumulate(model):
                loss = loss_fn(model, batch, _generator(accelerator, args.seed, micro))
                accelerator.backward(loss)
                if accelerator.sync_gradients and max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
                optimizer.step()
                schedule.step()  # accelerate skips it while gradients accumulate
                optimizer.zero_grad(set_to_none=True)
            micro += 1
            pending.append(loss.detach().float())
            if not accelerator.sync_gradients:
                continue
            step += 1
            value = accelerator.gather(torch.stack(pending).mean()[None]).mean().item()
            pending = []
            losses.append(value)
            now = time.perf_counter()
            step_times.append(now - started)
            started = now
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}")
            if accelerator.is_main_process and (step % args.log_every == 0 or step == args.max_steps):
                with open(output / LOSS_FILE, "a", newline="") as handle:
                    csv.writer(handle).writerow([step, f"{value:.6g}"])
            if (args.checkpoint_every and step % args.checkpoint_every == 0) or step == args.max_steps:
                folder = output / CHECKPOINTS / f"step-{step}"
                save_checkpoint(accelerator, folder, model, optimizer, step, lr_scheduler=schedule)
                saved.append(str(folder))
            if step >= args.max_steps:
                break
    bar.close()
    accelerator.wait_for_everyone()
    timed = step_times[1:] or step_times
    summary = TrainSummary(step, losses, first_step, sum(timed) / len(timed) if timed else None, saved)
    if accelerator.is_main_process:
        (output / SUMMARY_FILE).write_text(json.dumps({"recipe": name, "processes": accelerator.num_processes,
                                                       "mixed_precision": accelerator.mixed_precision,
                                                       **summary.as_dict()}, indent=2) + "\n")
        if summary.seconds_per_step is not None:
            accelerator.print(f"{name}: {step - first_step} steps, {summary.seconds_per_step:.3f} s/step, "
                              f"last loss {losses[-1]:.4f}")
    return model, summary


def read_losses(output: str | Path) -> list[tuple[int, float]]:
    """(step, loss) rows of ``OUTPUT/loss.csv``, for plots and tests."""
    with open(Path(output) / LOSS_FILE, newline="") as handle:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(handle)]


def diffusion_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The simple diffusion loss: mean squared error in float32 (LDM's ``loss_simple``, diffusers' MSE)."""
    return torch.nn.functional.mse_loss(prediction.float(), target.float(), reduction="mean")


def noise_latents(scheduler, latents: torch.Tensor, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noisy latents, noise, timesteps): t uniform over the training steps, eps ~ N(0, I), as every
    diffusion trainer here samples them (LDM, diffusers' text-to-image/DreamBooth, AMUSE)."""
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator,
                      device=latents.device).long()
    return scheduler.add_noise(latents, noise, t), noise, t
