"""Read a MusicTI ``embeddings.pt`` safely and turn it into a style folder the studio reads.

MusicTI (AAAI 2024) saves its learned style as a pickle of nn.Module objects (``EmbeddingManager.save``).
Unpickling can run any code, so the file is read through an unpickler that resolves only the globals
such a file needs, and is written out as ``style.safetensors`` + ``style.json``
(pipelines/models/style_embedding.py's format). Two ways around the unpickler are closed too: a TorchScript
archive (``torch.load`` would hand it to ``torch.jit.load``, which runs the archive's code) is refused
before loading, and so are modules that arrive with hooks set (``state_dict()`` would call them).
The app runs it on one kind of file only: the two published MusicTI styles, after their git blob ids
match the pinned ones (``pipelines/models/originals.py``); anyone else converts with
``python -m scripts.convert_musicti_checkpoint IN.pt OUT_DIR``.

Errors: ``UnsafeCheckpointError`` for a file asking for any other global, a TorchScript archive or a
module with hooks; ``InputError`` for a file that is not a MusicTI checkpoint.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import InputError
from pipelines.models.style_embedding import Style, StyleEmbedding, load_style, save_style


class UnsafeCheckpointError(InputError):
    """A checkpoint asked the unpickler for something outside the allowed list."""


class _LegacyModule(nn.Module):
    """Stands in for MusicTI's own classes (``Attentions``, ``CrossAttention``): after unpickling it
    only needs to hold submodules and parameters so that ``state_dict()`` works. Never called."""


# Everything embeddings.pt needs: torch's tensor rebuilders, the nn containers and layers MusicTI's
# modules are made of, OrderedDict/set for module state. Storage types are resolved by torch.load itself.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,  # protocol 2 writes Python 2 names; the default find_class maps them
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.nn.parameter", "Parameter"): nn.Parameter,
    ("torch.nn.modules.container", "Sequential"): nn.Sequential,
    ("torch.nn.modules.container", "ParameterDict"): nn.ParameterDict,
    ("torch.nn.modules.container", "ModuleList"): nn.ModuleList,
    ("torch.nn.modules.linear", "Linear"): nn.Linear,
    ("torch.nn.modules.activation", "SiLU"): nn.SiLU,
    ("torch.nn.modules.dropout", "Dropout"): nn.Dropout,
    ("ldm.modules.embedding_manager", "Attentions"): _LegacyModule,
    ("ldm.modules.attention", "CrossAttention"): _LegacyModule,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # every global a pickle can call comes through here (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT)
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"Refused to load the checkpoint: it asks for {module}.{name}, which a MusicTI embeddings.pt "
                "does not need. It may be another kind of file, or unsafe."
            ) from None


class _RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` needs: torch reads the zip and storages, we decide globals."""

    Unpickler = _RestrictedUnpickler
    __name__ = "restricted_pickle"

    @staticmethod
    def load(file, **kwargs):
        return _RestrictedUnpickler(file, **kwargs).load()


def _refuse_torchscript(path: Path) -> None:
    """torch.load passes a zip holding ``constants.pkl`` to torch.jit.load, past our unpickler."""
    if not zipfile.is_zipfile(path):
        return  # torch's legacy formats go through pickle_module
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(f"{path} is not a readable MusicTI embeddings.pt: it is a damaged zip file.") from error
    if any(name == "constants.pkl" or name.endswith("/constants.pkl") for name in names):
        raise UnsafeCheckpointError(
            f"Refused to load {path}: it is a TorchScript archive (torch.jit.save), whose loading runs the "
            "archive's own code. A MusicTI embeddings.pt is a plain torch.save file."
        )


def _refuse_hooks(data: dict[str, Any]) -> None:
    """Hooks set on an unpickled module are called by ``state_dict()``: MusicTI's modules have none."""
    for part, value in data.items():
        if not isinstance(value, nn.Module):
            continue
        for name, module in value.named_modules(prefix=str(part)):
            hooked = sorted(attr for attr, hooks in vars(module).items() if attr.endswith("hooks") and hooks)
            if hooked:
                raise UnsafeCheckpointError(
                    f"Refused to convert the checkpoint: its module {name} has hooks set ({', '.join(hooked)}), "
                    "code that would run on use. A MusicTI embeddings.pt has none."
                )


def read_musicti_checkpoint(pt_path: str | Path) -> dict[str, Any]:
    """The dict inside a MusicTI embeddings.pt, unpickled with only the allowed globals, its modules
    without hooks. Raises UnsafeCheckpointError (TorchScript archive, other globals, hooks) or InputError."""
    path = Path(pt_path)
    if not path.is_file():
        raise InputError(f"No such checkpoint file: {path}.")
    _refuse_torchscript(path)
    try:
        # weights_only=False is needed to pass our own pickle module; _RestrictedUnpickler is the guard
        data = torch.load(str(path), map_location="cpu", pickle_module=_RestrictedPickleModule, weights_only=False)
    except UnsafeCheckpointError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, AttributeError,
            TypeError) as error:
        raise InputError(f"{path} is not a readable MusicTI embeddings.pt: {type(error).__name__}: {error}") from error
    missing = {"string_to_token", "attention", "time_embed", "emb_layers", "initial_embeddings"} - set(
        data if isinstance(data, dict) else ()
    )
    if missing:
        raise InputError(f"{path} is not a MusicTI embeddings.pt: it lacks {', '.join(sorted(missing))}.")
    _refuse_hooks(data)
    return data


def musicti_state_dict(data: dict[str, Any]) -> tuple[dict[str, torch.Tensor], str, dict[str, Any]]:
    """Map the unpickled modules onto StyleEmbedding's state dict: (state dict, placeholder, config).

    Key mapping (original module -> StyleEmbedding key):
        time_embed.{0,2}.{weight,bias}                 -> time_embed.{0,2}.{weight,bias}
        emb_layers.1.{weight,bias}                     -> emb_layers.1.{weight,bias}
        attention.attn{1,2}.to_{q,k,v}.weight          -> attention.attn{1,2}.to_{q,k,v}.weight
        attention.attn{1,2}.to_out.0.{weight,bias}     -> attention.attn{1,2}.to_out.0.{weight,bias}
        attention.net.1.{weight,bias}                  -> attention.net.1.{weight,bias}
        initial_embeddings[placeholder] (1, width)     -> initial_embedding
    The placeholder is the single key of ``string_to_token``.
    """
    tokens = data["string_to_token"]
    if not isinstance(tokens, dict) or len(tokens) != 1:
        raise InputError("Only single-placeholder MusicTI checkpoints are supported.")
    placeholder = next(iter(tokens))
    state: dict[str, torch.Tensor] = {}
    for part in ("time_embed", "emb_layers", "attention"):
        module = data[part]
        if not isinstance(module, nn.Module):
            raise InputError(f"The checkpoint's {part} is a {type(module).__name__}, not a module.")
        state.update({f"{part}.{k}": v.detach().float() for k, v in module.state_dict().items()})
    initial = data["initial_embeddings"]
    initial = initial[placeholder] if isinstance(initial, (nn.ParameterDict, dict)) else None
    if initial is None:
        raise InputError(f"The checkpoint has no initial embedding for {placeholder!r}.")
    state["initial_embedding"] = initial.detach().float().reshape(1, -1)
    try:
        width, inner = state["time_embed.0.weight"].shape[1], state["time_embed.0.weight"].shape[0]
        heads = int(getattr(data["attention"].attn1, "heads", 8))  # LDM's CrossAttention keeps it
        head_dim = state["attention.attn1.to_q.weight"].shape[0] // heads
    except (KeyError, AttributeError) as error:
        raise InputError(f"The checkpoint's modules are not MusicTI's: {error}") from error
    return state, str(placeholder), {"width": width, "inner": inner, "heads": heads, "head_dim": head_dim}


def convert_musicti_checkpoint(pt_path: str | Path, out_folder: str | Path, name: str | None = None) -> Style:
    """MusicTI ``embeddings.pt`` -> a style folder (safetensors + json). Returns the loaded style."""
    data = read_musicti_checkpoint(pt_path)
    state, placeholder, config = musicti_state_dict(data)
    module = StyleEmbedding(**config, dropout=0.05)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise InputError(f"The checkpoint's weights do not fit MusicTI's style network: {error}") from error
    token = data["string_to_token"][placeholder]
    extra = {"source": Path(pt_path).name, "clip_token_id": int(token) if torch.is_tensor(token) else token}
    out = save_style(module, out_folder, name or Path(out_folder).name, placeholder, extra)
    return load_style(out)
