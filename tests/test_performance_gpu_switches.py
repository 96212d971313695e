"""GPU speed switches (fused attention, channels_last, torch.compile's choice and regional compile), and
nothing of ours reading the device inside a denoising loop; checked on the CPU, where the same code runs."""

import pytest

from pipelines.schema.settings import SoundToMusicSettings
from render_checks import everyday_sound, sound_to_music


def test_sd_models_get_sdpa_attention_and_channels_last_on_cuda(studio, monkeypatch):
    """tune_sd restores torch's fused attention where another processor was set, and puts the UNet and
    VAE in channels_last for CUDA (applied here on CPU tensors: the layout is what is checked)."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    from pipelines.models import loaders

    location = studio.registry.resolve("mask_model").location
    pipe = loaders.load_sd_img2img(location)
    pipe.unet.set_attn_processor(AttnProcessor())  # the slow, unfused one
    loaders.tune_sd(pipe, "cpu")
    assert pipe.tuning["replaced_attention"] > 0 and not pipe.tuning["channels_last"]
    assert all(isinstance(p, AttnProcessor2_0) for p in pipe.unet.attn_processors.values())
    assert pipe.unet.conv_in.weight.is_contiguous()

    monkeypatch.setenv("STUDIO_COMPILE", "1")
    assert not loaders.compile_wanted("cpu"), "no torch.compile on the CPU"
    monkeypatch.setenv("STUDIO_COMPILE", "0")  # the layout only, no compile here
    loaders.tune_sd(pipe, "cuda")
    assert pipe.tuning == {"replaced_attention": 0, "channels_last": True, "compiled": False,
                           "compile": "STUDIO_COMPILE=0"}
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert pipe.vae.encoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)


def test_compile_is_on_by_default_on_ampere_cuda_only_and_never_on_zero_gpu(monkeypatch):
    import torch

    import pipelines.models.device as device
    from core.errors import StudioError
    from pipelines.models.unet_compile import CompileChoice, compile_choice

    monkeypatch.delenv("STUDIO_COMPILE", raising=False)
    card = {"capability": (9, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: card["capability"])
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    assert compile_choice("cuda") == CompileChoice(True, "auto: compute capability 9.0")  # H100
    assert compile_choice("cuda:1").on
    card["capability"] = (7, 5)  # a T4
    assert compile_choice("cuda") == CompileChoice(False, "auto: compute capability 7.5 < 8.0")
    monkeypatch.setenv("STUDIO_COMPILE", "1")  # forced on any CUDA card ...
    assert compile_choice("cuda").on
    assert not compile_choice("cpu").on and not compile_choice("mps").on  # ... never elsewhere
    monkeypatch.setenv("STUDIO_COMPILE", "auto")
    card["capability"] = (8, 0)
    assert compile_choice("cuda").on
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert compile_choice("cuda") == CompileChoice(False, "auto: no C compiler for Triton's launcher")
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    monkeypatch.setenv("STUDIO_COMPILE", "0")
    assert not compile_choice("cuda").on
    monkeypatch.setenv("STUDIO_COMPILE", "1")
    monkeypatch.setattr(device, "ZERO_GPU", True)
    assert not compile_choice("cuda").on and "ZeroGPU" in compile_choice("cuda").reason
    monkeypatch.setenv("STUDIO_COMPILE", "yes")
    with pytest.raises(StudioError, match="STUDIO_COMPILE must be 0, 1 or auto"):
        compile_choice("cuda")


def test_regional_compile_covers_every_transformer_block_and_changes_no_output(studio):
    """compile_unet compiles the repeated blocks in place (the UNet stays a diffusers UNet, so LoRA
    loading and configs keep working) and gives the eager output; the eager backend stands in for
    inductor here (CPU)."""
    import torch
    from diffusers import UNet2DConditionModel

    from pipelines.models.unet_compile import compile_unet

    location = studio.registry.resolve("mask_model").location
    unet = UNet2DConditionModel.from_pretrained(location, subfolder="unet").eval()
    sample = torch.randn(2, unet.config.in_channels, 8, 8, generator=torch.Generator().manual_seed(0))
    hidden = torch.randn(2, 77, unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager = unet(sample, 10, hidden).sample
        blocks = [m for m in unet.modules() if type(m).__name__ == "BasicTransformerBlock"]
        assert compile_unet(unet, backend="eager") == len(blocks) > 0
        assert all(block._compiled_call_impl is not None for block in blocks)
        compiled = unet(sample, 10, hidden).sample
    assert isinstance(unet, UNet2DConditionModel)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)


# -- nothing of ours reads the device inside a denoising loop -------------------------------------------------

class HostReads:
    """Counts tensor -> host reads (``item``, ``tolist``, ``cpu``, ``numpy``, ``bool``/``float``/``int``
    of a tensor), each a GPU sync on CUDA, made between a pipe's first UNet call and its VAE decode:
    the denoising loop. Counted on the CPU, where the same code runs."""

    METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")

    def __init__(self, monkeypatch, pipe):
        import torch

        self.count, self.armed = 0, False
        for name in self.METHODS:
            original = getattr(torch.Tensor, name)

            def read(tensor, *args, _original=original, **kwargs):
                self.count += self.armed
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, read)
        unet_forward, vae_decode = pipe.unet.forward, pipe.vae.decode

        def arm(*args, **kwargs):
            self.armed = True
            return unet_forward(*args, **kwargs)

        def disarm(*args, **kwargs):
            self.armed = False
            return vae_decode(*args, **kwargs)

        monkeypatch.setattr(pipe.unet, "forward", arm)
        monkeypatch.setattr(pipe.vae, "decode", disarm)

    def take(self) -> int:
        count, self.count, self.armed = self.count, 0, False
        return count


def test_our_denoising_loops_read_no_more_device_values_than_stock_img2img(tiny_pipe, studio, monkeypatch):
    """Sound to music (differential img2img: the change map and the source blend every step) and style
    interpolation (conditioning read from the request's one encoding, DDIM) make no host read of
    their own inside the loop: as many as stock diffusers img2img with the same scheduler and steps."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    from pipelines.signal import spectrogram

    from pipelines.models import style_embedding

    from pipelines.systems import style_interpolation
    from pipelines.schema.settings import StyleInterpolationSettings

    sound = everyday_sound(5.0)
    image = spectrogram.audio_to_image(sound[None], spectrogram.RIFFUSION).convert("RGB")
    settings = SoundToMusicSettings(steps=6, strength=0.8, scheduler="ddim")
    reads = HostReads(monkeypatch, tiny_pipe)
    sound_to_music(tiny_pipe, sound, settings)
    ours = reads.take()
    ddim = DDIMScheduler.from_config(tiny_pipe.scheduler.config)
    stock = StableDiffusionImg2ImgPipeline(**{**tiny_pipe.components, "scheduler": ddim}, requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    stock(settings.prompt, image=image, strength=0.8, num_inference_steps=6, guidance_scale=settings.guidance,
          generator=torch.Generator().manual_seed(0))
    theirs = reads.take()
    assert ours <= theirs, f"sound to music reads {ours} device values in its loop, stock img2img {theirs}"

    pipe = studio.manager.get_cpu("riffusion")
    pipe.set_progress_bar_config(disable=True)
    styles = style_embedding.StyleLibrary(studio.registry.resolve("music_styles").location).get(["jazz", "rock"])
    reads = HostReads(monkeypatch, pipe)
    style_interpolation.apply_styles(pipe, sound, styles, settings=StyleInterpolationSettings(steps=6, strength=0.7))
    ours = reads.take()
    stock = StableDiffusionImg2ImgPipeline(**{**pipe.components, "scheduler": style_interpolation.make_scheduler(pipe)},
                                           requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    stock("*", image=image, strength=0.7, num_inference_steps=6, guidance_scale=5.0,
          generator=torch.Generator().manual_seed(0))
    theirs = reads.take()
    assert ours <= theirs, f"style interpolation reads {ours} device values in its loop, stock img2img {theirs}"
