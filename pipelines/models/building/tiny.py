"""Tiny models of every family the app uses, built once on this machine into a cache folder.

Same classes and file layout as the real Hub repos, random weights, a few MB each: tests and
``--profile tiny`` go through the real ``from_pretrained`` code without network or GPU. The output
is noise; shapes, dtypes and control flow are real. The VAE keeps the real downsampling factor 8,
so a 512 px spectrogram gives a 64x64 latent exactly as with the real model.

Call ``ensure(family)``; it builds into ``$STUDIO_CACHE/tiny/<family>-v<N>`` (default
``~/.cache/music-studio``) under a lock, writing to a temporary folder and renaming, so parallel
test workers and a crash halfway never leave a broken model behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.models.lora import LORA_FILE
from pipelines.models.building import common as model_building
from pipelines.models.building.common import (clip_word_merges,  # noqa: F401  (tests and the docs name it here)
                             bert_wordpiece_vocab, byte_level_alphabet, randomize_keras, save_keras_like_original, t5_unigram_vocab, write_melody_preprocessor_config, spread_encodec_codebooks, ModelFamilies)

FAMILIES = ModelFamilies("tiny")
BUILDERS = FAMILIES.builders
builder, has, ensure = FAMILIES.builder, FAMILIES.has, FAMILIES.ensure


# -- a CLIP tokenizer with merges for the app's own words ----------------------------------------------
# The words of TechJam's sentence, the classifiers' labels and the page's default prompts: with a merge
# chain per word they are one token each, as in the real CLIP vocabulary, so the default prompts fit
# CLIP's 77 tokens (byte by byte, TechJam's sentence alone is 79 and the pipeline warns that it truncates).
TOKENIZER_WORDS = (
    "this piece of music falls under the genre it is tempo has no steady beat and evokes a sense "
    "blues classical country disco hip hop jazz metal pop reggae rock "
    "amazement solemnity tenderness nostalgia calmness power joyfulness tension sadness "
    "instrumental saxophone flute funk bassline with jazzy solo church bells on sunday piano"
).split()


def write_clip_tokenizer(folder: Path) -> int:
    """The tiny profile's CLIP tokenizer: every byte a token plus one token per word of
    ``TOKENIZER_WORDS`` (``model_building.write_clip_tokenizer``). Returns the vocab size."""
    return model_building.write_clip_tokenizer(folder, TOKENIZER_WORDS)


def tiny_clip_text_encoder(vocab_size: int, eos_token_id: int, hidden: int = 32):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=hidden,
        bos_token_id=eos_token_id - 1,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )
    return CLIPTextModel(config)


def tiny_vae():
    """Four down blocks, like SD's VAE: the latent is 1/8 of the image side. Four channels at 512 px
    and no attention in the mid block (it would attend over all 64x64 latent positions): the tiny
    demo's VAE passes stay a fraction of a second on a CPU."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 4, 8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=2,
        sample_size=64,
        mid_block_add_attention=False,
    )


def tiny_unet(cross_attention_dim: int = 32):
    """Three levels (64, 32, 16 for a 512 px image) with attention only at the lowest, 16x16, as
    diffusers' own test models keep attention off the full latent resolution: 64x64 self-attention
    was most of a tiny click's minute."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(4, 8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=4,
    )


@builder("sd", version=3)
def build_stable_diffusion(folder: Path) -> None:
    """Stable Diffusion layout (riffusion, the mask model and SD 1.5 all share it)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    vocab_size = write_clip_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    shutil.rmtree(folder / "tokenizer")
    text_encoder = tiny_clip_text_encoder(vocab_size, tokenizer.eos_token_id)
    # SD 1.x's training schedule, so timesteps and noise levels match the real repos
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=tiny_vae(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=tiny_unet(text_encoder.config.hidden_size),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)


# -- music to image: the two Keras classifiers and the TechJam LoRA ------------------------------------
# The tiny CNNs' widths (also what ``python -m training.classifiers --profile tiny`` trains).
TINY_CLASSIFIER_WIDTHS = {"genre": {"filters": (4, 4, 4), "dense_units": 8}, "emotion": {"filters": (2,) * 9}}


@builder("keras_genre", version=1)
def build_keras_genre(folder: Path) -> None:
    """The GTZAN genre CNN's layer types and (259, 13, 1) input, 4-channel convs and 8 dense units."""
    from classifiers import genre

    model = genre.build_model(**TINY_CLASSIFIER_WIDTHS["genre"])
    randomize_keras(model, seed=1)
    folder.mkdir(parents=True, exist_ok=True)
    save_keras_like_original(model, folder / genre.WEIGHTS_FILE)


@builder("keras_emotion", version=1)
def build_keras_emotion(folder: Path) -> None:
    """The Emotify CNN's 9 conv + 9 batch-norm + dense layers and (1024, 431, 1) input, 2 channels each."""
    from classifiers import emotion

    model = emotion.build_model(**TINY_CLASSIFIER_WIDTHS["emotion"])
    randomize_keras(model, seed=2)
    folder.mkdir(parents=True, exist_ok=True)
    save_keras_like_original(model, folder / emotion.WEIGHTS_FILE)


@builder("lora", version=2)
def build_lora(folder: Path) -> None:
    """A rank-4 LoRA for the tiny ``sd`` UNet in the OLD attention-processor key format that the
    TechJam file uses: ``unet.<path>.processor.to_q_lora.down.weight`` (rank x in) and ``...up``
    (out x rank) for to_q/to_k/to_v/to_out of every attention. Nonzero up weights: it changes the
    output (diffusers' trainer starts them at zero)."""
    import torch
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import Attention
    from safetensors.torch import save_file

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(ensure("sd") / "unet"))
    rank = 4
    state = {}
    for name, module in unet.named_modules():
        if not isinstance(module, Attention):
            continue
        for proj, linear in (("to_q", module.to_q), ("to_k", module.to_k), ("to_v", module.to_v), ("to_out", module.to_out[0])):
            key = f"unet.{name}.processor.{proj}_lora"
            state[f"{key}.down.weight"] = torch.randn(rank, linear.in_features) / rank
            state[f"{key}.up.weight"] = torch.randn(linear.out_features, rank) * 0.5
    if not state:
        raise RuntimeError("The tiny UNet has no attention layers to put a LoRA on.")
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / LORA_FILE))


# -- image to music: BLIP captioner, MusicGen, the sentence embedder ------------------------------------
@builder("blip", version=1)
def build_blip(folder: Path) -> None:
    """Salesforce/blip-image-captioning-large's classes and 384 px input: BlipForConditionalGeneration
    + BlipProcessor (BlipImageProcessor, BertTokenizer with ``[DEC]`` as bos, as the real repo)."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        BlipTextConfig,
        BlipVisionConfig,
    )

    vocab = bert_wordpiece_vocab()
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True, model_max_length=512)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    hidden = 32
    config = BlipConfig(
        vision_config=BlipVisionConfig(
            hidden_size=hidden, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=384,
            patch_size=32, projection_dim=hidden,
            initializer_range=0.02,  # the real 1e-10 would make every image look the same
        ).to_dict(),
        text_config=BlipTextConfig(
            vocab_size=len(tokenizer), hidden_size=hidden, encoder_hidden_size=hidden, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64, projection_dim=hidden,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.sep_token_id,
            pad_token_id=tokenizer.pad_token_id, sep_token_id=tokenizer.sep_token_id,
        ).to_dict(),
        projection_dim=hidden, image_text_hidden_size=hidden,
    )
    model = BlipForConditionalGeneration(config)
    with torch.no_grad():
        # random weights often stop at once; a lower [SEP] logit makes the tiny captioner write words
        model.text_decoder.cls.predictions.bias[tokenizer.sep_token_id] -= 4.0
        # and louder cross-attention, so different pictures give different captions
        for name, module in model.text_decoder.named_modules():
            if name.endswith(("crossattention.self.value", "crossattention.output.dense")):
                module.weight.mul_(4.0)
    model.save_pretrained(folder, safe_serialization=True)
    image_processor = BlipImageProcessor(size={"height": 384, "width": 384})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


TINY_MUSICGEN_DECODER = dict(vocab_size=2048, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
                             max_position_embeddings=2048, pad_token_id=2048, bos_token_id=2048)


def _tiny_t5_and_encodec():
    """What musicgen-small and musicgen-melody share: the T5 tokenizer and a tiny T5 text encoder and mono
    EnCodec at 32 kHz with hop 640 (50 frames per second). Returns (tokenizer, T5Config, EncodecConfig)."""
    from transformers import EncodecConfig, T5Config, T5Tokenizer

    tokenizer = T5Tokenizer(vocab=t5_unigram_vocab(), extra_ids=100, model_max_length=512)
    text = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                    feed_forward_proj="relu")
    codec = EncodecConfig(
        sampling_rate=32000, audio_channels=1, num_filters=4, hidden_size=16, upsampling_ratios=[8, 5, 4, 4],
        codebook_size=2048, target_bandwidths=[2.2], num_residual_layers=1, num_lstm_layers=1,
        norm_type="weight_norm", use_causal_conv=False, normalize=False, chunk_length_s=None, overlap=None,
    )
    return tokenizer, text, codec


@builder("musicgen", version=1)
def build_musicgen(folder: Path) -> None:
    """facebook/musicgen-small's classes and rates: a T5 text encoder, a 4-codebook decoder (2048 codes,
    delay pattern), a mono EnCodec at 32 kHz with hop 640 (50 frames per second), MusicgenProcessor
    (EncodecFeatureExtractor + T5Tokenizer) and the real generation defaults (sampling, top-k 250, CFG 3)."""
    from transformers import (
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
    )

    tokenizer, text, codec = _tiny_t5_and_encodec()
    decoder = MusicgenDecoderConfig(
        **TINY_MUSICGEN_DECODER, num_codebooks=codec.num_quantizers,
    )
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=codec.to_dict(), decoder=decoder.to_dict())
    model = MusicgenForConditionalGeneration(config)
    spread_encodec_codebooks(model)
    generation = model.generation_config
    generation.update(do_sample=True, guidance_scale=3.0, max_length=1500, top_k=250,
                      pad_token_id=2048, decoder_start_token_id=2048, bos_token_id=2048)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=32000, padding_value=0.0)
    MusicgenProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)


@builder("musicgen_melody", version=1)
def build_musicgen_melody(folder: Path) -> None:
    """facebook/musicgen-melody's classes and rates: MusicgenMelodyForConditionalGeneration (T5 text
    encoder, 4-codebook decoder, EnCodec at 32 kHz, 50 frames per second, 12-class chroma projected
    beside the text), the T5 tokenizer and the repo's preprocessor_config.json (the chroma extractor's
    settings; transformers' extractor class needs torchaudio, so ``pipelines.systems.melody`` reads them)."""
    import torch
    from transformers import (
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
    )

    tokenizer, text, codec = _tiny_t5_and_encodec()
    decoder = MusicgenMelodyDecoderConfig(
        **TINY_MUSICGEN_DECODER, num_codebooks=codec.num_quantizers,
    )
    config = MusicgenMelodyConfig(text_encoder=text.to_dict(), audio_encoder=codec.to_dict(), decoder=decoder.to_dict(),
                                  num_chroma=12, chroma_length=235)
    model = MusicgenMelodyForConditionalGeneration(config)
    spread_encodec_codebooks(model)
    with torch.no_grad():
        model.audio_enc_to_dec_proj.weight.mul_(8.0)  # louder chroma, so a different tune changes the tiny output
    model.generation_config.update(do_sample=True, guidance_scale=3.0, max_length=1500, top_k=250,
                                   pad_token_id=2048, decoder_start_token_id=2048, bos_token_id=2048)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    write_melody_preprocessor_config(folder)


@builder("sentence", version=1)
def build_sentence(folder: Path) -> None:
    """sentence-transformers/all-distilroberta-v1 as transformers sees it: a RobertaModel and a
    byte-level BPE RobertaTokenizer (every byte a token, no merges; specials at RoBERTa's ids)."""
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for c in byte_level_alphabet():
        vocab[c] = len(vocab)
    vocab["<mask>"] = len(vocab)
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[], model_max_length=128)
    config = RobertaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
                           eos_token_id=2, type_vocab_size=1)
    folder.mkdir(parents=True, exist_ok=True)
    RobertaModel(config, add_pooling_layer=False).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


# -- playlist to music (AMUSE): the conditioned spectrogram UNet and the playlist VAE ------------------
@builder("amuse_unet", version=1)
def build_amuse_unet(folder: Path) -> None:
    """alppo/vae-conditioned-diffusion-model_v2's layout: 1-channel 256x256 UNet2DConditionModel with six
    blocks, cross-attention only in the fifth down block, the second up block and the mid block,
    cross_attention_dim 64; widths 4..16 (the real 128..512), one layer per block. Saved as diffusers'
    training recipe saves a DDPMPipeline: ``unet/`` and ``scheduler/`` (DDPM, 1000 steps)."""
    from diffusers import DDPMScheduler, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=256,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(4, 4, 8, 8, 16, 16),
        down_block_types=("DownBlock2D",) * 4 + ("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D") + ("UpBlock2D",) * 4,
        mid_block_type="UNetMidBlock2DCrossAttn",
        cross_attention_dim=64,
        attention_head_dim=4,
        norm_num_groups=2,
    )
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder / "scheduler")


@builder("amuse_vae", version=1)
def build_amuse_vae(folder: Path) -> None:
    """The AMUSE VAE encoder (five stride-2 stages, latent 32) with widths 8..32 instead of 32..512 (narrower ones die in the first ReLU)."""
    from pipelines.models.playlist_vae import PlaylistVAE

    PlaylistVAE(hidden_dims=(8, 8, 16, 16, 32), latent_dim=32).save_pretrained(folder, safe_serialization=True)


# -- style interpolation: MusicTI style folders -----------------------------------------------------------
@builder("music_styles", version=1)
def build_music_styles(folder: Path) -> None:
    """Three random MusicTI styles ("jazz", "rock", "ambient"), one folder each, as
    ``style_embedding.save_style`` writes them; width 32 = the tiny ``sd`` text encoder's hidden size."""
    import torch

    from pipelines.models.style_embedding import StyleEmbedding, save_style

    for index, name in enumerate(("jazz", "rock", "ambient")):
        generator = torch.Generator().manual_seed(100 + index)
        module = StyleEmbedding(width=32, inner=128, heads=2, head_dim=16)
        with torch.no_grad():
            for parameter in module.parameters():  # distinct, seeded and loud enough to move the tiny CLIP
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / parameter.shape[-1] ** 0.5)
            module.initial_embedding.copy_(torch.randn(1, 32, generator=generator))
        save_style(module, folder / name, name, extra={"source": "tiny random weights"})


# -- metrics: CLAP ---------------------------------------------------------------------------------------
@builder("clap", version=1)
def build_clap(folder: Path) -> None:
    """laion/clap-htsat-unfused's classes and input: ClapModel (HTSAT audio tower, RoBERTa text tower,
    unfused) + ClapProcessor with the real feature extractor (48 kHz, 64 mel bins, 10 s, "repeatpad",
    "rand_trunc") and a byte-level RoBERTa tokenizer; widths 16-32 instead of 768, ``pytorch_model.bin``
    only, as the real repo ships."""
    import torch
    from transformers import (ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor,
                              ClapTextConfig, RobertaTokenizer)

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for c in byte_level_alphabet():
        vocab[c] = len(vocab)
    vocab["<mask>"] = len(vocab)
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[], model_max_length=77)
    text = ClapTextConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=80, projection_dim=16)
    # HTSAT needs spec_size 256 and window 8 for the 64-bin, 1001-frame input; one layer per stage, and
    # hidden_size = patch_embeds_hidden_size * 2 ** (stages - 1), the width the last stage pools to
    audio = ClapAudioConfig(hidden_size=32, depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=16,
                            projection_dim=16, window_size=8, num_mel_bins=64, spec_size=256)
    model = ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16))
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)  # transformers 5 writes only safetensors itself: the .bin by hand
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    extractor = ClapFeatureExtractor(feature_size=64, sampling_rate=48000, hop_length=480, max_length_s=10,
                                     fft_window_size=1024, padding="repeatpad", truncation="rand_trunc",
                                     frequency_min=50, frequency_max=14000)
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
