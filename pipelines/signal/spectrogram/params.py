"""Spectrogram parameters: one frozen dataclass, the two presets, and riffusion's EXIF tags.

* ``RIFFUSION``: riffusion's layout (44.1 kHz, hop 441, window 4410 zero-padded to 17640, 512 htk
  mels over 0-10 kHz, magnitude mel, image = 255 - 255 * (mel / max) ** 0.25, low frequencies at the
  bottom). A 512-pixel-wide image is 5.12 s.
* ``AUDIO_DIFFUSION``: teticio's audio-diffusion ``Mel`` (22.05 kHz, n_fft 2048, hop 512, 256
  slaney mels, power mel in dB, image = (dB + 80) * 255 / 80, mel 0 on row 0). 256 px = 5.94 s.

Images carry the parameters twice: riffusion's EXIF tags (:class:`ExifTags`, so riffusion can read
our images and we can read its) and a PNG text chunk under :data:`PNG_TEXT_KEY` (JSON, all fields).
"""

from __future__ import annotations

import dataclasses
import enum
import typing as T
from dataclasses import dataclass

from core.errors import InputError

# riffusion's sample scale: it feeds int16 sample values, so its mel magnitudes (and the 30e6
# default max value) are in int16 units. Float audio in [-1, 1] is scaled by this on the way in.
INT16_SCALE = 32768.0

PNG_TEXT_KEY = "spectrogram"


class ExifTags(enum.IntEnum):
    """riffusion's EXIF tags (riffusion.spectrogram_params.SpectrogramParams.ExifTags).

    Only these may be written: riffusion's exif_from_image() maps every tag through its enum and
    fails on any other. Durations are in milliseconds, frequencies in Hz. riffusion-hobby later
    added TRIPLE_RES_MONO (11007); riffusion's reader (the one MusicTI's images were made with) fails
    on it, so it is left out: we never write it, and reading ignores it.
    """

    SAMPLE_RATE = 11000
    STEREO = 11005
    STEP_SIZE_MS = 11010
    WINDOW_DURATION_MS = 11020
    PADDED_DURATION_MS = 11030
    NUM_FREQUENCIES = 11040
    MIN_FREQUENCY = 11050
    MAX_FREQUENCY = 11060
    POWER_FOR_IMAGE = 11070
    MAX_VALUE = 11080


# EXIF tags stored in milliseconds, and the sample-count field each one sets
_MS_FIELDS = (
    (ExifTags.STEP_SIZE_MS, "hop_length"),
    (ExifTags.WINDOW_DURATION_MS, "win_length"),
    (ExifTags.PADDED_DURATION_MS, "n_fft"),
)
# EXIF tags that map one to one onto a field, and the type riffusion writes them as
_PLAIN_FIELDS = (
    (ExifTags.NUM_FREQUENCIES, "n_mels", int),
    (ExifTags.MIN_FREQUENCY, "f_min", int),
    (ExifTags.MAX_FREQUENCY, "f_max", int),
    (ExifTags.POWER_FOR_IMAGE, "power_for_image", float),
)


@dataclass(frozen=True)
class SpectrogramParams:
    """Everything needed to go from audio to image and back. Lengths are in samples."""

    name: str
    sample_rate: int
    n_fft: int
    win_length: int
    hop_length: int
    n_mels: int
    f_min: float
    f_max: float
    mel_htk: bool  # htk mel formula (riffusion) or slaney (librosa default, audio-diffusion)
    mel_norm: T.Optional[str]  # None or "slaney" (area normalised triangles)
    pad_mode: str  # STFT padding with center=True
    stft_power: float  # 1: magnitude mel (riffusion); 2: power mel (audio-diffusion)
    image_scale: str  # "power": (mel/max) ** power_for_image; "db": (dB + top_db) / top_db
    power_for_image: float
    top_db: float
    invert: bool  # loud is dark (riffusion)
    flip: bool  # low frequencies at the bottom (riffusion)
    width: int  # pixels (STFT frames) per image
    audio_scale: float  # float audio is multiplied by this before the STFT
    default_max_value: float  # decoding assumes this when the image does not carry its max
    griffin_lim_iters: int  # what the original system runs

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft or self.hop_length <= 0 or self.n_mels <= 0:
            raise InputError(f"Inconsistent spectrogram parameters: {self}")
        if self.image_scale not in ("power", "db"):
            raise InputError(f"image_scale must be 'power' or 'db', not {self.image_scale!r}")

    @property
    def window_samples(self) -> int:
        """Samples in one image-wide slice: ``width`` frames with center=True (teticio's x_res * hop - 1)."""
        return self.width * self.hop_length - 1

    @property
    def window_seconds(self) -> float:
        return self.width * self.hop_length / self.sample_rate

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: T.Mapping[str, T.Any]) -> SpectrogramParams:
        """The inverse of :meth:`to_dict`; unknown keys (from a newer writer) are ignored.

        Raises TypeError for missing fields, InputError for inconsistent values.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    def to_exif(self) -> T.Dict[int, T.Any]:
        """riffusion's parameter tags in its units (ms, Hz). The image codec adds STEREO and MAX_VALUE."""
        tags: T.Dict[int, T.Any] = {
            ExifTags.SAMPLE_RATE: int(self.sample_rate),
            ExifTags.STEREO: False,
        }
        for tag, field in _MS_FIELDS:
            tags[tag] = int(round(getattr(self, field) * 1000 / self.sample_rate))
        for tag, field, exif_type in _PLAIN_FIELDS:
            tags[tag] = exif_type(getattr(self, field))
        # plain ints as keys: PIL's EXIF writer needs nothing fancier
        return {int(tag): value for tag, value in tags.items()}

    @classmethod
    def from_exif(cls, exif: T.Mapping[int, T.Any], base: T.Optional[SpectrogramParams] = None) -> SpectrogramParams:
        """``base`` (default: the riffusion preset) with the fields that riffusion's tags carry.

        Millisecond tags are converted to samples at the tagged sample rate; they are ignored
        without one. Missing or zero tags keep ``base``'s value.
        """
        params = RIFFUSION if base is None else base
        changes: T.Dict[str, T.Any] = {}
        if exif.get(ExifTags.SAMPLE_RATE):
            sr = int(exif[ExifTags.SAMPLE_RATE])
            changes["sample_rate"] = sr
            for tag, field in _MS_FIELDS:
                if exif.get(tag):
                    changes[field] = int(float(exif[tag]) / 1000.0 * sr)
        for tag, field, _ in _PLAIN_FIELDS:
            if exif.get(tag) is not None:
                changes[field] = type(getattr(params, field))(exif[tag])
        return dataclasses.replace(params, **changes) if changes else params


RIFFUSION = SpectrogramParams(
    name="riffusion",
    sample_rate=44100,
    n_fft=17640,
    win_length=4410,
    hop_length=441,
    n_mels=512,
    f_min=0.0,
    f_max=10000.0,
    mel_htk=True,
    mel_norm=None,
    pad_mode="reflect",
    stft_power=1.0,
    image_scale="power",
    power_for_image=0.25,
    top_db=80.0,
    invert=True,
    flip=True,
    width=512,
    audio_scale=INT16_SCALE,
    default_max_value=30e6,
    griffin_lim_iters=32,
)

AUDIO_DIFFUSION = SpectrogramParams(
    name="audio-diffusion",
    sample_rate=22050,
    n_fft=2048,
    win_length=2048,
    hop_length=512,
    n_mels=256,
    f_min=0.0,
    f_max=11025.0,
    mel_htk=False,
    mel_norm="slaney",
    pad_mode="constant",  # librosa >= 0.10 default, what diffusers' Mel gets today
    stft_power=2.0,
    image_scale="db",
    power_for_image=1.0,
    top_db=80.0,
    invert=False,
    flip=False,
    width=256,
    audio_scale=1.0,
    default_max_value=1.0,  # dB images are relative to their own max: the scale is lost
    griffin_lim_iters=32,
)

PRESETS: T.Dict[str, SpectrogramParams] = {p.name: p for p in (RIFFUSION, AUDIO_DIFFUSION)}


def get_params(name_or_params: T.Union[str, SpectrogramParams]) -> SpectrogramParams:
    """The preset of that name, or the params themselves; InputError for an unknown name."""
    if isinstance(name_or_params, SpectrogramParams):
        return name_or_params
    try:
        return PRESETS[str(name_or_params)]
    except KeyError:
        raise InputError(
            f"Unknown spectrogram preset {name_or_params!r}; choose one of {sorted(PRESETS)}"
        ) from None
