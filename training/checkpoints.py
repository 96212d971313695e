"""Training checkpoints: what is trained, the optimizer, the learning-rate schedule and the step.

A checkpoint holds only what is trained (the parameters with ``requires_grad``, and the module's
buffers; for a LoRA a few MB, not the frozen UNet) plus the optimizer, schedule and loss-scaler states
and the step reached: ``OUTPUT/checkpoints/step-<N>/`` with ``trainable.safetensors``,
``optimizer.pt``, ``lr_scheduler.pt``, ``scaler.pt`` (mixed precision only) and ``state.json``.
``training.common.run`` saves one every ``--checkpoint-every`` steps and at the end, and resumes from
the one ``--resume`` names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from core import files
from core.errors import InputError

CHECKPOINTS = "checkpoints"  # the folder under OUTPUT


def trainable_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters being trained (requires_grad) and the module's buffers (BatchNorm statistics), on
    the CPU: what a checkpoint must hold to resume exactly, without the frozen weights."""
    state = {name: p.detach().to("cpu", torch.float32).contiguous()
             for name, p in module.named_parameters() if p.requires_grad}
    state.update({name: b.detach().to("cpu").contiguous() for name, b in module.named_buffers()})
    return state


def find_checkpoint(output: Path, resume: str | None) -> Path | None:
    """The checkpoint folder ``--resume`` names (``latest``: the newest under OUTPUT/checkpoints)."""
    if not resume:
        return None
    if resume == "latest":
        found = sorted((output / CHECKPOINTS).glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
        return found[-1] if found else None  # nothing saved yet: start from scratch
    path = Path(resume).expanduser()
    if not (path / "state.json").is_file():
        raise InputError(f"{path} is not a checkpoint folder (no state.json).")
    return path


def save_checkpoint(accelerator, folder: Path, trainable: torch.nn.Module, optimizer, step: int,
                    extra: dict[str, Any] | None = None, lr_scheduler=None) -> None:
    """Write ``folder`` (main process only): the trainable state, optimizer, schedule, scaler, step."""
    from safetensors.torch import save_file

    if not accelerator.is_main_process:
        return
    folder.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(accelerator.unwrap_model(trainable)), str(folder / "trainable.safetensors"))
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    if lr_scheduler is not None:
        torch.save(lr_scheduler.state_dict(), folder / "lr_scheduler.pt")
    if accelerator.scaler is not None:
        torch.save(accelerator.scaler.state_dict(), folder / "scaler.pt")
    (folder / "state.json").write_text(json.dumps({"step": step, **(extra or {})}, indent=2))
    files.readable(folder)  # save_file leaves its temporary file's 0600


def load_checkpoint(accelerator, folder: Path, trainable: torch.nn.Module, optimizer, lr_scheduler=None) -> int:
    """Restore the trained parameters and the optimizer; returns the optimizer step reached."""
    from safetensors.torch import load_file

    module = accelerator.unwrap_model(trainable)
    state = load_file(str(folder / "trainable.safetensors"))
    expected = {name: tuple(t.shape) for name, t in trainable_state(module).items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    if found != expected:
        differ = sorted(set(found) ^ set(expected)) + sorted(n for n in set(found) & set(expected)
                                                              if found[n] != expected[n])
        raise InputError(f"The checkpoint {folder} was made for other trainable parameters ({len(differ)} differ "
                         f"in name or shape, e.g. {differ[0]}): resume with the same recipe and flags.")
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    with torch.no_grad():
        for name, value in state.items():
            tensors[name].copy_(value)
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=accelerator.device, weights_only=True))
    if lr_scheduler is not None and (folder / "lr_scheduler.pt").is_file():
        lr_scheduler.load_state_dict(torch.load(folder / "lr_scheduler.pt", weights_only=True))
    if accelerator.scaler is not None and (folder / "scaler.pt").is_file():
        accelerator.scaler.load_state_dict(torch.load(folder / "scaler.pt", weights_only=True))
    return int(json.loads((folder / "state.json").read_text())["step"])
