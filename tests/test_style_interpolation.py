"""Style interpolation (MusicTI): the style network, style files, mixing, the pipeline.

The embeddings.pt converter is tested in test_convert_musicti.py."""

import math

import numpy as np
import pytest
import torch

from pipelines.models import style_embedding as se
from pipelines.systems import style_interpolation as si
from pipelines.models.building import tiny
from pipelines.schema.settings import StyleInterpolationSettings as Settings
from core.errors import Cancelled, InputError

SR = 44100


# -- shared fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipe(studio):
    return studio.manager.get_cpu("riffusion")


@pytest.fixture(scope="module")
def library():
    return se.StyleLibrary(tiny.ensure("music_styles"))


@pytest.fixture(scope="module")
def content():
    rng = np.random.default_rng(0)
    t = np.arange(int(3.0 * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def ldm_timestep_embedding(t, dim):
    """LDM's formula, written out independently: [cos(t f_i), sin(t f_i)], f_i = 10000^(-i/half)."""
    half = dim // 2
    freqs = torch.tensor([10000.0 ** (-i / half) for i in range(half)])
    args = torch.tensor([float(t)])[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


# -- the style network -----------------------------------------------------------------------------------


def test_real_size_style_embedding_has_musicti_parameter_count():
    module = se.StyleEmbedding()  # width 768, inner 3072, 8 heads of 64
    trainable = sum(p.numel() for p in module.parameters())
    expected = (768 * 3072 + 3072) + (3072 * 3072 + 3072) + (3072 * 768 + 768)  # time_embed + emb_layers
    expected += 2 * (3 * 768 * 512 + 512 * 768 + 768) + (768 * 768 + 768)  # attn1, attn2, net
    assert trainable == expected == 17_900_544
    assert module.initial_embedding.shape == (1, 768) and not module.initial_embedding.requires_grad
    assert abs(trainable - 17.9e6) < 0.05e6
    assert module(981).shape == (1, 768)


def test_timestep_embedding_is_ldms():
    for t in (0, 1, 681, 999):
        assert torch.allclose(se.timestep_embedding(torch.tensor([t]), 32), ldm_timestep_embedding(t, 32), atol=1e-5)


def test_style_embedding_is_deterministic_in_eval_and_varies_with_t(library):
    module = library.get(["jazz"])[0].module
    assert not module.training  # dropout off
    assert torch.equal(module(500), module(500))
    assert not torch.allclose(module(100), module(900))


# -- style files -------------------------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_vectors(tmp_path):
    torch.manual_seed(3)
    module = se.StyleEmbedding(width=32, inner=128, heads=2, head_dim=16, initial_embedding=torch.randn(1, 32))
    se.save_style(module, tmp_path / "violin", "violin")
    style = se.load_style(tmp_path / "violin")
    assert style.name == "violin" and style.placeholder == "*"
    assert style.info["width"] == 32 and style.info["inner"] == 128
    t = torch.tensor([1, 341, 681, 999])
    assert torch.equal(style.module(t), module(t))
    assert se.list_styles(tmp_path) == ["violin"]


def test_load_style_refuses_a_folder_that_is_not_a_style(tmp_path):
    with pytest.raises(InputError, match="not a style folder"):
        se.load_style(tmp_path)
    se.save_style(se.StyleEmbedding(width=8, inner=16, heads=1, head_dim=8), tmp_path / "s", "s")
    (tmp_path / "s" / "style.json").write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="could not be read"):
        se.load_style(tmp_path / "s")


def test_library_only_serves_listed_styles(library):
    assert library.names() == ["ambient", "jazz", "rock"]
    for bad in (["blues"], ["../music_styles-v1/jazz"], ["jazz", "/etc"]):
        with pytest.raises(InputError, match="Unknown style"):
            library.get(bad)


def test_tiny_styles_fit_the_tiny_text_encoder_and_differ(pipe, library, tmp_path):
    styles = library.get(["jazz", "rock", "ambient"])
    assert all(s.module.width == pipe.text_encoder.config.hidden_size == 32 for s in styles)
    vectors = [s.module(500) for s in styles]
    assert not torch.allclose(vectors[0], vectors[1]) and not torch.allclose(vectors[1], vectors[2])
    tiny.BUILDERS["music_styles"](tmp_path / "again")  # seeded: a rebuild gives the same weights
    assert torch.equal(se.load_style(tmp_path / "again" / "rock").module(500), vectors[1])


# -- mixing and conditioning ------------------------------------------------------------------------------


def test_placeholder_is_one_token_at_one_position(pipe, library):
    conditioner = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, library.get(["jazz"]))
    assert int(conditioner.placeholder_mask.sum()) == 1
    assert conditioner.prompt_ids.shape == (1, pipe.tokenizer.model_max_length)


def test_weights_one_zero_equal_the_single_style(pipe, library):
    jazz, rock = library.get(["jazz", "rock"])
    single = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, [jazz])
    mixed = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, [jazz, rock], weights=[1.0, 0.0])
    assert torch.allclose(mixed(500), single(500), atol=1e-6)
    other = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, [rock])
    assert not torch.allclose(other(500), single(500), atol=1e-3)


def test_half_half_is_the_average_of_the_two_sequences(pipe, library):
    jazz, rock = library.get(["jazz", "rock"])
    e_jazz = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, [jazz]).token_embeddings(681)
    e_rock = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, [rock]).token_embeddings(681)
    for weights in ([0.5, 0.5], [3.0, 3.0], None):  # normalised; None means equal
        mixed = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, [jazz, rock], weights=weights)
        assert torch.allclose(mixed.token_embeddings(681), (e_jazz + e_rock) / 2, atol=1e-6)
    quarter = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, [jazz, rock], weights=[1, 3]).token_embeddings(681)
    assert torch.allclose(quarter, 0.25 * e_jazz + 0.75 * e_rock, atol=1e-6)
    # only the placeholder position differs between the two styles' sequences
    differs = (e_jazz - e_rock).abs().sum(-1) > 0
    assert torch.equal(differs, si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, [jazz]).placeholder_mask)


def test_mixing_happens_before_the_text_encoder(pipe, library):
    jazz, rock = library.get(["jazz", "rock"])
    mixed = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, [jazz, rock], weights=[0.5, 0.5])
    c_jazz = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, [jazz])(681)
    c_rock = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, [rock])(681)
    # CLIP is not linear: mixing outputs would give a different c_t
    assert not torch.allclose(mixed(681), (c_jazz + c_rock) / 2, atol=1e-4)
    with torch.no_grad():
        expected = si.encode_with_token_embeddings(pipe.text_encoder, mixed.prompt_ids, mixed.token_embeddings(681))
    assert torch.allclose(mixed(681), expected)


def test_encoding_with_plain_token_embeddings_is_clips_own_output(pipe):
    te = pipe.text_encoder
    ids = pipe.tokenizer("*", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        plain = te(ids)[0]
        same = si.encode_with_token_embeddings(te, ids, te.get_input_embeddings()(ids))
        noise = torch.randn(ids.shape + (te.config.hidden_size,), generator=torch.Generator().manual_seed(0))
        shifted = si.encode_with_token_embeddings(te, ids, te.get_input_embeddings()(ids) + noise)
        after = te(ids)[0]
    assert torch.allclose(same, plain, atol=1e-6)
    assert not torch.allclose(shifted, plain, atol=1e-3)  # the replacement really reaches CLIP
    assert torch.equal(after, plain)  # and the hook is gone afterwards


def test_unconditional_embedding_is_unaffected(pipe, library):
    ids = pipe.tokenizer("", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        plain = pipe.text_encoder(ids)[0]
    for names, weights in ((["jazz"], None), (["jazz", "rock"], [0.2, 0.8]), (["ambient", "rock", "jazz"], None)):
        conditioner = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, library.get(names), weights)
        conditioner(500)
        assert torch.equal(conditioner.unconditional, plain)


def test_conditioning_changes_with_t(pipe, library):
    conditioner = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, library.get(["jazz", "rock"]))
    assert not torch.allclose(conditioner(101), conditioner(881), atol=1e-4)
    assert torch.equal(conditioner(101), conditioner(101))


def test_conditioning_for_given_timesteps_is_one_batched_text_encoder_call_equal_to_one_at_a_time(pipe, library):
    """The request's c_t for every timestep and the unconditional embedding come from ONE text-encoder
    call (a batch of 1 + T rows) and equal what one call per timestep gives, within float rounding."""
    styles, weights = library.get(["jazz", "rock"]), [0.3, 0.7]
    calls = []
    handle = pipe.text_encoder.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        batched = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, styles, weights, timesteps=[700, 681, 661, 681])
        assert calls == [1 + 3], "one call: the unconditional row and each distinct timestep once"
        lazy = si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, styles, weights)
        for t in (700, 681, 661):
            torch.testing.assert_close(batched(t), lazy(t), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batched.unconditional, lazy.unconditional, atol=1e-5, rtol=1e-5)
        assert batched.encoder_calls == 1 and lazy.encoder_calls == 1 + 3  # the lazy one: "" then one per t
        calls.clear()
        batched(681)
        assert calls == [], "a precomputed timestep costs no call"
        batched(500)
        assert calls == [1] and batched.encoder_calls == 2  # one not given up front: encoded once, kept
    finally:
        handle.remove()
    assert not torch.allclose(batched(700), batched(661), atol=1e-4)


@pytest.mark.slow
def test_a_request_encodes_text_once_and_gives_the_music_of_per_step_encoding(pipe, library, monkeypatch):
    """Two windows, 4 DDIM steps: one text-encoder call for the whole request (was one per step per
    window), and the same spectrogram as encoding per step (within one 8-bit level)."""
    long = np.random.default_rng(1).standard_normal(int(7.3 * SR)).astype(np.float32) * 0.1
    styles, settings = library.get(["jazz", "rock"]), Settings(strength=0.7, steps=6)
    calls = []
    handle = pipe.text_encoder.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        once = si.apply_styles(pipe, long, styles, [0.3, 0.7], settings=settings)
        assert calls == [1 + 1 + 4] and once.parameters["text_encoder_calls"] == 1
        assert once.parameters["windows"] == 2
        calls.clear()
        original = si.StyleConditioner.__init__
        monkeypatch.setattr(si.StyleConditioner, "__init__",
                            lambda self, *a, timesteps=(), **k: original(self, *a, **k))  # the old per-step way
        per_step = si.apply_styles(pipe, long, styles, [0.3, 0.7], settings=settings)
        assert len(calls) == 1 + 5 and per_step.parameters["text_encoder_calls"] == 6
    finally:
        handle.remove()
    difference = np.abs(np.asarray(once.output_spectrogram, dtype=int) - np.asarray(per_step.output_spectrogram, dtype=int))
    assert difference.max() <= 1
    assert np.mean(np.abs(once.audio - per_step.audio)) < 1e-3


def test_a_style_of_another_width_is_refused(pipe):
    wide = se.Style("wide", se.StyleEmbedding(width=16, inner=32, heads=1, head_dim=16))
    with pytest.raises(InputError, match="width 16"):
        si.StyleConditioner(pipe.tokenizer, pipe.text_encoder, [wide])


# -- the pipeline --------------------------------------------------------------------------------------------


class UNetCalls:
    """Records every UNet call's timestep, batch size and conditioning."""

    def __init__(self, unet):
        self.calls = []
        self.handle = unet.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs):
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        self.calls.append((int(t), args[0].shape[0], kwargs["encoder_hidden_states"].clone()))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.slow
def test_ddim_timesteps_and_conditioning_actually_run(pipe, library, content):
    with UNetCalls(pipe.unet) as recorder:
        result = si.apply_styles(pipe, content, library.get(["jazz", "rock"]), weights=[0.5, 0.5],
                                 settings=Settings(strength=0.7, steps=50))
    timesteps = [t for t, _, _ in recorder.calls]
    assert timesteps[0] == 700  # the one-step inversion at int(0.7 * 1000)
    assert timesteps[1:] == list(range(681, 0, -20))  # the DDIM schedule 981, 961, ... entered at 681
    assert len(timesteps) == 1 + 35
    assert recorder.calls[0][1] == 1 and all(b == 2 for _, b, _ in recorder.calls[1:])  # CFG after the inversion
    conds = [c for _, _, c in recorder.calls[1:]]
    assert torch.equal(conds[0][0], conds[-1][0])  # the unconditional half never changes
    assert not torch.allclose(conds[0][1], conds[-1][1], atol=1e-4)  # c_t changes per step
    assert result.parameters["timesteps"] == timesteps[1:]
    assert result.audio.shape == (1, content.size) and result.sample_rate == SR
    assert np.all(np.isfinite(result.audio)) and np.abs(result.audio).max() > 0
    assert result.content_spectrogram.size == result.output_spectrogram.size == (512, 512)


@pytest.mark.slow
def test_same_seed_same_audio_and_seed_and_weights_change_it(pipe, library, content):
    styles = library.get(["jazz", "rock"])
    base = si.apply_styles(pipe, content, styles, weights=[1, 0], settings=Settings(strength=0.5, steps=4, seed=1))
    again = si.apply_styles(pipe, content, styles, weights=[1, 0], settings=Settings(strength=0.5, steps=4, seed=1))
    np.testing.assert_array_equal(again.audio, base.audio)
    other_seed = si.apply_styles(pipe, content, styles, weights=[1, 0], settings=Settings(strength=0.5, steps=4, seed=2))
    other_mix = si.apply_styles(pipe, content, styles, weights=[0, 1], settings=Settings(strength=0.5, steps=4, seed=1))
    assert not np.array_equal(base.audio, other_seed.audio)
    assert not np.array_equal(np.asarray(base.output_spectrogram), np.asarray(other_mix.output_spectrogram))


@pytest.mark.slow
def test_long_audio_goes_window_by_window_and_keeps_its_length(pipe, library):
    long = np.random.default_rng(1).standard_normal(int(7.3 * SR)).astype(np.float32) * 0.1
    result = si.apply_styles(pipe, long, library.get(["ambient"]), settings=Settings(strength=0.5, steps=4))
    assert result.audio.shape == (1, long.size)
    assert result.parameters["windows"] == 2 and result.output_spectrogram.size == (1024, 512)


@pytest.mark.slow
def test_guidance_one_skips_the_unconditional_pass_and_strength_one_starts_at_the_top(pipe, library, content):
    with UNetCalls(pipe.unet) as recorder:
        si.apply_styles(pipe, content[: SR // 2], library.get(["jazz"]),
                        settings=Settings(strength=1.0, steps=5, guidance=1.0))
    assert [t for t, _, _ in recorder.calls] == [999, 801, 601, 401, 201, 1]
    assert all(b == 1 for _, b, _ in recorder.calls)


def test_should_stop_cancels(pipe, library, content):
    with UNetCalls(pipe.unet) as recorder, pytest.raises(Cancelled):
        si.apply_styles(pipe, content, library.get(["jazz"]), should_stop=lambda: True)
    assert len(recorder.calls) == 2  # the inversion and one step


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"weights": [1.0]}, "one weight per style"),
        ({"weights": [1.0, 1.0, 1.0]}, "one weight per style"),
        ({"weights": [1.0, -0.5]}, "Weight 2"),
        ({"weights": [0.0, 0.0]}, "above zero"),
        ({"weights": [1.0, float("nan")]}, "Weight 2"),
        ({"weights": "0.5,0.5"}, "list of numbers"),
        ({"strength": 0.0}, "above 0"),
        ({"strength": 1.5}, "Strength"),
        ({"strength": float("nan")}, "Strength"),
        ({"steps": 0}, "Steps"),
        ({"steps": 2.5}, "Steps"),
        ({"steps": 101}, "Steps"),
        ({"strength": 0.01, "steps": 10}, "10 step\\(s\\) leave none to run; use at least 100 steps"),
        ({"guidance": -1.0}, "Guidance"),
        ({"guidance": 25.0}, "Guidance"),
        ({"guidance": "5"}, "Guidance"),
        ({"seed": -1}, "Seed"),
        ({"seed": 2**32}, "Seed"),
        ({"seed": 1.5}, "Seed"),
    ],
)
def test_bad_arguments_raise_input_error(pipe, library, content, kwargs, message):
    with UNetCalls(pipe.unet) as recorder, pytest.raises(InputError, match=message):
        weights = kwargs.pop("weights", None)
        si.apply_styles(pipe, content, library.get(["jazz", "rock"]), weights=weights, settings=Settings(**kwargs))
    assert recorder.calls == []  # refused before any model work


def test_bad_style_lists_and_audio_raise_input_error(pipe, library, content):
    jazz = library.get(["jazz"])[0]
    with pytest.raises(InputError, match="1 to 4 styles"):
        si.apply_styles(pipe, content, [jazz] * 5)
    with pytest.raises(InputError, match="1 to 4 styles"):
        si.apply_styles(pipe, content, [])
    with pytest.raises(InputError, match="empty"):
        si.apply_styles(pipe, np.zeros(0, np.float32), [jazz])
    with pytest.raises(InputError, match="mono"):
        si.apply_styles(pipe, np.zeros((2, 1000), np.float32), [jazz])
    with pytest.raises(InputError, match="NaN"):
        si.apply_styles(pipe, np.full(1000, np.nan, np.float32), [jazz])
    with pytest.raises(InputError, match="longer than"):
        si.apply_styles(pipe, np.zeros(int(61 * SR), np.float32), [jazz])
    assert math.isclose(sum(si.normalized_weights([2, 6], 2)), 1.0)
