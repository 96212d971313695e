"""The real TechJam LoRA loads through the app's LoRA code into a full-size SD 1.5 UNet.

The UNet is built in memory from SD 1.5's own ``unet/config.json`` (the copy in ``fullsize_configs.json``),
with random weights: 860 M parameters, 3.4 GB in fp32, about 20 s to build on 2 cores. Nothing is
saved. The LoRA file is read where conftest's ``real_data`` finds the original systems' files
(``make real-data`` downloads it for the tests); it is never copied into the repo.

What is proven:
- the file holds exactly the 128 down/up pairs of to_q, to_k, to_v and to_out.0 of attn1 and attn2
  in SD 1.5's 16 transformer blocks (so a file or a loader missing one projection fails);
- every one of those 128 Linear layers gets the file's own down/up matrices (not just "some" LoRA);
- with the adapter off (the app's state after ``load_lora``) or at weight 0 the UNet's output is
  bit-for-bit the base model's; at weight 1 it differs.
"""

from __future__ import annotations

import pytest

# SD 1.x's 16 transformer blocks: 2 per attention in down blocks 0-2 (6), 3 per up block 1-3 (9), 1 mid.
BLOCKS = (
    [f"down_blocks.{b}.attentions.{a}" for b in range(3) for a in range(2)]
    + [f"up_blocks.{b}.attentions.{a}" for b in range(1, 4) for a in range(3)]
    + ["mid_block.attentions.0"]
)
PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")
TARGETS = sorted(
    f"{block}.transformer_blocks.0.{attn}.{proj}" for block in BLOCKS for attn in ("attn1", "attn2") for proj in PROJECTIONS
)


def pipeline_around(unet):
    """A real ``StableDiffusionPipeline`` around the full-size UNet, as ``music_to_image.load_lora``
    expects. The TechJam LoRA is UNet-only, so the text encoder and tokenizer are left out and the
    VAE is the tiny builder's (the pipeline needs one for its latent scale; this test never runs it)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from pipelines.models.building.tiny import tiny_vae

    return StableDiffusionPipeline(vae=tiny_vae(), text_encoder=None, tokenizer=None, unet=unet,
                                   scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


@pytest.fixture(scope="module")
def lora_file(real_data):
    return real_data / "techjam" / "pytorch_lora_weights.safetensors"


@pytest.fixture(scope="module")
def lora_tensors(lora_file):
    from safetensors.torch import load_file

    return load_file(str(lora_file))


@pytest.fixture(scope="module")
def unet():
    import torch
    from diffusers import UNet2DConditionModel

    from pipelines.models.building import fullsize_specs

    torch.manual_seed(0)
    return fullsize_specs.sd_unet().eval()


def test_the_file_holds_exactly_the_128_pairs_of_sd15s_attention_projections(lora_tensors):
    assert len(TARGETS) == 128
    expected = {f"unet.{t}.lora.{side}.weight" for t in TARGETS for side in ("down", "up")}
    assert set(lora_tensors) == expected
    for target in TARGETS:
        down, up = lora_tensors[f"unet.{target}.lora.down.weight"], lora_tensors[f"unet.{target}.lora.up.weight"]
        assert down.shape[0] == 4 and up.shape[1] == 4, target  # rank 4


def test_real_lora_changes_all_128_layers_and_scale_zero_is_the_base_model(unet, lora_file, lora_tensors):
    import torch

    from pipelines.systems import music_to_image

    # a small latent keeps the full-size forward to a few seconds on 2 cores
    generator = torch.Generator().manual_seed(0)
    latent = torch.randn(1, 4, 8, 8, generator=generator)
    text = torch.randn(1, 8, 768, generator=generator)

    def forward():
        with torch.no_grad():
            return unet(latent, 500, encoder_hidden_states=text).sample

    base = forward()
    pipe = pipeline_around(unet)
    adapter = music_to_image.load_lora(pipe, lora_file)

    # every targeted Linear now carries this adapter, with the file's own matrices
    modules = dict(unet.named_modules())
    carrying = {name for name, module in modules.items()
                if adapter in getattr(module, "lora_A", {}) and not name.endswith((".lora_A", ".lora_B"))}
    assert carrying == set(TARGETS)
    for target in TARGETS:
        layer = modules[target]
        down = layer.lora_A[adapter].weight
        up = layer.lora_B[adapter].weight
        torch.testing.assert_close(down, lora_tensors[f"unet.{target}.lora.down.weight"], rtol=0, atol=0)
        torch.testing.assert_close(up, lora_tensors[f"unet.{target}.lora.up.weight"], rtol=0, atol=0)
        delta = layer.scaling[adapter] * (up @ down)  # what the LoRA adds to the layer's weight
        assert delta.abs().max() > 0, f"{target}: the LoRA does not change this layer"

    # load_lora leaves the adapter off: the base model, exactly
    assert torch.equal(forward(), base)
    # on, at weight 0: still exactly the base model
    pipe.enable_lora()
    pipe.set_adapters([adapter], adapter_weights=[0.0])
    assert torch.equal(forward(), base)
    # at weight 1 the output moves
    pipe.set_adapters([adapter], adapter_weights=[1.0])
    assert not torch.allclose(forward(), base)
    pipe.disable_lora()
    assert torch.equal(forward(), base)
