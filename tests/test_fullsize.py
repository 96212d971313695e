"""The fullsize profile and the registry's pins, checked cheaply: configs, layouts, parameter counts
on the meta device. Nothing here builds a full-size model (``benchmarks/fullsize.py`` does)."""

from __future__ import annotations

import re

from pipelines.models.registry import ROLES, UNPINNED_ROLES, ModelRegistry

SHA = re.compile(r"^[0-9a-f]{40}$")


def test_every_hub_role_is_pinned_to_a_full_sha_except_the_documented_ones():
    hub_roles = {name for name, role in ROLES.items() if role.repo_id}
    unpinned = {name for name in hub_roles if not SHA.match(ROLES[name].revision)}
    assert unpinned == set(UNPINNED_ROLES) == {"mask_model"}
    assert all(ROLES[name].revision == "main" for name in unpinned)  # never a short sha or a typo
    for name in hub_roles - unpinned:
        source = ModelRegistry("hub", environ={}).resolve(name)
        assert SHA.match(source.revision) and source.revision == ROLES[name].revision


# -- the builder's configurations and sizes --------------------------------------------------------
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from pipelines.models.building import fullsize, fullsize_specs  # noqa: E402

def test_the_builders_configs_are_the_shared_reference_files():
    """fullsize_configs.json is a copy of the captured Hub configurations (so the builder runs without them)."""
    from scripts.real_data import find_hub_reference

    HUB_REFERENCE = find_hub_reference()
    if HUB_REFERENCE is None:
        if os.environ.get("STUDIO_REQUIRE_REAL_DATA") == "1":
            pytest.fail("STUDIO_REQUIRE_REAL_DATA=1 but the captured Hub configurations are not here", pytrace=False)
        pytest.skip("the captured Hub configurations (the project's shared reference/hub) are not here: "
                    "set STUDIO_HUB_REFERENCE to compare fullsize_configs.json with them")
    data = json.loads(fullsize_specs.CONFIG_FILE.read_text())
    compared = 0
    for repo, files in data.items():
        if repo.startswith("_"):
            continue
        for path, entry in files.items():
            assert entry["content"] == json.loads((HUB_REFERENCE / repo / path).read_text()), f"{repo}/{path}"
            assert entry["status"].startswith(("verbatim", "reconstructed"))
            compared += 1
    assert compared >= 20


def test_every_role_is_built_by_a_fullsize_family_and_documented():
    from pipelines.models.registry import ROLES, ModelRegistry

    registry = ModelRegistry("fullsize", environ={}, builder=fullsize)
    families = {registry.family(role) for role in ROLES}
    assert families == set(fullsize.BUILDERS) == set(fullsize_specs.SOURCES)
    assert registry.family("mask_model") == registry.family("riffusion") != registry.family("sd15")


def test_the_docs_document_the_fullsize_sources_and_the_unpinned_roles():
    from pipelines.models.registry import ROLES, UNPINNED_ROLES

    readme = (Path(__file__).resolve().parents[1] / "docs" / "HARDWARE.md").read_text()
    section = readme[readme.index("## Fullsize profile"):]
    section = section[:section.find("\n## ", 4) if "\n## " in section[4:] else None]
    for family in fullsize.BUILDERS:
        assert f"`{family}`" in section, family
    unpinned = section[section.index("Unpinned"):].split("\n\n")[0]
    assert {role for role in ROLES if f"`{role}`" in unpinned} == set(UNPINNED_ROLES)


@pytest.mark.parametrize("role", sorted(set(fullsize_specs.REAL_SIZES) - {"genre_classifier", "emotion_classifier", "m2i_lora"}))
def test_parameter_counts_times_4_bytes_match_the_real_weight_files(role):
    """fp32 parameters (meta device: no memory, no init) x 4 bytes within 2% of the manifest's file size."""
    from pipelines.models.registry import ROLES

    family = ROLES[role].family_for("fullsize")
    counts = fullsize_specs.parameter_counts(family)
    for part, real in fullsize_specs.REAL_SIZES[role].items():
        ours = 4 * (sum(counts.values()) if part in ("pipeline", "model") else counts[part])
        assert abs(ours - real) / real < 0.02, f"{role}.{part}: {ours:,} B built vs {real:,} B on the Hub"


def test_sd_configs_keep_the_real_repos_surprises():
    riffusion_vae = fullsize_specs.config(fullsize_specs.RIFFUSION, "vae/config.json")
    assert "scaling_factor" not in riffusion_vae and riffusion_vae["sample_size"] == 256
    scheduler = fullsize_specs.config(fullsize_specs.RIFFUSION, "scheduler/scheduler_config.json")
    assert scheduler["_class_name"] == "PNDMScheduler" and "clip_sample" not in scheduler
    sd15 = fullsize_specs.config(fullsize_specs.SD15, "scheduler/scheduler_config.json")
    assert sd15["_class_name"] == "PNDMScheduler" and sd15["clip_sample"] is False
    amuse = fullsize_specs.config(fullsize_specs.ALPPO, "model_index.json")
    assert amuse["_class_name"] == "DDPMPipeline" and amuse["unet"] == ["diffusers", "UNet2DConditionModel"]


# -- layouts, with small stand-in weights (the layout code is the real one) -----------------------------
@pytest.fixture
def small_models(monkeypatch):
    """Swap the full-size model factories for tiny ones: the builders' layout code runs unchanged."""
    from pipelines.models.building import tiny

    monkeypatch.setattr(fullsize, "sd_unet", lambda repo=None: tiny.tiny_unet(32))
    monkeypatch.setattr(fullsize, "sd_vae", lambda repo=None: tiny.tiny_vae())
    monkeypatch.setattr(fullsize, "clip_text_encoder", lambda: tiny.tiny_clip_text_encoder(49408, 49407))

    def small_clap():
        from transformers import ClapAudioConfig, ClapConfig, ClapModel, ClapTextConfig

        text = ClapTextConfig(vocab_size=50265, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=64, projection_dim=16)
        audio = ClapAudioConfig(hidden_size=32, depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=8,
                                projection_dim=16, window_size=8, num_mel_bins=64, spec_size=256)
        return ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16))

    monkeypatch.setattr(fullsize, "clap_model", small_clap)
    monkeypatch.setattr(fullsize, "amuse_unet", lambda: tiny_amuse_unet())


def tiny_amuse_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(sample_size=256, in_channels=1, out_channels=1, layers_per_block=1,
                                block_out_channels=(4, 8), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                up_block_types=("AttnUpBlock2D", "UpBlock2D"), mid_block_type="UNetMidBlock2DCrossAttn",
                                cross_attention_dim=64, attention_head_dim=4, norm_num_groups=2)


def _weights(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.suffix in (".bin", ".safetensors")}


def test_riffusion_layout_is_bin_only_with_its_own_vae_and_scheduler_configs(small_models, tmp_path):
    fullsize.build_riffusion(tmp_path)
    assert _weights(tmp_path / "unet") == {"diffusion_pytorch_model.bin"}
    assert _weights(tmp_path / "vae") == {"diffusion_pytorch_model.bin"}
    assert _weights(tmp_path / "text_encoder") == {"pytorch_model.bin"}
    assert not list(tmp_path.rglob("*.safetensors"))
    vae = json.loads((tmp_path / "vae/config.json").read_text())
    assert vae == fullsize_specs.config(fullsize_specs.RIFFUSION, "vae/config.json") and "scaling_factor" not in vae
    scheduler = json.loads((tmp_path / "scheduler/scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "PNDMScheduler"
    assert json.loads((tmp_path / "model_index.json").read_text())["scheduler"] == ["diffusers", "PNDMScheduler"]
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert len(tokenizer) == 49408 and tokenizer.eos_token_id == 49407 and tokenizer.model_max_length == 77


def test_sd15_layout_has_fp16_variants_beside_fp32(small_models, tmp_path):
    from pipelines.models.loaders import has_variant

    fullsize.build_sd15(tmp_path)
    for part, stem in (("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("text_encoder", "model")):
        assert _weights(tmp_path / part) == {f"{stem}.safetensors", f"{stem}.fp16.safetensors"}
    assert has_variant(str(tmp_path), "fp16")
    assert json.loads((tmp_path / "scheduler/scheduler_config.json").read_text())["clip_sample"] is False


def test_sd_loader_reads_the_fp16_variant_only_when_asked_in_fp16(tmp_path):
    """SD 1.5 in fp16 loads the variant files directly (no fp32 copy in host memory)."""
    import torch

    from pipelines.models import loaders

    from pipelines.models.building import tiny

    sd = tiny.ensure("sd")
    assert not loaders.has_variant(str(sd), "fp16")
    pipe = loaders.load_sd_img2img(str(sd), dtype=torch.float16, variant="fp16")  # no variant files: cast
    assert pipe.unet.dtype == torch.float16
    pipe = loaders.load_sd_img2img(str(sd))
    assert pipe.unet.dtype == torch.float32


def test_amuse_layout_loads_through_the_loaders(small_models, tmp_path):
    from diffusers import DDPMScheduler

    from pipelines.models import loaders

    fullsize.build_amuse_unet(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_index.json", "scheduler", "unet"]
    unet = loaders.load_amuse_unet(str(tmp_path))
    assert unet.config.cross_attention_dim == 64 and unet.config.in_channels == 1
    assert isinstance(loaders.load_amuse_scheduler(str(tmp_path)), DDPMScheduler)


def test_clap_is_bin_only_and_loads(small_models, tmp_path):
    from pipelines.models import loaders

    fullsize.build_clap(tmp_path)
    assert _weights(tmp_path) == {"pytorch_model.bin"}
    bundle = loaders.load_clap(str(tmp_path))
    assert len(bundle.processor.tokenizer) == 50265


def test_lora_has_the_techjam_key_set():
    """The random full-size LoRA has exactly the real file's 256 keys and shapes (built in seconds)."""
    from safetensors import safe_open

    lora = fullsize.ensure("lora") / "pytorch_lora_weights.safetensors"
    with safe_open(str(lora), "pt") as f:
        keys = set(f.keys())
    from test_real_lora import TARGETS

    assert keys == {f"unet.{t}.lora.{side}.weight" for t in TARGETS for side in ("down", "up")}


# -- opt-in: the built cache through the Studio (STUDIO_FULLSIZE_TESTS=1; ~16 GB cache, minutes) --------
@pytest.mark.skipif(not os.environ.get("STUDIO_FULLSIZE_TESTS"), reason="set STUDIO_FULLSIZE_TESTS=1 (builds ~16 GB)")
def test_fullsize_models_load_through_the_studio_at_the_real_sizes():
    """Every entry loads through the hub loaders from the fullsize cache, and the About panel's size
    (``manager.status()``) is within 2% of the real repository's weight files."""
    from pipelines.models.memory import model_nbytes
    from pipelines.studio import Studio

    studio = Studio(profile="fullsize", device="cpu")
    checked = []
    for entry in ("riffusion", "mask_model", "sd15", "blip", "musicgen", "sentence_embedder", "amuse",
                  "genre_classifier", "emotion_classifier", "clap"):
        model = studio.manager.get_cpu(entry)
        row = next(r for r in studio.manager.status() if r["name"] == entry)
        reported = row["mb"] * 2**20
        role = {"amuse": "amuse_unet"}.get(entry, entry)
        parts = fullsize_specs.REAL_SIZES[role]
        if "h5" in parts:  # the .h5 holds the weights and Adam's two slots
            ours, real = 3 * reported, parts["h5"]
        elif role == "mask_model":  # only the UNet's size is known
            ours, real = model_nbytes(model.unet), parts["unet"]
        elif role == "amuse_unet":
            ours, real = model_nbytes(model.unet), parts["unet"]
        else:
            ours, real = reported, sum(parts.values())
        assert abs(ours - real) / real < 0.02, f"{entry}: {ours:,.0f} B loaded vs {real:,} B on the Hub"
        checked.append(entry)
        studio.manager.evict_all()  # drop it: one full-size model in memory at a time
    lora = studio.registry.resolve("m2i_lora").location
    size = (Path(lora) / "pytorch_lora_weights.safetensors").stat().st_size
    assert abs(size - fullsize_specs.REAL_SIZES["m2i_lora"]["lora"]) / fullsize_specs.REAL_SIZES["m2i_lora"]["lora"] < 0.02
    assert len(checked) == 10


def test_sd_loader_in_fp16_reads_only_the_variant_files(tmp_path):
    """Where a folder has ``*.fp16.*`` files (SD 1.5's layout), fp16 loading reads them and needs no fp32 file."""
    import shutil

    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    from pipelines.models import loaders

    from pipelines.models.building import tiny

    folder = tmp_path / "sd"
    shutil.copytree(tiny.ensure("sd"), folder)
    for part, cls in (("unet", UNet2DConditionModel), ("vae", AutoencoderKL), ("text_encoder", CLIPTextModel)):
        model = cls.from_pretrained(folder / part)
        model.to(torch.float16).save_pretrained(folder / part, variant="fp16")
        for fp32 in (folder / part).glob("*.safetensors"):
            if ".fp16." not in fp32.name:
                fp32.unlink()  # only the half-size files are left: a Space would download just these
    pipe = loaders.load_sd_img2img(str(folder), dtype=torch.float16, variant="fp16")
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {torch.float16}
