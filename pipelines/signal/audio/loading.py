"""Audio in: load a file, a gradio tuple or an array, check it, and convert it for a pipeline.

Every pipeline that takes sound goes through :func:`load_audio`, so this is where user input is
checked. Problems the user can fix raise :class:`~core.errors.InputError` with a message that says
what was wrong, the limit, and what to do; mistakes in calling code raise ``ValueError`` or
``TypeError``. Samples come out float32 shaped ``(channels, n)``. Files are decoded (and their
headers read) in a ``pipelines.signal.sandbox`` worker: a file that hangs or exhausts the decoder is
stopped after ``limits.DECODE_SECONDS`` with "... could not be decoded within N s".
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from core.errors import InputError, concerning, file_error, on_command_line, shown_path

from pipelines.schema import limits

from pipelines.signal import sandbox
from pipelines.signal.audio.clip import Audio, as_int, convert_channels
from pipelines.signal.audio.signal import peak_dbfs, resample

FORMATS = "WAV, FLAC, OGG or MP3"  # what to use when a file does not decode (messages; ui.file_kinds)
_SUPPORTED_HINT = f"Use {FORMATS} instead"
# Encoders pad (mp3 adds up to ~50 ms); a clip this little over the limit is cut, not refused.
_LENGTH_SLACK_SECONDS = 0.5
_MAX_PATH_CHARS = 4096
# libsndfile reports a FLAC whose header leaves the length out as SF_COUNT_MAX (2**63 - 1) frames
_UNKNOWN_FRAMES = 2**62
_BLOCK_FRAMES = 65536


@concerning("source")
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
    (``None`` turns a bound off), and not silent unless ``allow_silence``. Samples must be finite and
    within ``limits.MAX_SAMPLE_PEAK`` (float files can hold any number: a peak of 1e30 is refused,
    naming the file, whichever pipeline asked).
    """
    target_channels = _resolve_channels(channels, mono)
    target_rate = as_int(sample_rate)
    if target_rate is None or not limits.MIN_SAMPLE_RATE <= target_rate <= limits.MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be an integer in Hz, got {sample_rate!r}")

    audio, name = _decode_source(source, source_rate, max_seconds, target_channels)

    if not np.isfinite(audio.samples).all():
        raise InputError(
            f"{name} contains invalid samples (NaN or infinity), so it cannot be used. "
            "Export it again from your audio editor, or use another file."
        )
    if audio.num_frames == 0:
        raise InputError(f"{name} contains no audio samples. Use a clip with sound in it.")
    peak = max(float(audio.samples.max()), -float(audio.samples.min()))
    if peak > limits.MAX_SAMPLE_PEAK:  # one rule for every input: refused here, never half-used downstream
        raise InputError(
            f"{name} has samples up to {peak:.3g}, far beyond full scale (1.0); at most "
            f"{limits.MAX_SAMPLE_PEAK:g} is accepted. Normalise it in your audio editor, or export it "
            "again as 16-bit PCM."
        )
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
                "threshold. Check the recording level or use a louder clip."
            )
    return audio


def _resolve_channels(channels: int | None, mono: bool | None) -> int | None:
    """Turn the two channel arguments into a count (None: keep the source's)."""
    if channels is not None:
        count = as_int(channels)
        if count is None or not 1 <= count <= limits.MAX_CHANNELS:
            raise ValueError(f"channels must be 1..{limits.MAX_CHANNELS} or None, got {channels!r}")
        if mono is not None and bool(mono) != (count == 1):
            raise TypeError(f"mono={mono!r} contradicts channels={count}; pass only one of them")
        return count
    return None if mono is False else 1


def _decode_source(source: Any, source_rate: int | None, max_seconds: float | None,
                   wanted: int | None = None) -> tuple[Audio, str]:
    """Return the source as Audio at its own rate, and a name for it in messages. A file is decoded
    to mono when fewer than its channels are ``wanted`` (every down-mix goes through mono)."""
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
        return _from_path(source, max_seconds, wanted)
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
    rate_int = as_int(rate)
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


def _from_path(source: str | os.PathLike, max_seconds: float | None, wanted: int | None = None) -> tuple[Audio, str]:
    text = os.fspath(source)
    if isinstance(text, bytes):
        raise InputError("Audio file paths must be text.")
    if not text.strip():
        raise InputError("No audio was given. Upload or record a clip first.")
    if "\0" in text or "\n" in text or len(text) > _MAX_PATH_CHARS:
        raise InputError("The audio source is text that is not a file path. Upload an audio file.")
    if text.lower().startswith(("http://", "https://", "ftp://")):
        raise InputError("Links to audio are not supported. Download the file and "
                         + ("give its path." if on_command_line() else "upload it instead."))
    path = Path(text)
    name = f"'{shown_path(path)}'"  # in the app never the server's full path; on a command line the path given
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise file_error("audio file", path, "does not exist") from None
    except OSError as error:
        raise file_error("audio file", path, f"cannot be read ({error.strerror or type(error).__name__})") from None
    if path.is_dir():
        raise file_error("audio file", path, "is a folder, not a file", "Upload an audio file.")
    if st.st_size == 0:
        raise file_error("audio file", path, "is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise file_error("audio file", path, "cannot be read (permission denied)")
    if st.st_size > limits.MAX_UPLOAD_BYTES:
        raise InputError(
            f"The audio file {name} is {st.st_size / 2**20:.1f} MB; the limit is "
            f"{limits.MAX_UPLOAD_BYTES / 2**20:.0f} MB. Use a shorter or compressed clip (e.g. MP3 or OGG)."
        )
    name = f"The audio file {name}"
    # decoders can hang or run out of memory on a crafted file: in a worker that can be stopped
    return sandbox.run(_decode_file, str(path), name, max_seconds, wanted, name=name), name


def _decode_file(path: str, name: str, max_seconds: float | None, wanted: int | None) -> Audio:
    """Decode a checked file at its own rate (in a ``pipelines.signal.sandbox`` worker): libsndfile, else
    audioread's backends; mono when fewer than its channels are ``wanted``."""
    try:
        handle = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        # libsndfile does not know the container (m4a, aac, webm...): try audioread's backends.
        return _decode_with_audioread(Path(path), name, max_seconds)
    with handle:
        rate, count = handle.samplerate, handle.channels
        frames = None if handle.frames >= _UNKNOWN_FRAMES else handle.frames
        _check_header(rate, count, 0.0 if frames is None else frames / max(rate, 1), name, max_seconds)
        kept = 1 if wanted is not None and wanted < count else count
        limit = _frame_limit(rate, kept, max_seconds)
        if frames is not None and frames > limit:  # the length is known: refuse before decoding
            _refuse_size(name, frames / rate, rate, kept, max_seconds)
        if frames is None:
            # soundfile seeks back to its own position after every read of a seekable file, and
            # libsndfile's FLAC seek fails without a length: read such a file as the stream it is
            handle._info.seekable = False
        data = _read_blocks(handle, name, kept, limit, max_seconds)
    return Audio(np.ascontiguousarray(data.T), rate)


def _frame_limit(rate: int, channels: int, max_seconds: float | None) -> int:
    """Frames of ``channels`` channels that may be decoded: the length limit and the memory cap."""
    by_memory = limits.MAX_DECODED_VALUES // channels
    return by_memory if max_seconds is None else min(by_memory, int((max_seconds + _LENGTH_SLACK_SECONDS) * rate))


def _refuse_size(name: str, seconds: float | None, rate: int, channels: int, max_seconds: float | None) -> None:
    """Raise the right InputError for a file past ``_frame_limit``: too long, or too much to decode."""
    longest = _frame_limit(rate, channels, None) / rate
    if max_seconds is not None and max_seconds < longest:
        if seconds is None:
            raise InputError(f"{name} is too long: longer than the limit of {max_seconds:g} s. "
                             f"Trim it to {max_seconds:g} seconds or less and try again.")
        _check_duration(seconds, name, max_seconds, None)
    raise InputError(
        f"{name} holds more audio than this app decodes at once: {channels} channel(s) at {rate} Hz "
        f"for {'an unknown length' if seconds is None else f'{seconds:.1f} s'}, and the limit is "
        f"{limits.MAX_DECODED_VALUES / 1e6:.0f} million samples ({longest:.0f} s at this rate). "
        "Mix it down to stereo or export it at 44100 or 48000 Hz."
    )


def _read_blocks(handle: sf.SoundFile, name: str, channels: int, limit: int, max_seconds: float | None) -> np.ndarray:
    """Decode block by block, down-mixed to mono as it is read when ``channels`` is 1, and stop once
    past ``limit`` frames (a header may not know the length). Returns float32 (frames, channels)."""
    blocks, total = [], 0
    while True:
        try:
            block = handle.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError, MemoryError):
            raise InputError(
                f"{name} looks like {handle.format} audio but is damaged and cannot be decoded. "
                f"Export it again, or use another file ({FORMATS})."
            ) from None
        if not len(block):
            break
        if channels < block.shape[1]:
            block = convert_channels(block.T, 1).T
        total += len(block)
        if total > limit:
            _refuse_size(name, None, handle.samplerate, channels, max_seconds)
        blocks.append(block)
    return np.concatenate(blocks) if blocks else np.zeros((0, channels), dtype=np.float32)


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
            max_values = _frame_limit(rate, count, max_seconds) * count
            total = 0
            for block in reader:
                chunk = np.frombuffer(block, dtype="<i2")
                chunks.append(chunk)
                total += chunk.size
                if total > max_values:
                    _refuse_size(name, None, rate, count, max_seconds)
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
            "Use a longer clip."
        )


def probe_duration(path: str | os.PathLike) -> float:
    """Seconds of audio in a file, from its header alone (no decoding); raises InputError if unreadable."""
    return sandbox.run(_header_seconds, os.fspath(path), name=f"The audio file '{Path(os.fspath(path)).name}'")


def _header_seconds(path: str) -> float:
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
        raise InputError("The audio file's length cannot be read from its header.") from None
    return info.frames / max(info.samplerate, 1)
