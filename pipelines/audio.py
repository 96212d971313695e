"""Audio in and out: loading with validation, resampling, trimming, loudness, WAV writing.

Every pipeline that takes sound goes through :func:`load_audio`, so this is where user input is
checked. Problems the user can fix raise :class:`~pipelines.errors.InputError` with a message that
says what was wrong, the limit, and what to do; mistakes in calling code raise ``ValueError`` or
``TypeError``. Samples are float32 shaped ``(channels, n)`` everywhere inside the project.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from . import limits
from core.errors import InputError

__all__ = [
    "Audio",
    "load_audio",
    "resample",
    "peak_dbfs",
    "trim_silence",
    "peak_normalize",
    "loudness_lufs",
    "true_peak_dbfs",
    "normalize_loudness",
    "write_wav",
    "read_wav_metadata",
    "to_gradio",
]

_SUPPORTED_HINT = "Please upload WAV, FLAC, OGG or MP3 instead"
# Encoders pad (mp3 adds up to ~50 ms); a clip this little over the limit is cut, not refused.
_LENGTH_SLACK_SECONDS = 0.5
_MAX_PATH_CHARS = 4096


@dataclass(frozen=True, eq=False)  # eq=False: comparing ndarrays with == is ambiguous
class Audio:
    """Float32 samples shaped ``(channels, n)`` and their sample rate."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[np.newaxis, :]
        if samples.ndim != 2 or not 1 <= samples.shape[0] <= limits.MAX_CHANNELS:
            raise ValueError(
                f"Audio.samples must be shaped (channels, n) with 1..{limits.MAX_CHANNELS} "
                f"channels, got {samples.shape}"
            )
        rate = _as_int(self.sample_rate)
        if rate is None or rate <= 0:
            raise ValueError(f"Audio.sample_rate must be a positive integer, got {self.sample_rate!r}")
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "sample_rate", rate)

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.sample_rate

    def mono(self) -> Audio:
        """Mean of the channels (itself when already mono)."""
        if self.channels == 1:
            return self
        return Audio(self.samples.mean(axis=0, keepdims=True), self.sample_rate)

    def with_channels(self, channels: int) -> Audio:
        """Same sound with ``channels`` channels, see :func:`_convert_channels`."""
        return Audio(_convert_channels(self.samples, channels), self.sample_rate)


# --------------------------------------------------------------------------------------------
# Loading


def load_audio(
    source: Any,
    sample_rate: int,
    *,
    channels: int | None = None,
    mono: bool | None = None,
    source_rate: int | None = None,
    max_seconds: float | None = limits.MAX_INPUT_SECONDS,
    min_seconds: float | None = limits.MIN_INPUT_SECONDS,
    allow_silence: bool = False,
) -> Audio:
    """Load, check and convert audio from a file path, a gradio tuple, an array or an ``Audio``.

    ``source`` may be a path (``str`` or ``os.PathLike``), gradio's numpy audio
    ``(sample_rate, data)`` with ``data`` shaped ``(n,)`` or ``(n, channels)`` (int or float), an
    ndarray together with ``source_rate`` (``(n,)``, ``(channels, n)`` or ``(n, channels)``), or an
    :class:`Audio`.

    Channels: ``channels=1`` or ``2`` (or any count up to ``MAX_CHANNELS``) gives exactly that
    many: mono is the mean of the source's channels, more channels duplicate a mono source.
    Without ``channels``, ``mono`` decides: ``True`` (the default) gives one channel, ``False``
    keeps the source's channels.

    The result is float32 at ``sample_rate``, between ``min_seconds`` and ``max_seconds`` long
    (``None`` turns a bound off), and not silent unless ``allow_silence``.
    """
    target_channels = _resolve_channels(channels, mono)
    target_rate = _as_int(sample_rate)
    if target_rate is None or not limits.MIN_SAMPLE_RATE <= target_rate <= limits.MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be an integer in Hz, got {sample_rate!r}")

    audio, name = _decode_source(source, source_rate, max_seconds)

    if not np.isfinite(audio.samples).all():
        raise InputError(
            f"{name} contains invalid samples (NaN or infinity), so it cannot be used. "
            "Export it again from your audio editor, or upload another file."
        )
    if audio.num_frames == 0:
        raise InputError(f"{name} contains no audio samples. Please upload a clip with sound in it.")
    _check_duration(audio.duration, name, max_seconds, min_seconds)
    if max_seconds is not None and audio.duration > max_seconds:  # within the slack: cut to the limit
        audio = Audio(audio.samples[:, : int(max_seconds * audio.sample_rate)], audio.sample_rate)

    wanted = audio.channels if target_channels is None else target_channels
    # Downmix before resampling and duplicate after it: resample as few channels as possible.
    if wanted < audio.channels:
        audio = audio.with_channels(wanted)
    audio = resample(audio, target_rate)
    if wanted > audio.channels:
        audio = audio.with_channels(wanted)

    if not allow_silence:
        peak = peak_dbfs(audio.samples)
        if peak < limits.SILENCE_DBFS:
            level = "no sound at all" if peak == -math.inf else f"a peak level of {peak:.0f} dBFS"
            raise InputError(
                f"{name} is silent: it has {level}, below the {limits.SILENCE_DBFS:.0f} dBFS "
                "threshold. Check the recording level or upload a louder clip."
            )
    return audio


def _resolve_channels(channels: int | None, mono: bool | None) -> int | None:
    """Turn the two channel arguments into a count (None: keep the source's)."""
    if channels is not None:
        count = _as_int(channels)
        if count is None or not 1 <= count <= limits.MAX_CHANNELS:
            raise ValueError(f"channels must be 1..{limits.MAX_CHANNELS} or None, got {channels!r}")
        if mono is not None and bool(mono) != (count == 1):
            raise TypeError(f"mono={mono!r} contradicts channels={count}; pass only one of them")
        return count
    return None if mono is False else 1


def _decode_source(source: Any, source_rate: int | None, max_seconds: float | None) -> tuple[Audio, str]:
    """Return the source as Audio at its own rate, and a name for it in messages."""
    if source is None:
        raise InputError("No audio was given. Upload or record a clip first.")
    if isinstance(source, Audio):
        _check_rate(source.sample_rate, "The audio")
        return source, "The audio"
    if isinstance(source, tuple | list):
        return _from_tuple(source), "The recording"
    if isinstance(source, np.ndarray):
        if source_rate is None:
            raise InputError("An audio array was given without its sample rate; pass source_rate.")
        return _from_array(source, source_rate, layout="auto", name="The audio"), "The audio"
    if isinstance(source, str | os.PathLike):
        return _from_path(source, max_seconds)
    if isinstance(source, dict):
        raise InputError(
            "Audio was given as a dictionary; expected a file path or (sample_rate, samples). "
            "API callers: send the file with gradio_client.handle_file(path)."
        )
    raise InputError(
        f"Audio of type {type(source).__name__} is not supported; expected a file path or "
        "(sample_rate, samples)."
    )


def _from_tuple(source: tuple | list) -> Audio:
    if len(source) != 2:
        raise InputError(
            f"Audio was given as a sequence of {len(source)} items; expected (sample_rate, samples)."
        )
    rate, data = source
    if isinstance(rate, np.ndarray) and not isinstance(data, np.ndarray):
        rate, data = data, rate  # librosa's (y, sr) order
    if data is None:
        raise InputError("No audio was given. Upload or record a clip first.")
    if not isinstance(data, np.ndarray):
        try:
            data = np.asarray(data)
        except (TypeError, ValueError):
            raise InputError("The recording's samples are not a numeric array.") from None
    # gradio's numpy audio is (n, channels); accept (channels, n) when that is unambiguous.
    return _from_array(data, rate, layout="frames_first", name="The recording")


def _from_array(data: np.ndarray, rate: Any, *, layout: str, name: str) -> Audio:
    rate_int = _as_int(rate)
    if rate_int is None:
        raise InputError(f"{name}'s sample rate {rate!r} is not a whole number of Hz.")
    _check_rate(rate_int, name)
    samples = _to_float(data, name)
    if samples.ndim == 1:
        samples = samples[np.newaxis, :]
    elif samples.ndim == 2:
        rows, cols = samples.shape
        rows_are_channels = rows <= limits.MAX_CHANNELS and (cols > rows or layout == "auto")
        cols_are_channels = cols <= limits.MAX_CHANNELS
        if layout == "frames_first" and cols_are_channels:
            samples = samples.T
        elif rows_are_channels:
            pass
        elif cols_are_channels:
            samples = samples.T
        else:
            raise InputError(
                f"{name} has {min(rows, cols)} channels; at most {limits.MAX_CHANNELS} are supported. "
                "Mix it down to stereo or mono first."
            )
    else:
        raise InputError(f"{name} has shape {data.shape}; expected (samples,) or (samples, channels).")
    return Audio(np.ascontiguousarray(samples), rate_int)


def _to_float(data: np.ndarray, name: str) -> np.ndarray:
    """Integer PCM to [-1, 1) float32; floats pass through."""
    kind = data.dtype.kind
    if kind == "f":
        return data.astype(np.float32, copy=False)
    if kind == "i":
        scale = float(2 ** (8 * data.dtype.itemsize - 1))
        return (data.astype(np.float64) / scale).astype(np.float32)
    if kind == "u":  # unsigned PCM is centred on half the range (8-bit WAV)
        half = float(2 ** (8 * data.dtype.itemsize - 1))
        return ((data.astype(np.float64) - half) / half).astype(np.float32)
    raise InputError(f"{name}'s samples have type {data.dtype}; expected integer or float samples.")


def _from_path(source: str | os.PathLike, max_seconds: float | None) -> tuple[Audio, str]:
    text = os.fspath(source)
    if isinstance(text, bytes):
        raise InputError("Audio file paths must be text.")
    if not text.strip():
        raise InputError("No audio was given. Upload or record a clip first.")
    if "\0" in text or "\n" in text or len(text) > _MAX_PATH_CHARS:
        raise InputError("The audio source is text that is not a file path. Upload an audio file.")
    if text.lower().startswith(("http://", "https://", "ftp://")):
        raise InputError("Links to audio are not supported. Download the file and upload it instead.")
    path = Path(text)
    name = f"'{path.name}'"  # never the server's full path
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"The audio file {name} was not found. Please upload it again.") from None
    except OSError:
        raise InputError(f"The audio file {name} cannot be opened. Please upload it again.") from None
    if path.is_dir():
        raise InputError(f"{name} is a folder, not an audio file. Upload an audio file.")
    if st.st_size == 0:
        raise InputError(f"The audio file {name} is empty (0 bytes). Please upload it again.")
    if st.st_size > limits.MAX_UPLOAD_BYTES:
        raise InputError(
            f"The audio file {name} is {st.st_size / 2**20:.1f} MB; the limit is "
            f"{limits.MAX_UPLOAD_BYTES / 2**20:.0f} MB. Upload a shorter or compressed clip "
            "(e.g. MP3 or OGG)."
        )
    name = f"The audio file {name}"
    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        # libsndfile does not know the container (m4a, aac, webm...): try audioread's backends.
        return _decode_with_audioread(path, name, max_seconds), name
    with handle:
        _check_header(handle.samplerate, handle.channels, handle.frames / max(handle.samplerate, 1),
                      name, max_seconds)
        try:
            data = handle.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError, MemoryError):
            raise InputError(
                f"{name} looks like {handle.format} audio but is damaged and cannot be decoded. "
                f"Export it again, or upload another file (WAV, FLAC, OGG or MP3)."
            ) from None
        rate = handle.samplerate
    return Audio(np.ascontiguousarray(data.T), rate), name


def _decode_with_audioread(path: Path, name: str, max_seconds: float | None) -> Audio:
    unreadable = InputError(
        f"{name} could not be read as audio: it is damaged or in a format this app cannot "
        f"decode. {_SUPPORTED_HINT}."
    )
    try:
        import audioread
    except ImportError:
        raise unreadable from None
    chunks: list[np.ndarray] = []
    try:
        with audioread.audio_open(str(path)) as reader:
            rate, count = int(reader.samplerate), int(reader.channels)
            _check_header(rate, count, float(reader.duration or 0.0), name, max_seconds)
            # The header's duration may be missing: stop decoding once past the limit.
            max_values = None if max_seconds is None else int((max_seconds + _LENGTH_SLACK_SECONDS + 1) * rate * count)
            total = 0
            for block in reader:
                chunk = np.frombuffer(block, dtype="<i2")
                chunks.append(chunk)
                total += chunk.size
                if max_values is not None and total > max_values:
                    _check_duration(total / count / rate, name, max_seconds, None)
    except InputError:
        raise
    except Exception:  # audioread backends raise many unrelated types; none should reach the user
        raise unreadable from None
    data = np.concatenate(chunks) if chunks else np.zeros(0, dtype="<i2")
    data = data[: data.size - data.size % count].reshape(-1, count)
    return Audio(np.ascontiguousarray(_to_float(data, name).T), rate)


def _check_header(rate: int, channels: int, seconds: float, name: str, max_seconds: float | None) -> None:
    _check_rate(rate, name)
    if not 1 <= channels <= limits.MAX_CHANNELS:
        raise InputError(
            f"{name} has {channels} channels; at most {limits.MAX_CHANNELS} are supported. "
            "Mix it down to stereo or mono first."
        )
    _check_duration(seconds, name, max_seconds, None)  # too short is checked on the decoded samples


def _check_rate(rate: int, name: str) -> None:
    if not limits.MIN_SAMPLE_RATE <= rate <= limits.MAX_SAMPLE_RATE:
        raise InputError(
            f"{name} has a sample rate of {rate} Hz, outside the supported "
            f"{limits.MIN_SAMPLE_RATE}-{limits.MAX_SAMPLE_RATE} Hz. If it is a file, it is probably damaged; "
            "record or export it again at 44100 or 48000 Hz."
        )


def _check_duration(seconds: float, name: str, max_seconds: float | None, min_seconds: float | None) -> None:
    if max_seconds is not None and seconds > max_seconds + _LENGTH_SLACK_SECONDS:
        raise InputError(
            f"{name} is too long: {seconds:.1f} s, and the limit is {max_seconds:g} s. "
            f"Trim it to {max_seconds:g} seconds or less and try again."
        )
    if min_seconds is not None and seconds < min_seconds:
        raise InputError(
            f"{name} is too short: {seconds:.3f} s, and at least {min_seconds:g} s is needed. "
            "Upload a longer clip."
        )


def _as_int(value: Any) -> int | None:
    """An integer from int-like input (int, numpy int, whole float); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


# --------------------------------------------------------------------------------------------
# Conversions


def _convert_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """Mono is the channel mean; a mono source is duplicated. Other changes go through mono,
    because without a channel layout there is no correct up- or down-mix."""
    have = samples.shape[0]
    if not 1 <= channels <= limits.MAX_CHANNELS:
        raise ValueError(f"channels must be 1..{limits.MAX_CHANNELS}, got {channels}")
    if have == channels:
        return samples
    mono = samples if have == 1 else samples.mean(axis=0, keepdims=True)
    return mono if channels == 1 else np.repeat(mono, channels, axis=0)


def resample(audio: Audio, sample_rate: int) -> Audio:
    """Resample with soxr (high quality); the same object back when the rate already matches."""
    sample_rate = int(sample_rate)
    if sample_rate == audio.sample_rate or audio.num_frames == 0:
        return audio if sample_rate == audio.sample_rate else Audio(audio.samples, sample_rate)
    try:
        import soxr

        # soxr wants (frames, channels), C-contiguous.
        out = soxr.resample(np.ascontiguousarray(audio.samples.T), audio.sample_rate, sample_rate).T
    except ImportError:
        g = math.gcd(audio.sample_rate, sample_rate)
        from scipy import signal  # imported here: scipy.signal costs 0.7 s at app start

        out = signal.resample_poly(audio.samples, sample_rate // g, audio.sample_rate // g, axis=-1)
    return Audio(np.ascontiguousarray(out, dtype=np.float32), sample_rate)


def peak_dbfs(samples: np.ndarray | Audio) -> float:
    """Sample peak in dB relative to full scale; -inf for digital silence."""
    x = samples.samples if isinstance(samples, Audio) else np.asarray(samples)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def trim_silence(audio: Audio, threshold_db: float = limits.SILENCE_DBFS, *, pad_seconds: float = 0.01) -> Audio:
    """Cut leading and trailing samples quieter than ``threshold_db`` dBFS on every channel.

    ``pad_seconds`` of the quiet part is kept on each side so soft attacks and tails survive.
    A clip that is silent throughout is returned unchanged: there is nothing to trim around.
    """
    threshold = 10.0 ** (threshold_db / 20.0)
    loud = np.flatnonzero(np.max(np.abs(audio.samples), axis=0) > threshold)
    if loud.size == 0:
        return audio
    pad = int(round(pad_seconds * audio.sample_rate))
    start = max(int(loud[0]) - pad, 0)
    stop = min(int(loud[-1]) + 1 + pad, audio.num_frames)
    if start == 0 and stop == audio.num_frames:
        return audio
    return Audio(audio.samples[:, start:stop].copy(), audio.sample_rate)


def peak_normalize(samples: np.ndarray | Audio, headroom_db: float = 1.0) -> np.ndarray | Audio:
    """Scale so the sample peak sits ``headroom_db`` below full scale. Silence is left as is.

    Returns the same kind it was given (ndarray or Audio).
    """
    if headroom_db < 0:
        raise ValueError(f"headroom_db must be >= 0, got {headroom_db}")
    if isinstance(samples, Audio):
        return Audio(peak_normalize(samples.samples, headroom_db), samples.sample_rate)
    x = np.asarray(samples, dtype=np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not peak > 0 or not math.isfinite(peak):
        return x.copy()
    return x * np.float32(10.0 ** (-headroom_db / 20.0) / peak)


# --------------------------------------------------------------------------------------------
# Loudness (ITU-R BS.1770-4)

_ABSOLUTE_GATE_LUFS = -70.0
_RELATIVE_GATE_LU = -10.0
_BLOCK_SECONDS, _HOP_SECONDS = 0.4, 0.1  # 400 ms blocks, 75 % overlap
# Channel weights G_i by channel count (ITU order L R C LFE Ls Rs); the surround channels count
# 1.41, the LFE not at all. Other counts weigh every channel 1.
_CHANNEL_WEIGHTS = {5: (1.0, 1.0, 1.0, 1.41, 1.41), 6: (1.0, 1.0, 1.0, 0.0, 1.41, 1.41)}


def _k_weighting_sos(sample_rate: int) -> np.ndarray:
    """The two K-weighting biquads (high shelf, then RLB high-pass) for any rate.

    The analog prototypes' f0/gain/Q are those that reproduce the 48 kHz coefficients printed in
    BS.1770-4 (as used by libebur128), re-derived through the bilinear transform at this rate.
    """
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
        1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0,
    ]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1.0 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, highpass])


def loudness_lufs(audio: Audio) -> float:
    """Integrated loudness in LUFS per ITU-R BS.1770-4; -inf when every block is gated out.

    A clip shorter than one 400 ms block is measured as a single block.
    """
    rate = audio.sample_rate
    from scipy import signal

    filtered = signal.sosfilt(_k_weighting_sos(rate), audio.samples.astype(np.float64), axis=-1)
    block, hop = int(round(_BLOCK_SECONDS * rate)), int(round(_HOP_SECONDS * rate))
    n = filtered.shape[1]
    if n == 0:
        return -math.inf
    # Mean square of every block per channel, from a running sum (one pass over the samples).
    csum = np.concatenate(
        [np.zeros((filtered.shape[0], 1)), np.cumsum(filtered * filtered, axis=1)], axis=1
    )
    if n < block:
        starts, length = np.array([0]), n
    else:
        starts, length = np.arange(0, n - block + 1, hop), block
    z = (csum[:, starts + length] - csum[:, starts]) / length  # (channels, blocks)
    weights = np.asarray(_CHANNEL_WEIGHTS.get(audio.channels, (1.0,) * audio.channels))[:, None]
    power = np.sum(weights * z, axis=0)
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(power)
    gated = block_lufs > _ABSOLUTE_GATE_LUFS
    if not gated.any():
        return -math.inf
    relative = -0.691 + 10.0 * math.log10(power[gated].mean()) + _RELATIVE_GATE_LU
    gated &= block_lufs > relative
    return float(-0.691 + 10.0 * math.log10(power[gated].mean()))


def true_peak_dbfs(audio: Audio) -> float:
    """True peak (dBTP) per BS.1770-4 Annex 2: the sample peak after 4x oversampling
    (2x from 96 kHz, none from 192 kHz)."""
    factor = 4 if audio.sample_rate < 96_000 else 2 if audio.sample_rate < 192_000 else 1
    if factor == 1 or audio.num_frames == 0:
        return peak_dbfs(audio.samples)
    up = resample(audio, audio.sample_rate * factor)
    return max(peak_dbfs(up.samples), peak_dbfs(audio.samples))


def normalize_loudness(audio: Audio, target_lufs: float = -14.0, peak_limit_db: float = -1.0) -> Audio:
    """Gain to ``target_lufs`` integrated loudness, lowered if needed so the true peak stays at or
    below ``peak_limit_db`` dBTP (the result is then quieter than the target, never distorted).
    Silence (no block above the -70 LUFS gate) is returned unchanged.
    """
    loudness = loudness_lufs(audio)
    if not math.isfinite(loudness):
        return audio
    gain_db = target_lufs - loudness
    peak = true_peak_dbfs(audio)
    if peak + gain_db > peak_limit_db:
        gain_db = peak_limit_db - peak
    # A hair under the limit: the peak of the scaled signal is re-measured on float32 samples.
    gain = np.float32(10.0 ** (gain_db / 20.0) * (1.0 - 1e-6))
    return Audio(audio.samples * gain, audio.sample_rate)


# --------------------------------------------------------------------------------------------
# Output

_WAV_SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")


def write_wav(path: str | os.PathLike, audio: Audio, metadata: dict | None = None, *, subtype: str = "PCM_16") -> Path:
    """Write ``audio`` as a WAV file (16-bit PCM by default; ``subtype`` ``"PCM_24"`` or
    ``"FLOAT"`` otherwise) with ``metadata`` stored as JSON in the LIST/INFO comment (ICMT).

    Samples are clipped to [-1, 1] for PCM. Returns the path written.
    """
    if subtype not in _WAV_SUBTYPES:
        raise ValueError(f"subtype must be one of {_WAV_SUBTYPES}, got {subtype!r}")
    if not np.isfinite(audio.samples).all():
        raise ValueError("audio contains NaN or infinite samples; refusing to write them")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = audio.samples.T
    if subtype != "FLOAT":
        # Clip here rather than trust each libsndfile build's float-to-int conversion to.
        data = np.clip(data, -1.0, 1.0)
    sf.write(str(path), data, audio.sample_rate, subtype=subtype, format="WAV")
    if metadata:
        # Written by hand: libsndfile drops comments longer than about 2 kB.
        _append_info_comment(path, json.dumps(metadata, default=_json_default, ensure_ascii=True))
    return path


def read_wav_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata that :func:`write_wav` stored; ``{}`` when there is none or it is not ours."""
    try:
        text = _read_info_comment(Path(path))
    except OSError:
        return {}
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def to_gradio(audio: Audio) -> tuple[int, np.ndarray]:
    """``(sample_rate, int16 samples)`` as gradio's numpy audio wants: ``(n,)`` or ``(n, channels)``."""
    if not np.isfinite(audio.samples).all():
        raise ValueError("audio contains NaN or infinite samples")
    pcm = np.round(np.clip(audio.samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    return audio.sample_rate, (pcm[0] if audio.channels == 1 else np.ascontiguousarray(pcm.T))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _append_info_comment(path: Path, text: str) -> None:
    """Append a RIFF ``LIST/INFO`` chunk with an ``ICMT`` comment and fix the RIFF size."""
    payload = text.encode("ascii") + b"\0"
    if len(payload) % 2:
        payload += b"\0"  # RIFF chunks are word aligned
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(payload)) + payload
    chunk = b"LIST" + struct.pack("<I", len(info)) + info
    with open(path, "r+b") as f:
        header = f.read(12)
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise ValueError(f"{path} is not a RIFF/WAVE file")
        end = f.seek(0, os.SEEK_END)
        if end % 2:
            f.write(b"\0")
            end += 1
        f.write(chunk)
        f.seek(4)
        f.write(struct.pack("<I", end + len(chunk) - 8))


def _read_info_comment(path: Path) -> str | None:
    """The last ICMT text in the file's LIST/INFO chunks, walking the RIFF chunk list."""
    found = None
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            chunk_id, size = head[:4], struct.unpack("<I", head[4:])[0]
            if chunk_id == b"LIST":
                body = f.read(size)
                if body[:4] == b"INFO":
                    pos = 4
                    while pos + 8 <= len(body):
                        sub_id, sub_size = body[pos : pos + 4], struct.unpack("<I", body[pos + 4 : pos + 8])[0]
                        if sub_id == b"ICMT":
                            found = body[pos + 8 : pos + 8 + sub_size].split(b"\0", 1)[0].decode("latin-1")
                        pos += 8 + sub_size + (sub_size % 2)
                if size % 2:
                    f.seek(1, os.SEEK_CUR)
            else:
                f.seek(size + (size % 2), os.SEEK_CUR)  # skip the sample data without reading it
    return found


def probe_duration(path: str | os.PathLike) -> float:
    """Seconds of audio in a file, from its header alone (no decoding); raises InputError if unreadable."""
    try:
        info = sf.info(os.fspath(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
        raise InputError("The audio file's length cannot be read from its header.") from None
    return info.frames / max(info.samplerate, 1)
