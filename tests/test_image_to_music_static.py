"""MusicGen with a static KV cache (the CUDA path, forced here on the CPU in fp32): the same tokens as the
dynamic cache, no host read of its own per generated token, and the model left as it was."""

import numpy as np
import pytest
import torch

from core.errors import StudioError
from pipelines.models import loaders
from pipelines.models.building import tiny
from pipelines.models.registry import ModelRegistry, load_or_explain
from pipelines.systems import image_to_music as i2m

Settings = i2m.ImageToMusicSettings


@pytest.fixture(scope="module")
def musicgen():
    bundle = load_or_explain(ModelRegistry("tiny", builder=tiny).resolve("musicgen"), loaders.load_musicgen)
    return bundle.model, bundle.processor


class Codes:
    """The audio codes each ``generate`` hands to EnCodec: the tokens, delay pattern undone."""

    def __init__(self, monkeypatch, model):
        self.codes = []
        decode = model.audio_encoder.decode

        def record(codes, *args, **kwargs):
            self.codes.append(codes.clone())
            return decode(codes, *args, **kwargs)

        monkeypatch.setattr(model.audio_encoder, "decode", record)

    def take(self) -> list:
        codes, self.codes = self.codes, []
        return codes


@pytest.mark.parametrize("seed, guidance", [(0, 3.0), (1, 1.0), (2, 5.0)])
def test_static_cache_gives_the_same_tokens_as_the_dynamic_one(musicgen, monkeypatch, seed, guidance):
    model, processor = musicgen
    codes = Codes(monkeypatch, model)
    settings = Settings(seconds=1.5, seed=seed, guidance=guidance)
    dynamic = i2m.generate_music(model, processor, "a calm lake at night", settings, static_cache=False)
    dynamic_codes = codes.take()
    static = i2m.generate_music(model, processor, "a calm lake at night", settings, static_cache=True)
    static_codes = codes.take()
    assert len(static_codes) == len(dynamic_codes) == 1
    assert static_codes[0].shape[-1] == 75  # 1.5 s of 50 frames
    torch.testing.assert_close(static_codes[0], dynamic_codes[0], rtol=0, atol=0)
    np.testing.assert_array_equal(static.audio, dynamic.audio)


def test_static_cache_same_tokens_in_windows_prompted_by_audio(musicgen, monkeypatch):
    """Continuations feed the last half second back as an audio prompt: a longer prefill into the same cache."""
    model, processor = musicgen
    monkeypatch.setattr(i2m, "WINDOW_SECONDS", 1.0)
    monkeypatch.setattr(i2m, "OVERLAP_SECONDS", 0.5)
    codes = Codes(monkeypatch, model)
    settings = Settings(seconds=2.0, seed=4)
    dynamic = i2m.generate_music(model, processor, "a long walk", settings, static_cache=False)
    dynamic_codes = codes.take()
    static = i2m.generate_music(model, processor, "a long walk", settings, static_cache=True)
    static_codes = codes.take()
    assert static.parameters["windows"] == dynamic.parameters["windows"] == 3
    assert [c.shape for c in static_codes] == [c.shape for c in dynamic_codes]
    for ours, theirs in zip(static_codes, dynamic_codes):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    np.testing.assert_array_equal(static.audio, dynamic.audio)


def test_a_static_cache_passed_straight_to_generate_changes_the_tokens(musicgen):
    """Why _StaticDecoding exists (transformers 5.23): generate() runs an unused prefill before _sample's
    own, and a cache passed in keeps the start token of both; the logits differ from the first step. If
    this starts failing, transformers fixed it, and the prefill reset can go."""
    from transformers import DynamicCache, EncoderDecoderCache, StaticCache

    model, processor = musicgen
    inputs = processor(text=["a calm lake"], padding=True, return_tensors="pt")
    runs = []
    static = EncoderDecoderCache(StaticCache(config=model.decoder.config, max_cache_len=64), DynamicCache())
    for cache in (None, static):
        torch.manual_seed(0)
        extra = {} if cache is None else {"past_key_values": cache}
        with torch.inference_mode():
            runs.append(model.generate(**inputs, max_new_tokens=20, do_sample=True, guidance_scale=3.0,
                                       output_logits=True, return_dict_in_generate=True, **extra).logits)
    first_step = (runs[0][0] - runs[1][0]).abs().max().item()
    assert first_step > 1e-3, "a hand-made static cache now matches from the first step"


def host_reads_per_token(model, run) -> float:
    """Tensor -> host reads (each a GPU sync on CUDA) between the first decoder forward and the audio decode,
    per generated token."""
    state = {"armed": False, "reads": 0, "forwards": 0}
    with pytest.MonkeyPatch.context() as patch:
        for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__"):
            original = getattr(torch.Tensor, name)

            def read(tensor, *args, _original=original, **kwargs):
                state["reads"] += state["armed"]
                return _original(tensor, *args, **kwargs)

            patch.setattr(torch.Tensor, name, read)
        forward, decode = model.decoder.forward, model.audio_encoder.decode

        def arm(*args, **kwargs):
            state["armed"], state["forwards"] = True, state["forwards"] + 1
            return forward(*args, **kwargs)

        def disarm(*args, **kwargs):
            state["armed"] = False
            return decode(*args, **kwargs)

        patch.setattr(model.decoder, "forward", arm)
        patch.setattr(model.audio_encoder, "decode", disarm)
        run()
    tokens = state["forwards"] - 1  # generate() runs two prefills, then one forward per token after the first
    return state["reads"] / tokens


def test_no_host_read_of_ours_per_token_with_the_static_cache(musicgen, capsys):
    """With the static cache, MusicGen's positions would read the cache length on the host every step;
    ours do not, so the static path reads no more than the dynamic one: transformers' own stopping flag
    and (in eager mode only: skipped while compiling) its encoder-mask check, 2 per token."""
    model, processor = musicgen
    settings = Settings(seconds=1.0, seed=0, guidance=3.0)
    per_token = {}
    for static in (False, True):
        per_token[static] = host_reads_per_token(
            model, lambda: i2m.generate_music(model, processor, "rain", settings, static_cache=static))
    with capsys.disabled():
        print(f"\n[host reads per generated token] dynamic {per_token[False]:.2f}, static {per_token[True]:.2f}")
    assert per_token[True] <= per_token[False] <= 2.05


def test_static_decoding_leaves_the_model_as_it_was_and_reuses_its_cache(musicgen, monkeypatch):
    model, processor = musicgen
    positions = model.decoder.model.decoder.embed_positions
    i2m.generate_music(model, processor, "rain", Settings(seconds=1.0), static_cache=True)
    cache = i2m._static_caches[model][1]
    assert "_prefill" not in vars(model) and "forward" not in vars(positions)
    i2m.generate_music(model, processor, "wind", Settings(seconds=1.0, seed=2), static_cache=True)
    assert i2m._static_caches[model][1] is cache  # same buffers: a compiled step keeps its graph
    assert cache.layers[0].max_cache_len == i2m.static_cache_length(30 * 50, model.decoder.num_codebooks - 1)

    calls = []
    with pytest.raises(i2m.Cancelled):
        i2m.generate_music(model, processor, "rain", Settings(seconds=2.0), static_cache=True,
                           should_stop=lambda: calls.append(1) or len(calls) > 3)
    assert "_prefill" not in vars(model) and "forward" not in vars(positions)
    assert not i2m._static_lock.locked()


def test_static_cache_length_holds_a_whole_window():
    assert i2m.static_cache_length(1500, 3) == 1536  # musicgen-small: 30 s windows, 4 codebooks
    assert i2m.static_cache_length(100, 3) == i2m.STATIC_CACHE_BLOCK
    assert i2m.static_cache_length(1532, 3) == 1536 and i2m.static_cache_length(1533, 3) == 1792


def test_a_static_cache_too_short_is_refused(musicgen):
    model, processor = musicgen
    inputs = processor(text=["rain"], padding=True, return_tensors="pt")
    with pytest.raises(ValueError, match="cannot hold"):
        i2m._StaticDecoding(model, inputs, max_new_tokens=300, sampling={}, length=256)


def test_static_cache_is_opt_in_and_then_on_where_the_unets_compile(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    monkeypatch.delenv("STUDIO_COMPILE", raising=False)
    monkeypatch.delenv(i2m.STATIC_CACHE_ENV, raising=False)
    assert not i2m.static_cache_wanted("cuda"), "off until a GPU run has measured it"
    monkeypatch.setenv(i2m.STATIC_CACHE_ENV, "1")
    assert i2m.static_cache_wanted("cuda") and i2m.static_cache_wanted(torch.device("cuda", 0))
    assert not i2m.static_cache_wanted("cpu")
    monkeypatch.setenv("STUDIO_COMPILE", "0")
    assert not i2m.static_cache_wanted("cuda")
    monkeypatch.setenv("STUDIO_COMPILE", "1")
    assert not i2m.static_cache_wanted("cpu"), "never on the CPU unless a caller forces it"
    monkeypatch.setenv(i2m.STATIC_CACHE_ENV, "yes")
    with pytest.raises(StudioError, match="STUDIO_MUSICGEN_STATIC_CACHE must be 0 or 1"):
        i2m.static_cache_wanted("cuda")


def test_a_failing_static_cache_falls_back_to_the_dynamic_one_for_good(musicgen, monkeypatch, caplog):
    model, processor = musicgen
    settings = Settings(seconds=1.0, seed=3)
    expected = i2m.generate_music(model, processor, "rain on a tin roof", settings, static_cache=False).audio
    tried = []

    def broken_enter(self):
        tried.append(1)
        raise RuntimeError("inductor could not compile this card's kernel")

    monkeypatch.setattr(i2m._StaticDecoding, "_enter", broken_enter)
    try:
        with caplog.at_level("WARNING"):
            first = i2m.generate_music(model, processor, "rain on a tin roof", settings, static_cache=True).audio
            again = i2m.generate_music(model, processor, "rain on a tin roof", settings, static_cache=True).audio
        assert len(tried) == 1, "a model whose static decoding failed is not tried again"
        assert "decoding with the dynamic cache from now on" in caplog.text
        # the failure came before any draw: both are the dynamic cache's music for the seed
        np.testing.assert_array_equal(first, expected)
        np.testing.assert_array_equal(again, expected)
        assert not i2m._static_lock.locked()
    finally:
        i2m._static_failed.discard(model)


def test_the_static_decoder_step_compiles_as_one_graph(musicgen):
    """What CUDA graphs need: transformers' compiled decoder step traces with fullgraph=True (no graph break,
    so no host read inside it) and gives the same audio. Dynamo's eager backend stands in for inductor here
    (CPU); without our positions (MusicGen's read the cache length on the host) the trace breaks."""
    from transformers.generation.configuration_utils import CompileConfig

    model, processor = musicgen
    inputs = processor(text=["a calm lake"], padding=True, return_tensors="pt")
    config = CompileConfig(fullgraph=True, backend="eager", mode=None)
    config._compile_all_devices = True  # transformers compiles on CUDA only unless told so
    sampling = dict(do_sample=True, guidance_scale=3.0, top_k=250)
    audio = []
    try:
        for compiled in (False, True):
            torch.manual_seed(0)
            with torch.inference_mode(), i2m._StaticDecoding(model, inputs, 30, sampling, 256) as cache:
                options = {"compile_config": config} if compiled else {"disable_compile": True}
                audio.append(model.generate(**inputs, max_new_tokens=30, past_key_values=cache, **sampling, **options))
        assert "_compiled_call" in vars(model), "transformers did not compile the step"
    finally:
        vars(model).pop("_compiled_call", None)
        torch._dynamo.reset()
    torch.testing.assert_close(audio[1], audio[0], rtol=0, atol=0)
