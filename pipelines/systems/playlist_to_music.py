"""Playlist to music (AMUSE): a VAE's "taste" of a playlist conditions a spectrogram diffusion UNet.

1. Every track becomes one audio-diffusion mel image (22.05 kHz, 256x256, dB scale, ~5.9 s).
   We take the MIDDLE 5.9 s of each track by default (``slice_position="middle"``): the original
   notebook took the first 256 frames, which for most songs is an intro or a fade-in. ``"first"``
   gives the original's choice. Tracks shorter than a slice are padded with silence at the end.
2. ``PlaylistVAE`` (the original's encoder: 5 x [conv stride 2, BatchNorm, LeakyReLU, residual
   block], widths 32..512, latent 32) encodes each image, fed as pixels / 255 in [0, 1] as the
   original did. cat(mu, logvar) (64 values) is min-max normalised to [-1, 1] per track.
3. The playlist's taste vector is the MEAN of its tracks' vectors, shape (1, 1, 64). How the
   original pooled a playlist is not published; averaging is our reading.
4. A UNet2DConditionModel (1 channel, 256x256, cross_attention_dim 64) denoises seeded noise with
   the taste vector as ``encoder_hidden_states`` and classifier-free guidance against the
   encoding of an all-zero image, unscaled (the original's unconditional vector), guidance 7.5.
   The original sampled with DDPM over all 1000 training steps; we default to 50 steps of the
   same DDPM schedule (diffusers' ``set_timesteps`` skips timesteps correctly), so a CPU or a
   shared GPU finishes in reasonable time; ``steps=1000`` reproduces the original, and
   ``sampler="ddim"`` gives deterministic DDIM (eta 0) on the same trained schedule.
5. The generated image (in [-1, 1], as the UNet was trained on ``Normalize([0.5], [0.5])`` images)
   becomes a mel image and then audio through ``spectrogram.image_to_audio(AUDIO_DIFFUSION)``.

The AMUSE VAE weights are not published: the ``amuse_vae`` role needs a local folder (or the tiny
profile). A folder for ``PlaylistVAE.from_pretrained`` holds ``config.json`` and
``diffusion_pytorch_model.safetensors``; parameter names follow the original notebook
(``encoder.encoder.<i>...``, ``encoder.fc_mu``, ``encoder.fc_var``), so a converted state dict
of the original (decoder keys dropped) loads as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.errors import Cancelled, InputError

from pipelines.signal import audio as audio_io
from pipelines.schema import limits
from pipelines.signal import spectrogram
from pipelines.models.playlist_vae import CONDITION_DIM, IMAGE_SIZE, TRAIN_TIMESTEPS, PlaylistVAE  # noqa: F401  (the model, in its own module)
from pipelines.schema.results import Result
from pipelines.schema.settings import SLICE_POSITIONS, PlaylistToMusicSettings

PARAMS = spectrogram.AUDIO_DIFFUSION
SAMPLE_RATE = PARAMS.sample_rate  # 22050




def image_tensor(images: Sequence[Any]) -> torch.Tensor:
    """(n, 1, 256, 256) float in [0, 1] from 256x256 grayscale mel images (PIL or uint8 arrays)."""
    arrays = []
    for image in images:
        array = np.asarray(image.convert("L") if hasattr(image, "convert") else image)
        if array.shape != (IMAGE_SIZE, IMAGE_SIZE):
            raise InputError(f"Mel images must be {IMAGE_SIZE}x{IMAGE_SIZE} grayscale; got {array.shape}.")
        arrays.append(array.astype(np.float32) / 255.0)
    return torch.from_numpy(np.stack(arrays))[:, None]


def _normalise(vectors: torch.Tensor) -> torch.Tensor:
    """Min-max to [-1, 1] per row, as the original; a constant row becomes zeros instead of 0/0."""
    low = vectors.amin(dim=-1, keepdim=True)
    high = vectors.amax(dim=-1, keepdim=True)
    span = high - low
    return torch.where(span > 0, 2 * (vectors - low) / span.clamp(min=1e-12) - 1, torch.zeros_like(vectors))


@torch.no_grad()
def _encodings(vae: PlaylistVAE, pixels: torch.Tensor) -> torch.Tensor:
    """(n, 64) float32: each image's raw cat(mu, logvar), BatchNorm in eval mode."""
    was_training = vae.training
    vae.eval()  # BatchNorm's running statistics, never the batch's: a track's vector must not depend on the others
    try:
        mu, logvar = vae.encode(pixels.to(vae.device, vae.dtype))
    finally:
        vae.train(was_training)
    return torch.cat([mu, logvar], dim=1).float()


def track_vectors(vae: PlaylistVAE, track_images: Sequence[Any] | torch.Tensor) -> torch.Tensor:
    """(n, 64): each track's cat(mu, logvar), min-max normalised to [-1, 1]."""
    pixels = track_images if isinstance(track_images, torch.Tensor) else image_tensor(track_images)
    if pixels.shape[0] == 0:
        raise InputError("Give at least one track.")
    return _normalise(_encodings(vae, pixels))


def taste_vector(vae: PlaylistVAE, track_images: Sequence[Any] | torch.Tensor) -> torch.Tensor:
    """(1, 1, 64): the mean of the tracks' normalised vectors (our reading; the pooling is unpublished)."""
    return track_vectors(vae, track_images).mean(dim=0).reshape(1, 1, -1)


def unconditional_vector(vae: PlaylistVAE) -> torch.Tensor:
    """(1, 1, 64): the raw cat(mu, logvar) of an all-zero image, NOT min-max scaled.

    The original (VCDM notebook, sampling cells) scales only the conditional vectors; the
    unconditional one is the VAE's encoding of zeros as it comes out, so ours is too.
    """
    side = vae.config.image_size
    zeros = torch.zeros(1, vae.config.in_channels, side, side)
    return _encodings(vae, zeros).reshape(1, 1, -1)


# -- tracks -> mel images --------------------------------------------------------------------------


def track_slice(samples: np.ndarray, position: str = "middle") -> np.ndarray:
    """One image's worth of mono samples (256 * 512 - 1 at 22.05 kHz), zero-padded when shorter."""
    if position not in SLICE_POSITIONS:
        raise InputError(f"Unknown slice position {position!r}: use one of {', '.join(SLICE_POSITIONS)}.")
    mono = np.asarray(samples, dtype=np.float32).reshape(-1)
    size = PARAMS.window_samples
    if mono.size <= size:
        return np.pad(mono, (0, size - mono.size))
    start = (mono.size - size) // 2 if position == "middle" else 0
    return mono[start:start + size]


def track_image(samples: np.ndarray, position: str = "middle"):
    """The audio-diffusion mel image (PIL, 256x256, L) of one track's slice."""
    image = spectrogram.audio_to_image(track_slice(samples, position)[None], PARAMS)
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):  # the preset's geometry; a guard against a changed preset
        raise RuntimeError(f"Expected a {IMAGE_SIZE}x{IMAGE_SIZE} mel image, got {image.size}.")
    return image


def load_tracks(tracks_audio: Any) -> list[audio_io.Audio]:
    """Check the playlist and load every track as mono 22.05 kHz (InputError names the track)."""
    if tracks_audio is None or isinstance(tracks_audio, (str, bytes, np.ndarray)) or not isinstance(
        tracks_audio, Sequence
    ):
        raise InputError("Give the playlist as a list of audio files (1 to 10 tracks).")
    if not 1 <= len(tracks_audio) <= limits.MAX_PLAYLIST_TRACKS:
        raise InputError(f"A playlist must have 1 to {limits.MAX_PLAYLIST_TRACKS} tracks; got {len(tracks_audio)}.")
    loaded = []
    for number, track in enumerate(tracks_audio, start=1):
        if isinstance(track, dict) and "path" in track:  # gradio FileData from API callers
            track = track["path"]
        try:
            loaded.append(audio_io.load_audio(track, SAMPLE_RATE, channels=1, max_seconds=limits.MAX_TRACK_SECONDS))
        except InputError as error:
            raise InputError(f"Track {number}: {error}") from error
    return loaded


# -- generation ------------------------------------------------------------------------------------


@dataclass
class PlaylistMusicResult(Result):
    audio: np.ndarray  # float32 (1, n) at sample_rate, peak 0.9
    sample_rate: int
    image: Any  # PIL L 256x256: the generated mel image (carries its spectrogram metadata)
    track_images: list[Any]  # the mel image of each input track's slice

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def as_audio(self) -> audio_io.Audio:
        return audio_io.Audio(self.audio, self.sample_rate)

    def image_outputs(self) -> dict[str, Any]:
        tracks = {f"track-{i + 1}": image for i, image in enumerate(self.track_images)}
        return {"generated-spectrogram": self.image, **tracks}


def make_scheduler(scheduler, sampler: str = "ddpm"):
    """A fresh scheduler of the asked kind on the model's training schedule (the shared one is never mutated)."""
    from diffusers import DDIMScheduler, DDPMScheduler

    kind = DDIMScheduler if sampler == "ddim" else DDPMScheduler
    config = scheduler.config if scheduler is not None else DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS).config
    return kind.from_config(config)


def playlist_to_music(
    unet,
    vae: PlaylistVAE,
    scheduler,
    tracks_audio: Sequence[Any],
    settings: PlaylistToMusicSettings = PlaylistToMusicSettings(),
    *,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[float, str], None] | None = None,
) -> PlaylistMusicResult:
    """A ~5.9 s clip in the playlist's taste.

    tracks_audio: 1 to 10 tracks, each a file path, ``(samples, rate)``, gradio's ``(rate, samples)``
        or an ``audio.Audio``; every one is checked by ``audio.load_audio`` (silent, damaged, too
        short or too long tracks raise InputError naming the track).
    unet, vae: on the same device; the run happens there. scheduler: the UNet repo's (its config
        gives the training schedule) or None for DDPMScheduler(1000).
    settings: steps, guidance (classifier-free; 1 runs the conditional branch only, 0 the
        unconditional only), seed, sampler and which slice of each track the VAE sees.
    should_stop: polled after every step (raises Cancelled); on_progress(fraction, text).
    """
    settings.validate()
    steps, guidance, seed = settings.steps, settings.guidance, settings.seed
    sampler, slice_position = settings.sampler, settings.slice_position
    config = unet.config
    if config.in_channels != 1 or config.sample_size != IMAGE_SIZE or config.cross_attention_dim != CONDITION_DIM:
        raise InputError(
            f"The playlist UNet must take 1-channel {IMAGE_SIZE}x{IMAGE_SIZE} images conditioned on "
            f"{CONDITION_DIM} values; this one has {config.in_channels} channels, sample size "
            f"{config.sample_size}, cross-attention {config.cross_attention_dim}."
        )
    tracks = load_tracks(tracks_audio)
    images = [track_image(t.samples[0], slice_position) for t in tracks]
    if on_progress:
        on_progress(0.0, f"Encoded {len(images)} track(s)")

    device, dtype = unet.device, unet.dtype
    cond = taste_vector(vae, images).to(device, dtype)
    uncond = unconditional_vector(vae).to(device, dtype)
    guidance = float(guidance)
    if guidance == 1.0:
        context = cond  # uncond + 1 * (cond - uncond) is cond: skip the unconditional pass
    elif guidance == 0.0:
        context = uncond
    else:
        context = torch.cat([uncond, cond])

    sched = make_scheduler(scheduler, sampler)
    sched.set_timesteps(int(steps), device=device)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))  # same noise on every device
    sample = torch.randn((1, 1, IMAGE_SIZE, IMAGE_SIZE), generator=generator).to(device, dtype)
    sample = sample * sched.init_noise_sigma
    total = len(sched.timesteps)
    with torch.no_grad():
        for i, t in enumerate(sched.timesteps):
            model_input = sched.scale_model_input(sample, t)
            batch = model_input.expand(context.shape[0], -1, -1, -1)
            noise = unet(batch, t, encoder_hidden_states=context).sample
            if context.shape[0] == 2:
                noise_uncond, noise_cond = noise.chunk(2)
                noise = noise_uncond + guidance * (noise_cond - noise_uncond)
            # DDPM's variance noise comes from the same seeded CPU generator
            sample = sched.step(noise, t, sample, generator=generator).prev_sample
            if on_progress:
                on_progress((i + 1) / total, f"Denoising step {i + 1}/{total}")
            if should_stop is not None and should_stop():
                raise Cancelled()

    image = _to_mel_image(sample)
    audio = spectrogram.image_to_audio(image, PARAMS, device=device, seed=int(seed))
    parameters = {
        "pipeline": "playlist_to_music",
        "tracks": len(tracks),
        **settings.as_dict(),
        "train_timesteps": int(sched.config.num_train_timesteps),
        "pooling": "mean of per-track min-max normalised cat(mu, logvar)",
        "track_seconds": [round(t.duration, 3) for t in tracks],
    }
    return PlaylistMusicResult(audio=audio, sample_rate=SAMPLE_RATE, image=image, track_images=images,
                               parameters=parameters)


def _to_mel_image(sample: torch.Tensor):
    """The UNet's [-1, 1] output as an audio-diffusion mel image with our spectrogram metadata."""
    from PIL import Image

    pixels = ((sample[0, 0].float().cpu() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    raw = Image.fromarray(pixels, mode="L")
    # round trip through the codec only to attach the preset's metadata; the pixels come back unchanged
    return spectrogram.mel_to_image(spectrogram.image_to_mel(raw, PARAMS), PARAMS, max_value=1.0)
