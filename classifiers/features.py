"""The two classifiers' inputs, computed as the original TechJam training code computed them.

Genre (GTZAN CNN): 22050 Hz mono, 6 s segments (a 30 s track cut in 5), librosa MFCC per segment
(n_mfcc 13, n_fft 2048, hop 512, librosa's defaults otherwise), transposed to (time, coefficient):
259 x 13, plus a channel axis -> (259, 13, 1).

Emotion (Emotify A2E-style CNN): 22050 Hz mono, 10 s segments of the *unnormalised* signal (the
original normalised a copy and then cut the raw signal, for training and for long clips at
inference), |STFT| (n_fft 2048, hop 512) without the last frequency bin, ``amplitude_to_db`` with
its defaults: (frequency, time) = 1024 x 431, not transposed, plus a channel axis.

Whole-track use (an improvement on the originals, which used the first 6 s / a random 10 s):
every segment of the track is scored; a clip shorter than one segment is zero-padded to one
(the original emotion code crashed there).
"""

from __future__ import annotations

import numpy as np

from core.errors import InputError

SAMPLE_RATE = 22050
N_FFT = 2048
HOP_LENGTH = 512

GENRE_N_MFCC = 13
GENRE_SEGMENT_SECONDS = 6.0  # 30 s GTZAN tracks in 5 segments
GENRE_SEGMENT_SAMPLES = int(SAMPLE_RATE * GENRE_SEGMENT_SECONDS)  # 132300
GENRE_FRAMES = 1 + GENRE_SEGMENT_SAMPLES // HOP_LENGTH  # 259 (librosa centres frames)
GENRE_INPUT_SHAPE = (GENRE_FRAMES, GENRE_N_MFCC, 1)

EMOTION_SEGMENT_SECONDS = 10.0
EMOTION_SEGMENT_SAMPLES = int(SAMPLE_RATE * EMOTION_SEGMENT_SECONDS)  # 220500
EMOTION_BINS = N_FFT // 2  # 1025 bins minus the last
EMOTION_FRAMES = 1 + EMOTION_SEGMENT_SAMPLES // HOP_LENGTH  # 431
EMOTION_INPUT_SHAPE = (EMOTION_BINS, EMOTION_FRAMES, 1)

# A tail shorter than this fraction of a segment is dropped; a longer one is scored as the last
# full segment of the track (overlapping its neighbour), so no sound is padded in the middle.
TAIL_FRACTION = 0.5


def as_mono(samples: np.ndarray) -> np.ndarray:
    """(n,) or (channels, n) float samples -> finite float32 mono (n,); InputError if unusable."""
    array = np.asarray(samples)
    if array.dtype.kind not in "fiu":
        raise InputError(f"Audio samples must be numbers, got an array of {array.dtype}.")
    array = array.astype(np.float32)
    if array.ndim == 2:
        array = array.mean(axis=0)
    if array.ndim != 1:
        raise InputError(f"Audio samples must be shaped (n,) or (channels, n), got {array.shape}.")
    if array.size == 0:
        raise InputError("The audio is empty.")
    if not np.all(np.isfinite(array)):
        raise InputError("The audio contains NaN or infinite samples.")
    return array


def segment_starts(num_samples: int, segment_samples: int) -> list[int]:
    """Start sample of every segment scored for a track: consecutive segments from the start, and
    the track's last ``segment_samples`` when the leftover tail is at least TAIL_FRACTION of one."""
    if num_samples <= segment_samples:
        return [0]
    starts = list(range(0, num_samples - segment_samples + 1, segment_samples))
    tail = num_samples - (starts[-1] + segment_samples)
    if tail >= TAIL_FRACTION * segment_samples:
        starts.append(num_samples - segment_samples)
    return starts


def segments(samples: np.ndarray, segment_samples: int) -> np.ndarray:
    """The track cut into (k, segment_samples) segments; a short clip is zero-padded to one."""
    mono = as_mono(samples)
    if mono.size < segment_samples:
        mono = np.pad(mono, (0, segment_samples - mono.size))
    return np.stack([mono[s : s + segment_samples] for s in segment_starts(mono.size, segment_samples)])


def genre_input(segment_batch: np.ndarray) -> np.ndarray:
    """(k, 132300) segments at 22050 Hz -> (k, 259, 13, 1) MFCC frames, as the GTZAN CNN was fed."""
    import librosa

    batch = np.asarray(segment_batch, dtype=np.float32)
    mfcc = librosa.feature.mfcc(y=batch, sr=SAMPLE_RATE, n_mfcc=GENRE_N_MFCC, n_fft=N_FFT, hop_length=HOP_LENGTH)
    return np.ascontiguousarray(np.swapaxes(mfcc, 1, 2)[..., np.newaxis], dtype=np.float32)


def emotion_input(segment_batch: np.ndarray) -> np.ndarray:
    """(k, 220500) segments at 22050 Hz -> (k, 1024, 431, 1) log-magnitude spectrograms."""
    import librosa

    batch = np.asarray(segment_batch, dtype=np.float32)
    magnitude = np.abs(librosa.stft(batch, n_fft=N_FFT, hop_length=HOP_LENGTH))[:, :-1, :]
    # amplitude_to_db's top_db clipping is relative to each call's maximum, so convert per segment
    log = np.stack([librosa.amplitude_to_db(m) for m in magnitude])
    return np.ascontiguousarray(log[..., np.newaxis], dtype=np.float32)


def genre_features(samples: np.ndarray) -> np.ndarray:
    """Mono samples at 22050 Hz -> every 6 s segment's genre input, (k, 259, 13, 1)."""
    return genre_input(segments(samples, GENRE_SEGMENT_SAMPLES))


def emotion_features(samples: np.ndarray) -> np.ndarray:
    """Mono samples at 22050 Hz -> every 10 s segment's emotion input, (k, 1024, 431, 1)."""
    return emotion_input(segments(samples, EMOTION_SEGMENT_SAMPLES))
