"""Audio in and out for the pipelines: ``Audio`` values, checked loading, signal operations, WAV files.

* :mod:`.clip`: the ``Audio`` value, float32 ``(channels, n)`` samples and their rate.
* :mod:`.loading`: :func:`load_audio` with all its input checks, :func:`probe_duration`.
* :mod:`.signal`: resampling, peak level, peak normalisation.
* :mod:`.wav`: WAV writing with JSON metadata, and reading it back.

Importers use ``from pipelines.signal import audio as audio_io`` and the names below.
"""

from pipelines.signal.audio.clip import Audio
from pipelines.signal.audio.loading import FORMATS, load_audio, probe_duration
from pipelines.signal.audio.signal import peak_dbfs, peak_normalize, resample
from pipelines.signal.audio.wav import read_wav_metadata, write_wav

__all__ = [
    "FORMATS",
    "Audio",
    "load_audio",
    "peak_dbfs",
    "peak_normalize",
    "probe_duration",
    "read_wav_metadata",
    "resample",
    "write_wav",
]
