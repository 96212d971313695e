"""What the full-size models are: the real repositories' configurations, the architectures rebuilt
where a config was never captured, and the real weight-file sizes to check against.

``fullsize.py`` builds and caches the models from these definitions; ``benchmarks/fullsize.py`` and
the tests count their parameters on the meta device (``parameter_counts``) without building anything.
The configurations are read from ``fullsize_configs.json`` (a copy of ``../shared/reference/hub``'s
files, so this works where ``../shared`` is absent, e.g. on a lent GPU machine).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pipelines.models.roles import ROLES

CONFIG_FILE = Path(__file__).with_name("fullsize_configs.json")
SD15 = "stable-diffusion-v1-5--stable-diffusion-v1-5"
RIFFUSION = "riffusion--riffusion-model-v1"
ALPPO = "alppo--vae-conditioned-diffusion-model_v2"
TETICIO = "teticio--audio-diffusion-256"



# The real repositories' weight files, in bytes ({role: {part: bytes}}): each role's own
# ``real_sizes`` in the role table (``roles.ROLES``).
REAL_SIZES: dict[str, dict[str, int]] = {name: dict(role.real_sizes) for name, role in ROLES.items() if role.real_sizes}


# -- configurations ----------------------------------------------------------------------------------
@cache
def _configs() -> dict[str, Any]:
    return json.loads(CONFIG_FILE.read_text())


def config(repo: str, path: str) -> dict[str, Any]:
    """The captured ``path`` of ``repo`` (``OWNER--REPO`` as in ``../shared/reference/hub``), a fresh copy."""
    return json.loads(json.dumps(_configs()[repo][path]["content"]))


# -- model definitions (shared by the builders and the meta-device parameter counts) ------------------
def sd_unet(repo: str = SD15):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config(config(repo, "unet/config.json"))


def sd_vae(repo: str = SD15):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_config(config(repo, "vae/config.json"))


def clip_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**config(SD15, "text_encoder/config.json")))


def blip_config():
    """BLIP large from the manifest's key values (the full 4,596-byte config.json was not captured)."""
    from transformers import BlipConfig

    # untied LM head: the real files (1.88 GB = 469.8 M fp32 parameters) store it apart from the word
    # embeddings; tied, the model would be 446.3 M (1.79 GB)
    text = dict(vocab_size=30524, hidden_size=768, encoder_hidden_size=1024, intermediate_size=3072,
                num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=512, is_decoder=True,
                bos_token_id=30522, eos_token_id=2, pad_token_id=0, sep_token_id=102, tie_word_embeddings=False)
    vision = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                  image_size=384, patch_size=16, layer_norm_eps=1e-5)
    return BlipConfig(text_config=text, vision_config=vision, projection_dim=512, image_text_hidden_size=256,
                      tie_word_embeddings=False)


def blip_model():
    from transformers import BlipForConditionalGeneration

    return BlipForConditionalGeneration(blip_config())


def musicgen_config():
    """musicgen-small's published architecture (its 7,866-byte config.json was only partly captured)."""
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    text = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                    feed_forward_proj="relu", relative_attention_num_buckets=32)  # t5-base
    codec = EncodecConfig(  # facebook/encodec_32khz
        sampling_rate=32000, audio_channels=1, num_filters=64, hidden_size=128, upsampling_ratios=[8, 5, 4, 4],
        codebook_size=2048, target_bandwidths=[2.2], num_residual_layers=1, num_lstm_layers=2, compress=2,
        norm_type="weight_norm", use_causal_conv=False, normalize=False, chunk_length_s=None, overlap=None,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=2048, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096,
        num_codebooks=4, max_position_embeddings=2048, pad_token_id=2048, bos_token_id=2048,
        activation_function="gelu", tie_word_embeddings=False,
    )
    return MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=codec.to_dict(), decoder=decoder.to_dict())


def musicgen_model():
    from transformers import MusicgenForConditionalGeneration

    return MusicgenForConditionalGeneration(musicgen_config())


def musicgen_melody_model():
    """facebook/musicgen-melody (1.5B): musicgen-small's T5 and EnCodec, a 48-layer 1536-wide decoder
    (the published decoder config), 12 chroma classes over 235 frames (30 s)."""
    from transformers import MusicgenMelodyConfig, MusicgenMelodyDecoderConfig, MusicgenMelodyForConditionalGeneration

    small = musicgen_config()
    decoder = MusicgenMelodyDecoderConfig(
        vocab_size=2048, hidden_size=1536, num_hidden_layers=48, num_attention_heads=24, ffn_dim=6144,
        num_codebooks=4, max_position_embeddings=2048, pad_token_id=2048, bos_token_id=2048,
        activation_function="gelu", tie_word_embeddings=False,
    )
    config = MusicgenMelodyConfig(text_encoder=small.text_encoder.to_dict(), audio_encoder=small.audio_encoder.to_dict(),
                                  decoder=decoder.to_dict(), num_chroma=12, chroma_length=235)
    return MusicgenMelodyForConditionalGeneration(config)


def clap_model():
    from transformers import ClapConfig, ClapModel

    return ClapModel(ClapConfig())  # the defaults are laion/clap-htsat-unfused's architecture


def sentence_model():
    from transformers import RobertaConfig, RobertaModel

    # the repo's weights include the pooler (the loader leaves it out when it loads)
    return RobertaModel(RobertaConfig(**config("sentence-transformers--all-distilroberta-v1", "config.json")))


def amuse_unet_config() -> dict[str, Any]:
    """teticio/audio-diffusion-256's verbatim UNet2DModel config (AMUSE's base model), made conditional:
    its attention blocks become cross-attention blocks (also in the middle) over AMUSE's 64-d condition."""
    from pipelines.models.playlist_vae import CONDITION_DIM

    base = config(TETICIO, "unet/config.json")
    for key in ("_class_name", "_diffusers_version", "_name_or_path", "time_embedding_type"):
        base.pop(key, None)
    # Only the middle block attends to the condition: that is what the real file's size says. The
    # 472 MB safetensors hold 117.9 M fp32 parameters = teticio's 113.7 M plus one 512-wide transformer
    # block (+4.3 M) in place of the mid block's self-attention; cross-attention in the down/up
    # attention blocks too would give 139 M (557 MB).
    base.update(mid_block_type="UNetMidBlock2DCrossAttn", cross_attention_dim=CONDITION_DIM)
    return base


def amuse_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**amuse_unet_config())


def amuse_vae():
    from pipelines.models.playlist_vae import PlaylistVAE

    return PlaylistVAE()  # the AMUSE code's widths are its defaults


def style_module():
    from pipelines.models.style_embedding import StyleEmbedding

    return StyleEmbedding(width=768)


@dataclass(frozen=True)
class Family:
    """One full-size family (``fullsize.py`` builds it under this name): what it is built from (the
    README's verbatim/reconstructed table) and its torch parts, for parameter counts without weights."""

    source: str
    parts: dict[str, Callable[[], Any]] = field(default_factory=dict, hash=False)


# Every full-size family, one entry each (the roles name theirs: ``roles.Role.fullsize_family``).
FAMILIES: dict[str, Family] = {
    "riffusion": Family(
        "riffusion/riffusion-model-v1: scheduler + vae configs verbatim, unet + model_index reconstructed "
        "(manifest); text encoder = SD 1.5's verbatim CLIP ViT-L/14 config (riffusion's own not captured). "
        "Also stands in for cappiepappie/stable-diffusion-music-25 (no config captured; same SD 1.x UNet)",
        {"unet": lambda: sd_unet(RIFFUSION), "vae": lambda: sd_vae(RIFFUSION), "text_encoder": clip_text_encoder}),
    "sd15": Family(
        "stable-diffusion-v1-5: model_index, scheduler, text_encoder, tokenizer configs verbatim; unet, vae, "
        "feature_extractor reconstructed (manifest, size-checked)",
        {"unet": sd_unet, "vae": sd_vae, "text_encoder": clip_text_encoder}),
    "lora": Family("Derek327783/TechJam's LoRA layout: 128 rank-4 pairs, old `.lora.down/up` keys, on SD 1.5's UNet"),
    "blip": Family(
        "Salesforce/blip-image-captioning-large: preprocessor + special tokens from the manifest; model config "
        "reconstructed from the manifest's key values (ViT-L 24x1024 vision, BERT-base 12x768 text decoder)",
        {"model": blip_model}),
    "musicgen": Family(
        "facebook/musicgen-small: generation + preprocessor configs from the manifest (reconstructed); "
        "model config reconstructed from the published architecture (T5-base text encoder, 24x1024 "
        "decoder with 4 codebooks of 2048, EnCodec 32 kHz)",
        {"model": musicgen_model}),
    "musicgen_melody": Family(
        "facebook/musicgen-melody (not in the manifests): the published decoder config (48x1536, "
        "24 heads, ffn 6144) with musicgen-small's T5-base and EnCodec; preprocessor values as "
        "published; 1.56 B parameters, the real 6.23 GB",
        {"model": musicgen_melody_model}),
    "clap": Family(
        "laion/clap-htsat-unfused: preprocessor config from the manifest (reconstructed); model config = "
        "transformers' ClapConfig defaults (HTSAT-tiny audio, RoBERTa-base text, 512 projection, unfused)",
        {"model": clap_model}),
    "sentence": Family(
        "sentence-transformers/all-distilroberta-v1: modules.json verbatim, config.json + "
        "config_sentence_transformers.json reconstructed (manifest); 1_Pooling = mean pooling over 768",
        {"model": sentence_model}),
    "amuse_unet": Family(
        "alppo/vae-conditioned-diffusion-model_v2: model_index verbatim, scheduler reconstructed "
        "(manifest); unet config NOT captured: reconstructed as teticio/audio-diffusion-256's verbatim "
        "UNet2DModel config (its base model) with a cross-attention mid block over AMUSE's 64-d "
        "condition, the one variant whose size matches the real 472 MB file",
        {"unet": amuse_unet}),
    "amuse_vae": Family("AMUSE playlist VAE (not published): the AMUSE code's encoder widths 32..512, latent 32",
                        {"model": amuse_vae}),
    "music_styles": Family("MusicTI styles (kariander1/interp-music-style): three random 768-wide TVTI styles "
                           "(17.9 M each)", {"style": style_module}),
    "keras_genre": Family("TechJam genre CNN: the original's layer types and widths (classifiers.genre)"),
    "keras_emotion": Family("TechJam emotion CNN: the original's nine conv widths (classifiers.emotion)"),
}
SOURCES: dict[str, str] = {name: family.source for name, family in FAMILIES.items()}
TORCH_PARTS: dict[str, dict[str, Callable[[], Any]]] = {name: family.parts for name, family in FAMILIES.items()
                                                        if family.parts}


def parameter_counts(family: str) -> dict[str, int]:
    """Parameters and buffers of each part of ``family``'s torch models, counted on the meta device
    (no memory, no init: seconds even for 860 M parameters)."""
    import torch

    counts = {}
    for part, factory in TORCH_PARTS[family].items():
        with torch.device("meta"):
            model = factory()
        counts[part] = sum(t.numel() for t in [*model.parameters(), *model.buffers()])
    return counts
