"""Spectrogram codec: audio <-> mel spectrogram <-> image, with the riffusion and audio-diffusion presets.

One job per module, as riffusion splits it:

* :mod:`.params`: ``SpectrogramParams``, the presets, riffusion's ``ExifTags``.
* :mod:`.dsp`: STFT, window and cached mel bases shared by the others.
* :mod:`.codec`: audio -> mel -> image and image -> mel.
* :mod:`.inversion`: mel -> audio (fast mel-consistent Griffin-Lim) and image -> audio.
* :mod:`.image_files`: metadata, PNG files, checked uploads, image composites.

Everything numeric runs in torch on the ``device`` given, so the device manager can put it on a
GPU. The names below are the public surface; importers use ``spectrogram.<name>``.
"""

from pipelines.signal.spectrogram.codec import audio_to_image, audio_to_mel, image_to_mel, mel_to_image, stft_magnitude
from pipelines.signal.spectrogram.image_files import (
    as_mono_spectrogram,
    image_bytes,
    load_image,
    read_metadata,
    save_image,
    side_by_side,
)
from pipelines.signal.spectrogram.inversion import FAST_ITERATIONS, image_to_audio, mel_to_audio, mel_to_linear
from pipelines.signal.spectrogram.params import (
    AUDIO_DIFFUSION,
    INT16_SCALE,
    PNG_TEXT_KEY,
    PRESETS,
    RIFFUSION,
    ExifTags,
    SpectrogramParams,
    get_params,
)

__all__ = [
    "AUDIO_DIFFUSION",
    "FAST_ITERATIONS",
    "INT16_SCALE",
    "PNG_TEXT_KEY",
    "PRESETS",
    "RIFFUSION",
    "ExifTags",
    "SpectrogramParams",
    "as_mono_spectrogram",
    "audio_to_image",
    "audio_to_mel",
    "get_params",
    "image_bytes",
    "image_to_audio",
    "image_to_mel",
    "load_image",
    "mel_to_audio",
    "mel_to_image",
    "mel_to_linear",
    "read_metadata",
    "save_image",
    "side_by_side",
    "stft_magnitude",
]
