"""The training data the recipes share: audio files of a folder, cut into windows, as spectrogram images.

``list_files`` finds a folder's files; ``audio_windows`` decodes one file into image-wide mono windows
(silent ones dropped); ``SpectrogramDataset`` turns every window of a folder into the app's own
spectrogram image; ``sd_pixels`` and ``unit_pixels`` turn those images into the tensors the recipes'
models take (Stable Diffusion's [-1, 1] RGB, the AMUSE VAE's [0, 1] grey). Every error is an
InputError that names the folder or the file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import InputError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")


def list_files(folder: str | Path, suffixes: Sequence[str], what: str) -> list[Path]:
    """Files with one of ``suffixes`` under ``folder`` (recursively), sorted; InputError when none."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"The data folder {root} does not exist or is not a folder.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"{root} holds no {what} ({', '.join(suffixes)}).")
    return files


def audio_windows(path: Path, params, *, min_peak: float = 1e-4) -> list[np.ndarray]:
    """Mono windows of one image's width (5.12 s for riffusion) at ``params.sample_rate``, no overlap;
    the last one zero-padded, windows that are (almost) silent dropped. InputError names the file."""
    from pipelines.signal import audio as audio_io
    from pipelines.signal import windows

    try:
        sound = audio_io.load_audio(path, params.sample_rate, channels=1, max_seconds=None, min_seconds=None,
                                    allow_silence=True)
    except InputError:
        raise  # names the file (on a command line, its path)
    except Exception as error:  # noqa: BLE001  (decoders raise many types; the user needs the file's name)
        raise InputError(f"{path} could not be read as audio: {type(error).__name__}: {error}") from error
    cut, _ = windows.split_windows(sound.samples[0], params, overlap_s=0.0)
    return [w for w in cut if np.abs(w).max() >= min_peak]


class SpectrogramDataset(torch.utils.data.Dataset):
    """Spectrogram images of every audio file in a folder, one per image-wide window.

    ``params``: ``spectrogram.RIFFUSION`` (512x512, 5.12 s at 44.1 kHz; the default) or
    ``spectrogram.AUDIO_DIFFUSION`` (256x256, about 5.9 s at 22.05 kHz). Images are made once, with
    the app's own codec (``pipelines.signal.spectrogram.audio_to_image``), and kept in memory.
    ``transform(PIL image) -> tensor`` gives the items (see ``sd_pixels`` and ``unit_pixels``).
    Errors (InputError): the folder is missing or holds no audio, a file cannot be decoded (named),
    or no file has a window with sound.
    """

    def __init__(self, folder: str | Path, params=None, transform: Callable[[Any], torch.Tensor] | None = None,
                 max_windows_per_file: int | None = None):
        from pipelines.signal import spectrogram

        self.params = spectrogram.RIFFUSION if params is None else params
        self.files = list_files(folder, AUDIO_SUFFIXES, "audio files")
        self.images = []
        for path in self.files:
            cut = audio_windows(path, self.params)[:max_windows_per_file]
            self.images += [spectrogram.audio_to_image(w[None], self.params) for w in cut]
        if not self.images:
            raise InputError(f"Every audio file in {folder} is silent: nothing to train on.")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        return self.transform(image) if self.transform else image


def sd_pixels(size: int = 512) -> Callable[[Any], torch.Tensor]:
    """PIL -> (3, size, size) float in [-1, 1], bicubic resize: Stable Diffusion's VAE input
    (MusicTI's and diffusers' training scripts both scale pixels as x / 127.5 - 1)."""
    from PIL import Image

    def transform(image) -> torch.Tensor:
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)

    return transform


def unit_pixels(image) -> torch.Tensor:
    """PIL L -> (1, H, W) float in [0, 1] (pixels / 255: the AMUSE VAE's input)."""
    return torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)[None]

