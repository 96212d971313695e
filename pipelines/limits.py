"""Every user-facing limit, in one place: checked in the pipelines, shown in the UI, enforced for API callers."""

# Audio input
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # larger files are refused before decoding
MAX_INPUT_SECONDS = 60.0  # longer inputs are refused; sound-to-music works window by window
MIN_INPUT_SECONDS = 0.1
SILENCE_DBFS = -60.0  # a clip whose peak is below this is treated as silent
MAX_CHANNELS = 8  # 7.1 surround; more is almost certainly not music
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000  # Hz; outside this a header is broken or hostile

# Diffusion
MIN_STEPS, MAX_STEPS = 1, 100
MIN_GUIDANCE, MAX_GUIDANCE = 0.0, 20.0
MIN_STRENGTH, MAX_STRENGTH = 0.0, 1.0
MAX_SEED = 2**32 - 1
MAX_PROMPT_CHARS = 1000

# Playlist to music
MAX_PLAYLIST_TRACKS = 10
MAX_PLAYLIST_STEPS = 1000  # the original's full DDPM schedule; more steps than training timesteps mean nothing

# Images
MAX_IMAGE_SIDE = 1024
MIN_INPUT_IMAGE_SIDE, MAX_INPUT_IMAGE_SIDE = 16, 8192  # uploaded pictures (captioning); the processor resizes

# Text to music (MusicGen)
MIN_MUSIC_SECONDS, MAX_MUSIC_SECONDS = 1.0, 30.0  # musicgen-small was trained on 30 s clips
MAX_SPECTROGRAM_WIDTH = 6500  # a little over MAX_INPUT_SECONDS of riffusion columns (100 px per second)


def check_number(name: str, value, low: float, high: float, integer: bool = False) -> None:
    """Raise InputError unless ``value`` is a finite number (whole, if ``integer``) in [low, high]."""
    import math

    from core.errors import InputError

    numeric = isinstance(value, (int, float)) or type(value).__module__ == "numpy"
    ok = numeric and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or not low <= value <= high:
        kind = "a whole number" if integer else "a number"
        raise InputError(f"{name[:1].upper()}{name[1:]} must be {kind} from {low:g} to {high:g}; got {value!r}.")
