"""The MusicTI embeddings.pt converter (scripts/convert_musicti_checkpoint.py): mapping, safety, errors, CLI."""

import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from core.errors import InputError
from pipelines.models import style_embedding as se
from scripts import convert_musicti_checkpoint as convert


def _fake_ldm_modules():
    """Modules named and built like MusicTI's own (ldm.modules.attention.CrossAttention,
    ldm.modules.embedding_manager.Attentions), with their forward passes written out."""
    attention_mod = types.ModuleType("ldm.modules.attention")
    manager_mod = types.ModuleType("ldm.modules.embedding_manager")

    class CrossAttention(nn.Module):
        def __init__(self, query_dim, heads=8, dim_head=64, dropout=0.0):
            super().__init__()
            inner = heads * dim_head
            self.scale, self.heads = dim_head**-0.5, heads
            self.to_q = nn.Linear(query_dim, inner, bias=False)
            self.to_k = nn.Linear(query_dim, inner, bias=False)
            self.to_v = nn.Linear(query_dim, inner, bias=False)
            self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

        def forward(self, x, context=None):
            context = x if context is None else context
            h = self.heads
            q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
            b, n, d = q.shape
            q, k, v = (z.reshape(b, -1, h, d // h).permute(0, 2, 1, 3).reshape(b * h, -1, d // h) for z in (q, k, v))
            sim = torch.einsum("b i d, b j d -> b i j", q, k) * self.scale
            out = torch.einsum("b i j, b j d -> b i d", sim.softmax(dim=-1), v)
            out = out.reshape(b, h, n, d // h).permute(0, 2, 1, 3).reshape(b, n, d)
            return self.to_out(out)

    class Attentions(nn.Module):
        def __init__(self, dim, n_heads, d_head, dropout=0.0):
            super().__init__()
            self.attn1 = CrossAttention(dim, n_heads, d_head, dropout)
            self.attn2 = CrossAttention(dim, n_heads, d_head, dropout)
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, dim))

        def forward(self, x, context=None):
            return self.net(self.attn2(self.attn1(x), x))

    for cls, mod in ((CrossAttention, attention_mod), (Attentions, manager_mod)):
        cls.__module__ = mod.__name__
        cls.__qualname__ = cls.__name__
        setattr(mod, cls.__name__, cls)
    return attention_mod, manager_mod


def _write_musicti_checkpoint(path, monkeypatch, width=32, inner=128, change=None):
    """A dict of pickled modules as MusicTI's EmbeddingManager.save writes it (``change(modules)`` first,
    if given); returns the modules."""
    attention_mod, manager_mod = _fake_ldm_modules()
    torch.manual_seed(7)
    original = {
        "string_to_token": {"*": torch.tensor(265)},
        "attention": manager_mod.Attentions(dim=width, n_heads=2, d_head=16, dropout=0.05),
        "time_embed": nn.Sequential(nn.Linear(width, inner), nn.SiLU(), nn.Linear(inner, inner)),
        "emb_layers": nn.Sequential(nn.SiLU(), nn.Linear(inner, width)),
        "initial_embeddings": nn.ParameterDict({"*": nn.Parameter(torch.randn(1, width), requires_grad=False)}),
    }
    if change is not None:
        change(original)
    with monkeypatch.context() as m:  # the fake ldm package exists only while saving
        for name, mod in (("ldm", types.ModuleType("ldm")), ("ldm.modules", types.ModuleType("ldm.modules")),
                          ("ldm.modules.attention", attention_mod), ("ldm.modules.embedding_manager", manager_mod)):
            m.setitem(sys.modules, name, mod)
        torch.save(original, path)
    assert "ldm.modules.attention" not in sys.modules
    return original


def _original_vector(original, t, width=32):
    """MusicTI's process_embeddings, step by step, on the original modules (eval mode)."""
    for key in ("attention", "time_embed", "emb_layers"):
        original[key].eval()
    # the timestep embedding itself is checked against LDM's formula in test_style_interpolation.py
    emb = original["time_embed"](se.timestep_embedding(torch.tensor([t]), width))
    h = original["emb_layers"](emb).view(1, 1, width) + original["initial_embeddings"]["*"]
    return original["attention"](h, h).view(1, width)


def test_converter_maps_a_pickled_musicti_checkpoint(tmp_path, monkeypatch):
    original = _write_musicti_checkpoint(tmp_path / "embeddings.pt", monkeypatch)
    style = convert.convert_musicti_checkpoint(tmp_path / "embeddings.pt", tmp_path / "accordion")
    assert style.name == "accordion" and style.placeholder == "*"
    assert style.info["clip_token_id"] == 265 and style.info["heads"] == 2 and style.info["head_dim"] == 16
    for t in (1, 341, 681, 981):
        with torch.no_grad():
            assert torch.allclose(style.module(t), _original_vector(original, t), atol=1e-5)
    assert torch.equal(style.module.initial_embedding, original["initial_embeddings"]["*"].detach())
    # and the folder loads on its own
    assert torch.equal(se.load_style(tmp_path / "accordion").module(500), style.module(500))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"string_to_token": _Evil(marker)}, tmp_path / "evil.pt")  # torch's zip format
    with pytest.raises(convert.UnsafeCheckpointError, match="system"):
        convert.convert_musicti_checkpoint(tmp_path / "evil.pt", tmp_path / "out")
    with open(tmp_path / "evil.pkl", "wb") as f:  # a bare pickle goes through torch's legacy path
        pickle.dump(_Evil(marker), f, protocol=2)
    with pytest.raises(convert.UnsafeCheckpointError, match="system"):
        convert.convert_musicti_checkpoint(tmp_path / "evil.pkl", tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def _scripted_module_that_touches(marker):
    """A TorchScript module whose __setstate__ (run by torch.jit.load) writes ``marker`` through a custom op."""
    if not hasattr(torch.ops.studio_test, "touch"):
        @torch.library.custom_op("studio_test::touch", mutates_args=())
        def touch(x: torch.Tensor) -> torch.Tensor:
            Path(os.environ["STUDIO_TEST_MARKER"]).write_text("the archive's code ran")
            return x.clone()

    class Hooked(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.zeros(1)

        @torch.jit.export
        def __getstate__(self):
            return (self.w, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[torch.Tensor, bool]):
            self.w = torch.ops.studio_test.touch(state[0])
            self.training = state[1]

        def forward(self, x):
            return x + self.w

    return torch.jit.script(Hooked())


def test_a_torchscript_archive_is_refused_before_its_code_runs(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("STUDIO_TEST_MARKER", str(marker))
    torch.jit.save(_scripted_module_that_touches(marker), tmp_path / "embeddings.pt")
    torch.jit.load(tmp_path / "embeddings.pt")  # the test can fail: loading it does run its code
    assert marker.exists()
    marker.unlink()
    with pytest.raises(convert.UnsafeCheckpointError, match="TorchScript archive"):
        convert.convert_musicti_checkpoint(tmp_path / "embeddings.pt", tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_module_pickled_with_hooks_is_refused_clearly(tmp_path, monkeypatch):
    def add_hook(modules):  # an allowed global as a hook: state_dict() would call nn.Linear(module, state, ...)
        modules["time_embed"]._state_dict_hooks[0] = nn.Linear

    _write_musicti_checkpoint(tmp_path / "hooked.pt", monkeypatch, change=add_hook)
    with pytest.raises(convert.UnsafeCheckpointError, match="time_embed has hooks set"):
        convert.convert_musicti_checkpoint(tmp_path / "hooked.pt", tmp_path / "out")


def test_converter_refuses_files_that_are_not_musicti(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="lacks"):
        convert.convert_musicti_checkpoint(tmp_path / "other.pt", tmp_path / "out")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError):
        convert.convert_musicti_checkpoint(tmp_path / "junk.pt", tmp_path / "out")


def test_command_line_writes_a_style_folder(tmp_path, monkeypatch, capsys):
    original = _write_musicti_checkpoint(tmp_path / "embeddings.pt", monkeypatch)
    convert.main([str(tmp_path / "embeddings.pt"), str(tmp_path / "styles" / "accordion"), "--name", "Accordion"])
    assert "Wrote style 'Accordion'" in capsys.readouterr().out
    style = se.load_style(tmp_path / "styles" / "accordion")
    assert style.name == "Accordion"
    with torch.no_grad():
        assert torch.allclose(style.module(341), _original_vector(original, 341), atol=1e-5)
