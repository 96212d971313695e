"""A learned music style as MusicTI stores it: a small network and its folder on disk.

MusicTI's time-varying textual inversion (AAAI 2024) learns, per style, a network that maps the
diffusion timestep t to the token embedding v_t of the placeholder "*" (``StyleEmbedding``: a
sinusoidal timestep embedding, cross-attention of a learned query onto it, and a projection to
CLIP's 768 wide token space). This module holds that network, the folder format the app uses for
it (``style.safetensors`` with the state dict and ``style.json`` with name, placeholder and widths),
and the library of style folders the style tab lists. The pipeline that mixes styles and renders
audio with them is ``style_interpolation``; ``scripts/convert_musicti_checkpoint.py`` turns the
original ``embeddings.pt`` into a folder. Nothing here unpickles anything.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core import files
from core.errors import InputError

from pipelines.schema import limits

PLACEHOLDER = "*"
STYLE_WEIGHTS_FILE = "style.safetensors"
STYLE_CONFIG_FILE = "style.json"
STYLE_FORMAT = "musicti-style"
STYLE_FORMAT_VERSION = 1


# -- the style network -------------------------------------------------------------------------------


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """LDM's sinusoidal timestep embedding, (b,) -> (b, dim): cosines first, then sines."""
    t = torch.as_tensor(t).reshape(-1).float()
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None] * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class CrossAttention(nn.Module):
    """LDM's ``ldm.modules.attention.CrossAttention``: bias-free q/k/v, ``to_out`` = Linear + Dropout.

    Same parameter names as the original, so converted state dicts load as they are.
    """

    def __init__(self, query_dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(query_dim, inner, bias=False)
        self.to_v = nn.Linear(query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        b, n, _ = x.shape
        q, k, v = (
            proj.view(b, -1, self.heads, proj.shape[-1] // self.heads).transpose(1, 2)
            for proj in (self.to_q(x), self.to_k(context), self.to_v(context))
        )
        weights = (q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


class StyleAttention(nn.Module):
    """MusicTI's ``Attentions``: self-attention, then attention with h as context, then Linear.

    No residuals, as the original. Over a length-1 sequence every softmax is 1, so this is a chain
    of linear maps (and attn2's output depends only on its context h); kept as attention anyway so
    that converted weights mean what they meant.
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.05):
        super().__init__()
        self.attn1 = CrossAttention(dim, heads, dim_head, dropout)
        self.attn2 = CrossAttention(dim, heads, dim_head, dropout)
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.attn2(self.attn1(x), x))


class StyleEmbedding(nn.Module):
    """One learned style: timestep -> the placeholder's token embedding v_t (MusicTI's TVTI).

    e = time_embed(timestep_embedding(t, width))   Linear width->inner, SiLU, Linear inner->inner
    h = emb_layers(e) + initial_embedding          SiLU, Linear inner->width; initial is frozen (1, width)
    v_t = attention(h)                             over the length-1 sequence h

    width 768 and inner 3072 for Stable Diffusion 1.x's CLIP (about 17.9 M parameters); the tiny
    test model uses its text encoder's width. Build in eval mode: dropout is for training only.
    """

    def __init__(self, width: int = 768, inner: int | None = None, heads: int = 8, head_dim: int = 64,
                 dropout: float = 0.05, initial_embedding: torch.Tensor | None = None):
        super().__init__()
        inner = 4 * width if inner is None else inner
        self.width, self.inner, self.heads, self.head_dim, self.dropout = width, inner, heads, head_dim, dropout
        self.time_embed = nn.Sequential(nn.Linear(width, inner), nn.SiLU(), nn.Linear(inner, inner))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(inner, width))
        self.attention = StyleAttention(width, heads, head_dim, dropout)
        initial = torch.zeros(1, width) if initial_embedding is None else torch.as_tensor(initial_embedding)
        if tuple(initial.shape) != (1, width):
            raise InputError(f"The initial embedding must be (1, {width}), not {tuple(initial.shape)}.")
        # a buffer, not a parameter: frozen, yet saved with the state dict
        self.register_buffer("initial_embedding", initial.detach().clone().float())
        self.eval()

    def config(self) -> dict[str, Any]:
        return {"width": self.width, "inner": self.inner, "heads": self.heads, "head_dim": self.head_dim,
                "dropout": self.dropout}

    def forward(self, t: torch.Tensor | int) -> torch.Tensor:
        """v_t, shaped (batch, width), for timesteps t (an int or a (batch,) tensor)."""
        device = self.initial_embedding.device
        t = torch.as_tensor(t, device=device).reshape(-1)
        e = self.time_embed(timestep_embedding(t, self.width).to(device, self.time_embed[0].weight.dtype))
        h = self.emb_layers(e).view(-1, 1, self.width) + self.initial_embedding.to(e.dtype)
        return self.attention(h).view(-1, self.width)


# -- style folders -----------------------------------------------------------------------------------


@dataclass
class Style:
    name: str
    module: StyleEmbedding
    placeholder: str = PLACEHOLDER
    info: dict[str, Any] = field(default_factory=dict)  # style.json as read


# A style's or genre LoRA's name: its folder on disk and in the session's zip, the word the lists show, a genre
# LoRA's prompt word. ASCII only: two spellings of one accented name (NFC and NFD) look the same yet would be two
# folders, and some file systems rewrite non-ASCII names.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+-]{0,63}$")
NAME_RULE = "1 to 64 ASCII letters (a-z, A-Z), digits, spaces or . _ + -, starting with a letter or digit"


def check_name(name: Any, what: str = "Style name") -> str:
    """``name`` if it keeps the names' rule (``NAME_RULE``); InputError naming ``what`` (the control as the
    page labels it) otherwise, quoting at most the name's first characters (``limits.shown``)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"{what} must be {NAME_RULE}; got {limits.shown(name)}.")
    return name


def save_style(module: StyleEmbedding, folder: str | Path, name: str, placeholder: str = PLACEHOLDER,
               extra: dict[str, Any] | None = None) -> Path:
    """Write ``folder/style.safetensors`` and ``folder/style.json``; returns the folder."""
    from safetensors.torch import save_file

    check_name(name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / STYLE_WEIGHTS_FILE), metadata={"format": STYLE_FORMAT})
    files.readable(folder / STYLE_WEIGHTS_FILE)  # save_file leaves its temporary file's 0600
    info = {"format": STYLE_FORMAT, "version": STYLE_FORMAT_VERSION, "name": name, "placeholder": placeholder,
            **module.config(), **(extra or {})}
    (folder / STYLE_CONFIG_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return folder


def load_style(folder: str | Path) -> Style:
    """A style folder -> Style (module in eval mode, on the CPU, float32)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path, weights_path = folder / STYLE_CONFIG_FILE, folder / STYLE_WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise InputError(f"{folder} is not a style folder: it needs {STYLE_CONFIG_FILE} and {STYLE_WEIGHTS_FILE}.")
    try:
        info = json.loads(config_path.read_text())
        if info.get("format") != STYLE_FORMAT or int(info.get("version", 0)) > STYLE_FORMAT_VERSION:
            raise ValueError(f"format {info.get('format')!r} version {info.get('version')!r}")
        sizes = {k: int(info[k]) for k in ("width", "inner", "heads", "head_dim")}
        if not all(0 < v <= 16384 for v in sizes.values()):
            raise ValueError(f"sizes out of range: {sizes}")
        module = StyleEmbedding(**sizes, dropout=float(info.get("dropout", 0.0)))
        module.load_state_dict(load_file(str(weights_path)), strict=True)
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        raise InputError(f"The style in {folder} could not be read: {error}") from error
    return Style(str(info.get("name") or folder.name), module.eval(), str(info.get("placeholder", PLACEHOLDER)), info)


def list_styles(root: str | Path) -> list[str]:
    """Names of the style folders directly under ``root`` (a folder name is the style's name)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / STYLE_CONFIG_FILE).is_file() and _NAME.match(p.name))


class StyleLibrary:
    """The styles in one folder (the ``music_styles`` role), loaded on first use and kept."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._loaded: dict[str, Style] = {}

    def names(self) -> list[str]:
        return list_styles(self.root)

    def get(self, names: Sequence[str], own: Mapping[str, Path] | None = None) -> list[Style]:
        """The styles ``names``, from this folder or from ``own`` (a visitor's trained styles: name ->
        folder, read afresh each time, never kept: they expire). InputError for a name in neither,
        listing the names available."""
        built_in = self.names()
        own = {name: folder for name, folder in (own or {}).items() if name not in built_in}
        available = [*built_in, *own]
        if isinstance(names, str):
            names = [names]
        unknown = [n for n in names if n not in available]  # only listed folders: no paths from callers
        if unknown:
            raise InputError(f"Unknown style {', '.join(map(repr, unknown))}: choose from {', '.join(available) or '(none)'}.")
        styles = []
        for name in names:
            if name in own:
                styles.append(load_style(own[name]))
                continue
            if name not in self._loaded:
                self._loaded[name] = load_style(self.root / name)
            styles.append(self._loaded[name])
        return styles
