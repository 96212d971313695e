"""Style interpolation: MusicTI's time-varying textual inversion, with several styles mixed.

The system of "Style Embedding Interpolation in Music Generation" (kariander1/interp-music-style),
built on MusicTI (AAAI 2024):

1. a learned *style* is a small network, not one vector: for the diffusion timestep t it gives the
   token embedding v_t of the placeholder "*" (``StyleEmbedding``);
2. each style's v_t goes into its own copy of the token-embedding sequence of the prompt "*"; the
   copies are combined as sum(alpha_i * E_i), alpha normalised to sum 1, *before* CLIP's position
   embeddings and text transformer (``mix_token_embeddings``, ``StyleConditioner``). The
   unconditional prompt "" is untouched;
3. the content audio becomes a riffusion spectrogram, is VAE-encoded, pseudo-inverted in one step
   (x_t = q_sample(x0, t); eps = UNet(x_t, t, c_t); z = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps) and
   DDIM runs from the first int(strength * steps) timesteps with classifier-free guidance, the
   conditioning changing at every step (``apply_styles``; computed for all the steps at once, in
   one batched text-encoder call per request, ``StyleConditioner``);
4. the output image becomes audio; long inputs go in 5.12 s windows, crossfaded as in sound-to-music.

The style network and its folders (``style.safetensors`` + ``style.json``) are in ``style_embedding``;
``scripts/convert_musicti_checkpoint.py`` turns the original ``embeddings.pt`` into such a folder.

Imports torch at module level: load it lazily (studio.py imports pipelines inside its methods).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from core.errors import Cancelled, InputError

from pipelines.signal import audio as audio_io
from pipelines.schema import limits
from pipelines.signal import spectrogram, windows
from pipelines.schema.results import Result
from pipelines.schema.settings import StyleInterpolationSettings
from pipelines.models.style_embedding import Style, StyleEmbedding


# LDM's "linear" schedule is linspace(sqrt(b0), sqrt(b1))**2: diffusers calls that "scaled_linear"
DDIM_SCHEDULE = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1, "timestep_spacing": "leading",
    "thresholding": False, "rescale_betas_zero_snr": False,
}


# -- mixing and conditioning ---------------------------------------------------------------------------


def normalized_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """alpha normalised to sum 1; equal weights when none are given."""
    if weights is None:
        return [1.0 / count] * count
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def mix_token_embeddings(styles: Sequence[Style | StyleEmbedding], weights: Sequence[float] | None, t: int | torch.Tensor,
                         token_embeds: torch.Tensor, placeholder_mask: torch.Tensor) -> torch.Tensor:
    """sum_i alpha_i * E_i, where E_i is ``token_embeds`` with style i's v_t at the placeholder.

    token_embeds: (b, n, width) token embeddings of the prompt (before position embeddings);
    placeholder_mask: (b, n) bool, True where the placeholder token sits. Rows without a
    placeholder come back unchanged (so does every non-placeholder position).
    """
    alphas = normalized_weights(weights, len(styles))
    mixed = torch.zeros_like(token_embeds)
    for style, alpha in zip(styles, alphas):
        module = style.module if isinstance(style, Style) else style
        v = module(t).to(token_embeds.dtype)  # (1 or b, width)
        copy = token_embeds.clone()
        rows = placeholder_mask.nonzero(as_tuple=True)[0]
        copy[placeholder_mask] = v.expand(token_embeds.shape[0], -1)[rows]
        mixed = mixed + alpha * copy
    return mixed


def encode_with_token_embeddings(text_encoder, input_ids: torch.Tensor, token_embeds: torch.Tensor) -> torch.Tensor:
    """CLIP's last hidden state for ``input_ids`` with the token embeddings replaced by ``token_embeds``.

    CLIPTextModel.forward (transformers 5) takes no ``inputs_embeds``, so a forward hook swaps the
    token-embedding lookup's output: everything after it (position embeddings, causal mask,
    transformer, final layer norm, EOS pooling from the ids) stays exactly CLIP's own code.
    """
    lookup = text_encoder.get_input_embeddings()

    def replace(module, args, output):
        return token_embeds.to(output.device, output.dtype)

    handle = lookup.register_forward_hook(replace)
    try:
        return text_encoder(input_ids)[0]
    finally:
        handle.remove()


class StyleConditioner:
    """c_t for the prompt "*" with mixed styles, and the unchanged unconditional embedding of "".

    ``timesteps``: the timesteps a request will ask for (``start_timesteps``'s inversion step and
    the DDIM steps). Their c_t and the unconditional embedding are computed up front in ONE batched
    text-encoder call (rows: "", then "*" once per timestep, each with its own mixed v_t; every style
    network runs once on all the timesteps), so the denoising loop of every window only reads them.
    A timestep not given there is encoded when first asked for (one call each) and kept.
    ``encoder_calls`` counts the text-encoder calls made.
    """

    def __init__(self, tokenizer, text_encoder, styles: Sequence[Style], weights: Sequence[float] | None = None,
                 timesteps: Sequence[int] = ()):
        if not styles:
            raise InputError("Choose at least one style.")
        width = text_encoder.config.hidden_size
        for style in styles:
            if style.module.width != width:
                raise InputError(f"The style {style.name!r} was made for a text encoder of width {style.module.width}; "
                                 f"this model's is {width}.")
        placeholders = {s.placeholder for s in styles}
        if len(placeholders) != 1:
            raise InputError(f"The styles use different placeholders ({', '.join(sorted(placeholders))}).")
        self.placeholder = placeholders.pop()
        ids = tokenizer(self.placeholder, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise InputError(f"The placeholder {self.placeholder!r} is {len(ids)} tokens for this tokenizer, not one.")
        self.text_encoder, self.styles, self.weights = text_encoder, list(styles), weights
        device = text_encoder.device
        self.prompt_ids = self._ids(tokenizer, self.placeholder).to(device)
        self.placeholder_mask = self.prompt_ids == ids[0]
        self.encoder_calls = 0
        self._cache: dict[int, torch.Tensor] = {}
        wanted = list(dict.fromkeys(int(t) for t in timesteps))  # in order, each once
        rows = len(wanted)
        with torch.no_grad():
            lookup = text_encoder.get_input_embeddings()
            empty = self._ids(tokenizer, "").to(device)
            token_embeds = lookup(empty)
            if rows:
                token_embeds = torch.cat([token_embeds, self.token_embeddings(torch.tensor(wanted, device=device), rows)])
            hidden = self._encode(torch.cat([empty, self.prompt_ids.expand(rows, -1)]), token_embeds)
        self.unconditional = hidden[:1]
        self._cache.update((t, hidden[1 + i : 2 + i]) for i, t in enumerate(wanted))

    @staticmethod
    def _ids(tokenizer, text: str) -> torch.Tensor:
        return tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids

    def _encode(self, input_ids: torch.Tensor, token_embeds: torch.Tensor) -> torch.Tensor:
        self.encoder_calls += 1
        return encode_with_token_embeddings(self.text_encoder, input_ids, token_embeds)

    def token_embeddings(self, t: int | torch.Tensor, rows: int = 1) -> torch.Tensor:
        """(rows, n, width): the prompt's token embeddings with the mixed v_t at the placeholder, one
        row per timestep of ``t`` (an int for ``rows`` 1, else a (rows,) tensor)."""
        base = self.text_encoder.get_input_embeddings()(self.prompt_ids).expand(rows, -1, -1)
        return mix_token_embeddings(self.styles, self.weights, t, base, self.placeholder_mask.expand(rows, -1))

    @torch.no_grad()
    def __call__(self, t: int | torch.Tensor) -> torch.Tensor:
        """c_t: (1, 77, width) text-encoder output for "*" with the mixed style at timestep t."""
        key = int(t)
        if key not in self._cache:
            self._cache[key] = self._encode(self.prompt_ids, self.token_embeddings(key))
        return self._cache[key]


# -- the whole content-audio -> styled-audio path ---------------------------------------------------------


def check_style_mix(names: Sequence[str], weights: Sequence[float] | None) -> None:
    """1 to ``limits.MAX_STYLES`` styles, each named once, and, unless None (equal), one non-negative
    weight each, not all 0. A style named twice is refused, not merged: its weights would silently add
    up, and a repeated name is far more often a slip (another style meant) than a wish; the weights
    already say how much of a style to use (docs/LIMITS.md). Raises InputError."""
    style_count = len(names)
    if not 1 <= style_count <= limits.MAX_STYLES:
        raise InputError(f"Choose from 1 to {limits.MAX_STYLES} styles; got {style_count}.")
    repeated = next((name for index, name in enumerate(names) if name in names[:index]), None)
    if repeated is not None:
        raise InputError(f"Styles: {limits.shown(repeated)} is chosen more than once; choose each style once (to "
                         "hear more of a style, give it a larger weight).")
    if weights is None:
        return
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise InputError("Weights must be a list of numbers, one per style.")
    if len(weights) != style_count:
        raise InputError(f"Give one weight per style: {style_count} styles, {len(weights)} weights.")
    for i, w in enumerate(weights):
        limits.STYLE_WEIGHT.check(f"weight {i + 1}", w)
    if sum(weights) <= 0:
        raise InputError("At least one style weight must be above zero.")


def make_scheduler(pipe):
    """MusicTI's DDIM (LDM's schedule, 1000 training steps, eta 0), from the pipe's scheduler config."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(pipe.scheduler.config, **DDIM_SCHEDULE)


def start_timesteps(scheduler, strength: float, steps: int) -> tuple[int, list[int]]:
    """(t of the one-step inversion, the DDIM timesteps that run), as MusicTI's txt2img:
    inversion at int(strength * 1000), then DDIM over the first int(strength * steps) timesteps of
    the schedule (981, 961, ... for 50 steps), so 681, 661, ..., 1 for strength 0.7.
    """
    scheduler.set_timesteps(int(steps))
    run = [int(t) for t in scheduler.timesteps[len(scheduler.timesteps) - int(strength * steps):]]
    # int(1.0 * 1000) = 1000 is one past the last training step; the original never uses strength 1
    inversion = min(int(strength * scheduler.config.num_train_timesteps), scheduler.config.num_train_timesteps - 1)
    return inversion, run


@dataclass
class StyleInterpolationResult(Result):
    audio: np.ndarray  # (1, n) float32 at sample_rate, the content's length
    sample_rate: int
    content_spectrogram: Image.Image  # whole input, windows side by side
    output_spectrogram: Image.Image

    def image_outputs(self) -> dict[str, Image.Image]:
        return {"content-spectrogram": self.content_spectrogram, "output-spectrogram": self.output_spectrogram}


@torch.no_grad()
def _style_windows(pipe, scheduler, conditioner: StyleConditioner, images: list[Image.Image], strength: float,
                   steps: int, guidance: float, seed: int,
                   should_stop: Callable[[], bool] | None) -> tuple[list[Image.Image], list[int]]:
    """Style a batch of B window images at once (UNet batch B, or 2B with CFG); returns the B images
    and the timesteps that ran. Every window draws its posterior sample and its noise from its own
    generator seeded with ``seed``, in that order, so a window's result does not depend on the batch
    it is in (beyond floating-point rounding)."""
    device, dtype = pipe.unet.device, pipe.unet.dtype
    generators = [torch.Generator(device="cpu").manual_seed(int(seed)) for _ in images]  # same schedule per window
    images = [image.resize((512, 512), Image.Resampling.LANCZOS) if image.size != (512, 512) else image
              for image in images]  # as MusicTI's load_img
    pixels = pipe.image_processor.preprocess([image.convert("RGB") for image in images]).to(device, pipe.vae.dtype)
    posterior = pipe.vae.encode(pixels).latent_dist
    one = posterior.mean.shape[1:]
    sample = torch.stack([torch.randn(one, generator=g) for g in generators]).to(device, posterior.mean.dtype)
    x0 = (posterior.mean + posterior.std * sample).float() * pipe.vae.config.scaling_factor  # a draw, as LDM's encode

    t_inv, run = start_timesteps(scheduler, strength, steps)
    abar = scheduler.alphas_cumprod[t_inv].item()
    noise = torch.stack([torch.randn(one, generator=g) for g in generators]).to(device)
    x_t = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * noise  # q_sample
    batch = len(images)

    def text(t: int) -> torch.Tensor:
        return conditioner(t).to(dtype).expand(batch, -1, -1)  # the request's encoding of step t

    eps = pipe.unet(x_t.to(dtype), t_inv, encoder_hidden_states=text(t_inv)).sample.float()
    latents = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps  # one-step pseudo-inversion, no CFG

    use_cfg = guidance != 1.0  # as LDM: no unconditional pass at scale 1
    uncond = conditioner.unconditional.to(dtype).expand(batch, -1, -1)
    with pipe.progress_bar(total=len(run)) as progress:
        for t in run:
            cond = text(t)  # changes every step (the style depends on t): computed up front
            if use_cfg:
                out = pipe.unet(torch.cat([latents] * 2).to(dtype), t,
                                encoder_hidden_states=torch.cat([uncond, cond])).sample.float()
                eps_uncond, eps_cond = out.chunk(2)
                eps = eps_uncond + guidance * (eps_cond - eps_uncond)
            else:
                eps = pipe.unet(latents.to(dtype), t, encoder_hidden_states=cond).sample.float()
            latents = scheduler.step(eps, t, latents, eta=0.0).prev_sample
            progress.update()
            if should_stop is not None and should_stop():
                raise Cancelled()
    decoded = pipe.vae.decode((latents / pipe.vae.config.scaling_factor).to(pipe.vae.dtype)).sample
    return list(pipe.image_processor.postprocess(decoded.float(), output_type="pil")), run


def apply_styles(
    pipe,
    content_audio: np.ndarray,
    styles: Sequence[Style],
    weights: Sequence[float] | None = None,
    settings: StyleInterpolationSettings = StyleInterpolationSettings(),
    *,
    should_stop: Callable[[], bool] | None = None,
    device: str | None = None,
    overlap_seconds: float = windows.OVERLAP_SECONDS,
    on_progress: Callable[[float, str], None] | None = None,
    batch_size: int = 1,
    plan: windows.WindowPlan | None = None,
) -> StyleInterpolationResult:
    """Render the content audio in a mix of learned styles (MusicTI style interpolation).

    Args:
        pipe: a loaded Stable Diffusion (img2img) pipeline on a Riffusion model, already on its
            device; only its components are used (its own scheduler is left alone).
        content_audio: mono samples at 44.1 kHz, (n,) or (1, n); cut into 5.12 s windows.
        styles: 1 to 4 Style objects (their networks are moved to the pipe's device).
        weights: one non-negative weight per style, normalised to sum 1; None: equal.
        settings: strength, steps, guidance and seed (MusicTI's 0.7, 50, 5.0, 23 by default).
        should_stop: polled after every denoising step; True cancels (raises Cancelled).
        batch_size: windows styled together in one UNet batch (1: one at a time); the music is the
            same either way (each window keeps its own generator seeded with ``settings.seed``).
        plan: the request's ``windows.plan_windows`` for the content (the Studio's, made once);
            None plans here with ``overlap_seconds``.
    """
    check_style_mix([style.name for style in styles], weights)
    settings.validate()
    strength, steps, guidance, seed = settings.strength, settings.steps, settings.guidance, settings.seed
    params = spectrogram.RIFFUSION
    samples = np.asarray(content_audio, dtype=np.float32)
    if samples.ndim == 2 and samples.shape[0] == 1:
        samples = samples[0]
    if samples.ndim != 1 or samples.size == 0:
        raise InputError(f"The content audio must be mono and not empty; got shape {np.shape(content_audio)}.")
    if not np.all(np.isfinite(samples)):
        raise InputError("The content audio holds NaN or infinite samples.")
    if samples.size > limits.MAX_INPUT_SECONDS * params.sample_rate:
        raise InputError(f"The content audio is longer than {limits.MAX_INPUT_SECONDS:g} s.")
    device = device or str(pipe.unet.device)
    for style in styles:
        style.module.to(pipe.unet.device).eval()
    scheduler = make_scheduler(pipe)
    inversion, run = start_timesteps(scheduler, strength, steps)  # the same in every window
    # every window's conditioning, once per request, in one batched text-encoder call
    conditioner = StyleConditioner(pipe.tokenizer, pipe.text_encoder, styles, weights, timesteps=[inversion, *run])

    def render(indices: list[int], contents: list[Image.Image]) -> list[Image.Image]:
        return _style_windows(pipe, scheduler, conditioner, contents, strength, steps, guidance, seed, should_stop)[0]

    done = windows.render_windows(samples, params, render, device=device, overlap_s=overlap_seconds,
                                  on_progress=on_progress, batch_size=int(batch_size), plan=plan)
    music = audio_io.peak_normalize(done.audio, headroom_db=1.0)
    parameters = {
        "pipeline": "style_interpolation",
        "styles": [s.name for s in styles],
        "weights": normalized_weights(weights, len(styles)),
        **settings.as_dict(),
        "scheduler": "DDIM (eta 0)",
        "inversion_timestep": inversion,
        "timesteps": run,
        "windows": len(done.inputs),
        "text_encoder_calls": conditioner.encoder_calls,
    }
    return StyleInterpolationResult(audio=music, sample_rate=params.sample_rate,
                                    content_spectrogram=spectrogram.side_by_side(done.inputs),
                                    output_spectrogram=spectrogram.side_by_side(done.outputs), parameters=parameters)
