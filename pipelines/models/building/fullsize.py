"""Full-size models of every role, built once on this machine from the real repositories' configurations.

Random weights at the real sizes give the real shapes, memory and compute, offline: ``--profile
fullsize`` loads them through exactly the loaders of ``pipelines/models/loaders.py`` that a Space runs on
the Hub repos, so the real layouts' surprises (``../shared/reference/hub/README.md``) are exercised:

- riffusion (also the mask model's stand-in: same SD 1.x architecture): ``.bin`` weights only, the
  verbatim VAE config without ``scaling_factor``, the verbatim PNDM scheduler config;
- SD 1.5: ``.safetensors`` and ``variant="fp16"`` files side by side, the verbatim PNDM scheduler config (with
  ``clip_sample: false``), text encoder and tokenizer configs;
- AMUSE: the verbatim ``model_index.json`` naming a ``DDPMPipeline`` around a ``UNet2DConditionModel``,
  with ``unet/`` and ``scheduler/`` only;
- MusicGen: the transformers weights with audiocraft's ``state_dict.bin`` / ``compression_state_dict.bin``
  beside them (small stand-ins: only their presence matters to a loader);
- CLAP: ``pytorch_model.bin`` only.

The configurations come from ``fullsize_configs.json`` (a copy of ``../shared/reference/hub``'s files,
so the builder also works where ``../shared`` is absent, e.g. a lent GPU machine); roles whose config
was never captured are reconstructed from the published architecture here, each saying from what
(``fullsize_specs.FAMILIES``, summarised in the README's fullsize table). Parts a loader never reads are not built
(safety checker, ``unet_traced/``, single-file ``.ckpt``, duplicate ``.bin`` beside ``.safetensors``).

``ensure(family)`` builds into ``$STUDIO_CACHE/fullsize/<family>-v<N>`` with ``model_building``'s
build-once cache (lock, temporary folder, rename). Building everything writes 16 GB and took 94 s on 2 quiet CPU cores (peak
RSS 4.7 GB); ``STUDIO_FULLSIZE_DEVICE=cuda`` initialises the weights on a GPU instead.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.models.lora import LORA_FILE
from pipelines.models.building import common as model_building
from pipelines.models.building.fullsize_specs import (ALPPO, RIFFUSION, SD15, amuse_unet, amuse_vae, blip_model, clip_text_encoder,
                             clap_model, config, musicgen_melody_model, musicgen_model, sd_unet, sd_vae, sentence_model, style_module)


FAMILIES = model_building.ModelFamilies("fullsize")
BUILDERS = FAMILIES.builders
builder, has, ensure, is_built = FAMILIES.builder, FAMILIES.has, FAMILIES.ensure, FAMILIES.is_built
# Which family each role uses here is the role's own (``roles.Role.fullsize_family``): the three SD
# roles share the tiny "sd" family but not a real layout.


def _write_json(path: Path, data: Any) -> None:
    """Overwrite a config as the repo has it (``save_pretrained`` adds every default key, which would
    hide the surprises: riffusion's VAE config must stay without ``scaling_factor``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def save_bin(model: Any, target: Path) -> None:
    """The model's config and its weights as a pickled ``.bin``, as repos made before safetensors
    have them (transformers 5 only writes safetensors itself; one write, no conversion)."""
    import torch
    from diffusers import ModelMixin

    if isinstance(model, ModelMixin):
        model.save_pretrained(target, safe_serialization=False)  # diffusion_pytorch_model.bin
        return
    target.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(target)
    torch.save(model.state_dict(), target / "pytorch_model.bin")


def _init_device() -> str:
    """Where random weights are initialised: ``STUDIO_FULLSIZE_DEVICE`` (e.g. cuda), else the CPU."""
    return os.environ.get("STUDIO_FULLSIZE_DEVICE", "cpu")


def _make(factory: Callable[[], Any]) -> Any:
    """``factory()`` with its weights initialised on ``_init_device()``, returned on the CPU."""
    import torch

    device = _init_device()
    if device == "cpu":
        return factory()
    with torch.device(device):
        model = factory()
    return model.to("cpu")


# -- tokenizers at the real vocabulary sizes, without downloads ---------------------------------------
def clip_tokenizer(target: Path, vocab_size: int = 49408) -> None:
    """CLIP's byte-level BPE with no merges (every byte a token, as ``tiny.write_clip_tokenizer``),
    padded with unreachable tokens to CLIP's 49408 so the specials sit at their real ids 49406/49407;
    the tokenizer_config is SD 1.5's verbatim one."""
    from transformers import CLIPTokenizer

    chars = model_building.byte_level_alphabet()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    while len(vocab) < vocab_size - 2:
        vocab[f"<|unused{len(vocab)}|>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    target.mkdir(parents=True, exist_ok=True)
    (target / "vocab.json").write_text(json.dumps(vocab))
    (target / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(target / "vocab.json"), str(target / "merges.txt"), model_max_length=77).save_pretrained(target)
    _write_json(target / "tokenizer_config.json", config(SD15, "tokenizer/tokenizer_config.json"))


def roberta_tokenizer(target: Path, vocab_size: int = 50265, max_length: int = 512) -> None:
    """RoBERTa's byte-level BPE (specials at 0-3, ``<mask>`` last), no merges, padded to 50265."""
    from transformers import RobertaTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for c in model_building.byte_level_alphabet():
        vocab[c] = len(vocab)
    while len(vocab) < vocab_size - 1:
        vocab[f"<unused{len(vocab)}>"] = len(vocab)
    vocab["<mask>"] = len(vocab)
    RobertaTokenizer(vocab=vocab, merges=[], model_max_length=max_length).save_pretrained(target)


# -- builders -----------------------------------------------------------------------------------------
def _build_sd(target: Path, repo: str, *, safetensors: bool, fp16_variant: bool) -> None:
    """A StableDiffusionPipeline folder in ``repo``'s layout: the components' weights, then the repo's
    own config files written over diffusers' re-saves. No safety checker (the loader passes None)."""
    import torch

    parts = {"unet": _make(lambda: sd_unet(repo)), "vae": _make(lambda: sd_vae(repo)),
             "text_encoder": _make(clip_text_encoder)}
    for name, model in parts.items():
        if safetensors:
            model.save_pretrained(target / name)
        else:
            save_bin(model, target / name)
        if fp16_variant:
            model.to(torch.float16).save_pretrained(target / name, variant="fp16")
        del model
    parts.clear()
    clip_tokenizer(target / "tokenizer")
    for path in ("model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "vae/config.json"):
        _write_json(target / path, config(repo, path))
    _write_json(target / "text_encoder/config.json", config(SD15, "text_encoder/config.json"))
    _write_json(target / "feature_extractor/preprocessor_config.json",
                config(SD15, "feature_extractor/preprocessor_config.json"))  # riffusion's is the same size


@builder("riffusion", version=1)
def build_riffusion(target: Path) -> None:
    """riffusion/riffusion-model-v1: ``.bin`` only, VAE without ``scaling_factor``, PNDM scheduler."""
    _build_sd(target, RIFFUSION, safetensors=False, fp16_variant=False)


@builder("sd15", version=1)
def build_sd15(target: Path) -> None:
    """stable-diffusion-v1-5: fp32 ``.safetensors`` and ``*.fp16.safetensors`` variants side by side."""
    _build_sd(target, SD15, safetensors=True, fp16_variant=True)


@builder("lora", version=1)
def build_lora(target: Path) -> None:
    """A random rank-4 LoRA with the TechJam file's exact key set (``unet.<layer>.lora.down.weight``,
    128 pairs over SD 1.5's attention projections); up weights nonzero so it changes the output."""
    import torch
    from diffusers.models.attention_processor import Attention
    from safetensors.torch import save_file

    with torch.device("meta"):
        unet = sd_unet()
    state = {}
    for name, module in unet.named_modules():
        if isinstance(module, Attention):
            for proj, linear in (("to_q", module.to_q), ("to_k", module.to_k), ("to_v", module.to_v),
                                 ("to_out.0", module.to_out[0])):
                state[f"unet.{name}.{proj}.lora.down.weight"] = torch.randn(4, linear.in_features) / 4
                state[f"unet.{name}.{proj}.lora.up.weight"] = torch.randn(linear.out_features, 4) * 0.01
    target.mkdir(parents=True, exist_ok=True)
    save_file(state, str(target / LORA_FILE), metadata={"format": "pt"})


def _bert_vocab(size: int = 30522) -> list[str]:
    """BERT-base-uncased's special ids ([PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103) around
    the tiny builder's spellable words and characters, padded with [unused] tokens to 30522."""
    vocab = ["[PAD]", *[f"[unused{i}]" for i in range(99)], "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [t for t in model_building.bert_wordpiece_vocab() if t not in vocab]
    vocab += [f"[unused{i}]" for i in range(99, 99 + size - len(vocab))]
    return vocab


@builder("blip", version=1)
def build_blip(target: Path) -> None:
    """BlipForConditionalGeneration large + BlipProcessor (BERT tokenizer with [DEC] bos and [ENC])."""
    from transformers import BertTokenizer, BlipImageProcessor, BlipProcessor

    _make(blip_model).save_pretrained(target, safe_serialization=True)
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(_bert_vocab())}, do_lower_case=True,
                              model_max_length=512)
    tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    processor = BlipImageProcessor(**config("Salesforce--blip-image-captioning-large", "preprocessor_config.json"))
    BlipProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(target)
    _write_json(target / "preprocessor_config.json",
                config("Salesforce--blip-image-captioning-large", "preprocessor_config.json"))


def _t5_tokenizer() -> Any:
    """t5-base's tokenizer shape: 32000 pieces + 100 sentinels (offline vocabulary, unused pieces padded)."""
    from transformers import T5Tokenizer

    pieces = model_building.t5_unigram_vocab()
    words, extras = pieces[:-100], pieces[-100:]
    words += [(f"▁unused{i}", -20.0) for i in range(32000 - len(words))]
    return T5Tokenizer(vocab=words + extras, extra_ids=100, model_max_length=512)


@builder("musicgen", version=1)
def build_musicgen(target: Path) -> None:
    """musicgen-small: transformers files + audiocraft's two files beside them (small stand-ins)."""
    import torch
    from transformers import EncodecFeatureExtractor, GenerationConfig, MusicgenProcessor

    model = _make(musicgen_model)
    model_building.spread_encodec_codebooks(model)
    model.generation_config = GenerationConfig(**config("facebook--musicgen-small", "generation_config.json"))
    model.save_pretrained(target, safe_serialization=True)
    del model
    tokenizer = _t5_tokenizer()
    extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=32000, padding_value=0.0)
    MusicgenProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(target)
    _write_json(target / "generation_config.json", config("facebook--musicgen-small", "generation_config.json"))
    _write_json(target / "preprocessor_config.json", config("facebook--musicgen-small", "preprocessor_config.json"))
    for name in ("state_dict.bin", "compression_state_dict.bin"):  # audiocraft's format; a loader must ignore them
        torch.save({"xp.cfg": {}, "best_state": {}, "note": "fullsize stand-in for audiocraft's file"}, target / name)


@builder("musicgen_melody", version=1)
def build_musicgen_melody(target: Path) -> None:
    """musicgen-melody: two safetensors shards and their index, T5 tokenizer, the chroma settings."""

    model = _make(musicgen_melody_model)
    model_building.spread_encodec_codebooks(model)
    model.generation_config.update(**config("facebook--musicgen-small", "generation_config.json"))
    model.save_pretrained(target, safe_serialization=True, max_shard_size="5GB")
    del model
    _t5_tokenizer().save_pretrained(target)
    model_building.write_melody_preprocessor_config(target)


@builder("clap", version=1)
def build_clap(target: Path) -> None:
    """laion/clap-htsat-unfused: ``pytorch_model.bin`` only, RoBERTa tokenizer, ClapProcessor."""
    from transformers import ClapFeatureExtractor, ClapProcessor, RobertaTokenizer

    save_bin(_make(clap_model), target)
    roberta_tokenizer(target / "_tokenizer")
    tokenizer = RobertaTokenizer.from_pretrained(target / "_tokenizer")
    shutil.rmtree(target / "_tokenizer")
    extractor = ClapFeatureExtractor(**config("laion--clap-htsat-unfused", "preprocessor_config.json"))
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(target)
    _write_json(target / "preprocessor_config.json", config("laion--clap-htsat-unfused", "preprocessor_config.json"))


@builder("sentence", version=1)
def build_sentence(target: Path) -> None:
    """all-distilroberta-v1: the Transformer at the root, 1_Pooling/, modules.json (Normalize has no folder)."""
    repo = "sentence-transformers--all-distilroberta-v1"
    _make(sentence_model).save_pretrained(target, safe_serialization=True)
    roberta_tokenizer(target)
    for path in ("config.json", "modules.json", "config_sentence_transformers.json"):
        _write_json(target / path, config(repo, path))
    _write_json(target / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    _write_json(target / "1_Pooling" / "config.json", {
        "word_embedding_dimension": 768, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False})


@builder("amuse_unet", version=1)
def build_amuse_unet(target: Path) -> None:
    """alppo's layout: model_index.json (DDPMPipeline!), unet/ (UNet2DConditionModel, safetensors), scheduler/."""
    _make(amuse_unet).save_pretrained(target / "unet", safe_serialization=True)
    _write_json(target / "model_index.json", config(ALPPO, "model_index.json"))
    _write_json(target / "scheduler" / "scheduler_config.json", config(ALPPO, "scheduler/scheduler_config.json"))


@builder("amuse_vae", version=1)
def build_amuse_vae(target: Path) -> None:
    _make(amuse_vae).save_pretrained(target, safe_serialization=True)


@builder("music_styles", version=1)
def build_music_styles(target: Path) -> None:
    """Three random full-width MusicTI styles, as ``style_embedding.save_style`` writes them."""
    from pipelines.models.style_embedding import save_style

    for name in ("jazz", "rock", "ambient"):
        save_style(_make(style_module), target / name, name, extra={"source": "fullsize random weights"})


def _keras_classifier(module, target: Path, seed: int) -> None:
    """A TechJam CNN at the original's widths (``module.build_model()``), saved as the original .h5."""
    model = module.build_model()
    model_building.randomize_keras(model, seed=seed)
    target.mkdir(parents=True, exist_ok=True)
    model_building.save_keras_like_original(model, target / module.WEIGHTS_FILE)


@builder("keras_genre", version=1)
def build_keras_genre(target: Path) -> None:
    from classifiers import genre

    _keras_classifier(genre, target, seed=1)


@builder("keras_emotion", version=1)
def build_keras_emotion(target: Path) -> None:
    from classifiers import emotion

    _keras_classifier(emotion, target, seed=2)


def build_all(families: list[str] | None = None, log: Callable[[str], None] = print) -> dict[str, float]:
    """Build every family not built yet (or ``families``); returns seconds per family built."""
    import time

    seconds = {}
    for family in families or list(BUILDERS):
        if is_built(family):
            continue
        start = time.perf_counter()
        log(f"building fullsize {family} ...")
        ensure(family)
        seconds[family] = time.perf_counter() - start
        log(f"built fullsize {family} in {seconds[family]:.1f} s")
    return seconds


if __name__ == "__main__":  # python -m pipelines.models.building.fullsize [family ...]: build the cache ahead of time
    import sys

    build_all(sys.argv[1:] or None)
