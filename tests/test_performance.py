"""Performance changes that must not change results: batched windows, the honest step count."""

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.systems import masked_img2img
from pipelines.schema.settings import SoundToMusicSettings

FAST = dict(steps=4, strength=0.75)  # 3 DDIM steps per window on the tiny model
REPO_CONFIGS = Path(__file__).resolve().parents[1] / "pipelines" / "models" / "building" / "fullsize_configs.json"


@pytest.fixture(scope="module")
def tiny_pipe(studio):
    pipe = studio.manager.get_cpu("mask_model")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pndm_pipe(tiny_pipe):
    """The tiny model with the real riffusion repo's scheduler (PNDM, from its verbatim config)."""
    from diffusers import PNDMScheduler

    config = json.loads(REPO_CONFIGS.read_text())["riffusion--riffusion-model-v1"]
    scheduler = PNDMScheduler.from_config(config["scheduler/scheduler_config.json"]["content"])
    pipe = type(tiny_pipe)(**{**tiny_pipe.components, "scheduler": scheduler}, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sound_to_music(pipe, audio, settings, **kwargs):
    """The whole sound-to-music path as the Studio runs it: the model half, then the CPU half."""
    return masked_img2img.finish(masked_img2img.render_with_model(pipe, audio, settings, **kwargs), settings)


def everyday_sound(seconds: float, rate: int = 44100) -> np.ndarray:
    """Noise bursts and a gliding tone, different in every window (so windows are not interchangeable)."""
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * (200 + 60 * t) * t)
    return (tone + 0.2 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 0.7 * t) > 0.3)).astype(np.float32)


@pytest.mark.slow
def assert_same_sound(a: np.ndarray, b: np.ndarray) -> None:
    """The same music up to Griffin-Lim's answer to pixels one 8-bit level apart (batched float rounding):
    that moves a few samples by up to a few percent of full scale (seen: 0.0107 at 103, 0.0029 at 595 and
    0.036 at 850 of 529,200 samples, and 0.6% of samples over 0.01, depending on the tiny models' build),
    so the bound is on how many samples move by more than 1% (under 2%) and on the mean difference, not on
    the worst sample. Two different windows' audio differ by ~0.1 on average."""
    difference = np.abs(a - b)
    assert difference.mean() < 1e-3, difference.mean()
    assert np.mean(difference > 1e-2) < 2e-2, np.mean(difference > 1e-2)


def test_batched_windows_give_the_same_music_as_one_at_a_time(tiny_pipe):
    """Same seed, same audio: 3 windows one at a time, in one batch, and as a batch of 2 plus 1."""
    sound = everyday_sound(12.0)  # 3 windows of 5.12 s
    settings = SoundToMusicSettings(prompt="funk drums", **FAST)
    alone = sound_to_music(tiny_pipe, sound, settings, batch_size=1)
    assert alone.parameters["windows"] == 3
    first = np.asarray(alone.output_spectrogram)[:, :512].astype(int)
    assert np.abs(first - np.asarray(alone.output_spectrogram)[:, 512:1024].astype(int)).max() > 10, \
        "windows must differ, or swapping their noise would go unnoticed"
    for batch in (3, 2):
        together = sound_to_music(tiny_pipe, sound, settings, batch_size=batch)
        difference = np.abs(np.asarray(together.output_spectrogram, dtype=int) -
                            np.asarray(alone.output_spectrogram, dtype=int))
        assert difference.max() <= 1, f"batch {batch}: pixels differ by up to {difference.max()} levels"
        assert_same_sound(together.audio, alone.audio)
        assert together.parameters == alone.parameters


def test_a_batch_of_windows_with_one_seed_each_matches_the_windows_alone(tiny_pipe):
    """The diffusion step alone, on two different windows: batched latents equal the separate runs."""
    import torch
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(2)]
    maps = [Image.new("L", (64, 64), 120), Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8))]
    masked = masked_img2img.with_scheduler(tiny_pipe, "ddim")

    def run(indices):
        return masked(prompt=["a saxophone"] * len(indices), image=[images[i] for i in indices], strength=0.8,
                      num_inference_steps=5, guidance_scale=8.0, output_type="latent",
                      generator=[torch.Generator().manual_seed(7) for _ in indices],
                      change_map=[maps[i] for i in indices]).images

    together = run([0, 1])
    alone = torch.cat([run([0]), run([1])])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(alone[0], alone[1], atol=1e-2), "the two windows must differ"


@pytest.mark.parametrize("steps,strength,scheduler,expected", [
    (50, 0.8, "repo", 41),  # PNDM's PLMS warm-up repeats a timestep: one more than 50 x 0.8
    (50, 0.8, "ddim", 40),
    (25, 0.8, "dpm++", 20),  # the fast preset
    (2, 1.0, "repo", 3),
])
def test_steps_that_run_follow_the_scheduler(pndm_pipe, steps, strength, scheduler, expected):
    settings = SoundToMusicSettings(steps=steps, strength=strength, scheduler=scheduler)
    assert masked_img2img.steps_that_run(pndm_pipe, settings) == expected


@pytest.mark.slow
def test_progress_and_parameters_report_the_steps_that_ran(pndm_pipe):
    """PNDM at 5 steps x 0.8 runs 5 UNet calls, not 4: progress says so, and so does the result."""
    import torch

    messages = []
    calls = []
    unet_forward = pndm_pipe.unet.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return unet_forward(*args, **kwargs)

    settings = SoundToMusicSettings(prompt="funk drums", steps=5, strength=0.8)
    pndm_pipe.unet.forward = counted
    try:
        with torch.no_grad():
            result = sound_to_music(pndm_pipe, everyday_sound(2.0), settings,
                                                   on_progress=lambda fraction, message: messages.append(message))
    finally:
        del pndm_pipe.unet.forward
    assert len(calls) == 5 == masked_img2img.steps_that_run(pndm_pipe, settings)
    assert result.parameters["steps_run"] == 5
    assert "window 1 of 1: step 5 of 5" in messages
    assert not any("of 4" in message for message in messages)


# -- ZeroGPU start without the unpublished models -------------------------------------------------------

@pytest.fixture
def zero_gpu(monkeypatch):
    """A simulated ZeroGPU: the flag set, and a stand-in ``spaces`` whose GPU decorator records durations."""
    import sys
    import types

    import pipelines.models.device as device
    import pipelines.host as studio_module  # preload and signal_device read the flag there

    durations = []

    def GPU(duration=60):  # noqa: N802  (spaces' own name)
        def decorate(fn):
            def on_gpu(*args, **kwargs):
                durations.append(duration)
                return fn(*args, **kwargs)
            return on_gpu
        return decorate

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    monkeypatch.setattr(device, "ZERO_GPU", True)
    monkeypatch.setattr(studio_module, "ZERO_GPU", True)
    return durations


@pytest.mark.slow
def test_zero_gpu_start_survives_missing_unpublished_models(zero_gpu, monkeypatch, tmp_path):
    """The classifiers and the AMUSE VAE absent: the rest is preloaded, the app serves, and the About
    tab names what is missing and which tabs need it; a tab that needs it says so when used."""
    from gradio_client import Client

    import app
    from conftest import free_port
    from pipelines.studio import Studio

    monkeypatch.setenv("STUDIO_MODEL_GENRE_CLASSIFIER", str(tmp_path / "no-genre"))
    monkeypatch.setenv("STUDIO_MODEL_AMUSE_VAE", str(tmp_path / "no-vae"))
    studio = Studio(profile="tiny", device="cpu")
    studio.preload()
    where = {row["name"]: row["where"] for row in studio.describe()["models"]}
    assert set(studio.unavailable) == {"genre_classifier", "amuse"}
    assert where["genre_classifier"] == where["amuse"] == "not loaded"
    assert all(place != "not loaded" for name, place in where.items() if name not in studio.unavailable)
    missing = {row["model"]: row["tabs"] for row in studio.describe()["unavailable"]}
    assert missing == {"genre_classifier": ["Music to image"], "amuse": ["Playlist to music"]}

    demo = app.queue(app.build_demo(studio))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        summary, _ = client.predict(api_name="/status")
        assert "ZeroGPU" in summary and "Not loaded at start" in summary
        assert "genre_classifier** (needed by Music to image)" in summary and "no-genre" in summary
        assert "amuse** (needed by Playlist to music)" in summary and "no-vae" in summary
        caption, songs = client.predict(None, "a quiet forest at dawn", api_name="/recommend_songs")
        assert caption == "a quiet forest at dawn" and songs  # a tab with its models keeps working
        assert zero_gpu, "the request must have run inside the stand-in spaces.GPU"
    finally:
        demo.close()


def test_preload_keeps_going_past_a_missing_model(zero_gpu):
    """Fast twin of the test above: the Studio's preload with stand-in loaders, one of them missing."""
    from core.errors import ModelUnavailableError
    from pipelines.studio import TAB_MODELS, Studio

    studio = Studio(profile="tiny", device="cpu")
    assert set(studio.manager.names()) == {name for names in TAB_MODELS.values() for name in names}

    def missing():
        raise ModelUnavailableError("The 'emotion_classifier' model is not provided.")

    for name in studio.manager.names():
        studio.manager.register(name, (lambda: torch_module()) if name != "emotion_classifier" else missing,
                                replace=True)
    studio.preload()
    assert studio.unavailable == {"emotion_classifier": "The 'emotion_classifier' model is not provided."}
    assert studio.describe()["unavailable"] == [{"model": "emotion_classifier", "tabs": ["Music to image"],
                                                 "message": "The 'emotion_classifier' model is not provided."}]
    placed = [row["name"] for row in studio.manager.status() if row["where"] == "cpu"]
    assert len(placed) == len(studio.manager.names()) - 1


def torch_module():
    import torch

    return torch.nn.Linear(2, 2)


def test_the_fast_preset_is_dpm_solver_at_25_steps_and_half_the_unet_calls(pndm_pipe):
    from core.errors import InputError

    paper, fast = SoundToMusicSettings.preset("paper"), SoundToMusicSettings.preset("fast", seed=3)
    assert paper == SoundToMusicSettings()  # the paper preset is the defaults
    assert (fast.steps, fast.scheduler, fast.seed, fast.strength) == (25, "dpm++", 3, 0.8)
    assert masked_img2img.steps_that_run(pndm_pipe, paper) == 41
    assert masked_img2img.steps_that_run(pndm_pipe, fast) == 20
    with pytest.raises(InputError, match="Unknown preset 'turbo'"):
        SoundToMusicSettings.preset("turbo")


# -- GPU speed switches --------------------------------------------------------------------------------------

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


@pytest.mark.slow
def test_batched_style_windows_give_the_same_music_as_one_at_a_time(studio):
    """Style interpolation: 3 windows one at a time and as a batch of 2 plus 1, same seed, same audio."""
    from pipelines.models import style_embedding
    from pipelines.systems import style_interpolation
    from pipelines.schema.settings import StyleInterpolationSettings

    pipe = studio.manager.get_cpu("riffusion")
    pipe.set_progress_bar_config(disable=True)
    styles = style_embedding.StyleLibrary(studio.registry.resolve("music_styles").location).get(["jazz"])
    settings = StyleInterpolationSettings(steps=4, strength=0.7)
    sound = everyday_sound(12.0)
    alone = style_interpolation.apply_styles(pipe, sound, styles, settings=settings, device="cpu", batch_size=1)
    together = style_interpolation.apply_styles(pipe, sound, styles, settings=settings, device="cpu", batch_size=2)
    first = np.asarray(alone.output_spectrogram, dtype=int)
    assert np.abs(first[:, :512] - first[:, 512:1024]).max() > 10, "windows must differ"
    assert np.abs(np.asarray(together.output_spectrogram, dtype=int) - first).max() <= 1
    assert_same_sound(together.audio, alone.audio)


def test_window_batch_size_follows_the_device_and_its_free_memory(monkeypatch):
    import torch

    from core.errors import StudioError
    from pipelines.signal.windows import window_batch_size

    monkeypatch.delenv("STUDIO_WINDOW_BATCH", raising=False)
    assert window_batch_size("cpu", 5) == 1 and window_batch_size("mps", 5) == 1
    GiB = 2**30
    memory = {"free": 30 * GiB, "total": 80 * GiB}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (memory["free"], memory["total"]))
    assert window_batch_size("cuda", 12) == 4  # at most 4
    assert window_batch_size("cuda", 3) == 3  # never more than the sound has
    memory["free"] = int(2.5 * GiB)
    assert window_batch_size("cuda", 12) == 2  # 1 GiB of activations a window
    memory.update(free=12 * GiB, total=16 * GiB)
    assert window_batch_size("cuda", 12) == 1  # a T4-class card: one at a time
    monkeypatch.setenv("STUDIO_WINDOW_BATCH", "3")
    assert window_batch_size("cpu", 12) == 3 and window_batch_size("cpu", 2) == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("STUDIO_WINDOW_BATCH", bad)
        with pytest.raises(StudioError, match="STUDIO_WINDOW_BATCH must be a whole number"):
            window_batch_size("cpu", 4)


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
