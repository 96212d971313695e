"""Every user-facing limit, in one place, and the checks that enforce them.

Each pipeline's settings dataclass (``SoundToMusicSettings``, ``StyleSettings``, ...) subclasses
``Settings``: its fields hold the defaults, its ``RANGES`` name a ``Range`` from here for every
number, and ``validate()`` checks them all, so the UI builds its sliders from the same numbers that
the pipeline enforces for API callers.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

from core.errors import InputError, concerning_parameter


def _env(name: str, default: float) -> float:
    """A limit an operator may set in the environment (``STUDIO_<NAME>``); ``default`` otherwise."""
    return float(os.environ.get(f"STUDIO_{name}", default))


@dataclass(frozen=True)
class Range:
    """A closed interval ``[low, high]`` of allowed values; ``integer`` asks for whole numbers."""

    low: float
    high: float
    integer: bool = False

    def check(self, name: str, value: Any) -> int | float:
        """``value`` (an int for an integer range) or InputError: ``check_number``'s one rule."""
        return check_number(name, value, self.low, self.high, integer=self.integer)


# Requests (app.py's flags override the first two)
MAX_RUN_SECONDS = 600.0  # a request running longer is stopped at its next step and the caller told
MAX_RUNS_PER_USER = 2  # events of one session in progress at a time; more are refused as busy
MAX_QUEUE = 32  # requests waiting at most, all events together
MAX_QUEUED_PER_USER = 4  # requests of one session waiting at a time; more are refused as busy
CACHE_SWEEP = (60, 900)  # gradio's temporary files: every 60 s, those older than 900 s are removed
OUTPUT_MAX_FOLDERS = 64  # result folders kept (each request writes one); older ones are removed

# Decoding untrusted uploads (pipelines.signal.sandbox: worker processes that are killed on overrun)
DECODE_SECONDS = _env("DECODE_SECONDS", 20.0)  # one file's decode; past it the worker is killed
# each worker's address space (RLIMIT_AS): ~115 MB of libraries, then a 50 MP RGBA picture needs ~0.65 GB
# (pipelines.signal.images.memory_bound, and its trip back) and the longest sound ~0.5 GB
DECODE_MEMORY_BYTES = int(_env("DECODE_MEMORY_MB", 1024) * 2**20)
DECODE_WORKERS = int(_env("DECODE_WORKERS", 2))  # decodes at once; more callers wait for a free worker

# Uploads (/gradio_api/upload, before the bytes reach the disk: ui.uploads.UploadBudget; files given by address
# spend the same budgets)
UPLOAD_BYTES_PER_MINUTE = int(_env("UPLOAD_MB_PER_MINUTE", 300) * 2**20)  # per client (IP address)
# per client: its uploads still on disk (kept 15 min). A playlist run uploads up to 10 files, so 120 leaves a
# busy user a dozen runs per sweep; the disk itself is bounded by TEMP_BUDGET_BYTES.
UPLOAD_FILES_WAITING = int(_env("UPLOAD_FILES_WAITING", 120))
TEMP_BUDGET_BYTES = int(_env("TEMP_BUDGET_MB", 4096) * 2**20)  # gradio's temp folder, all files together
# A file given by http(s) address (ui.file_urls): the whole download, redirects included, or it is stopped. It
# runs in the event's queue slot (the GPU's for a model run), so it stays short: 50 MB in 30 s is 14 Mbit/s.
URL_FETCH_SECONDS = _env("URL_FETCH_SECONDS", 30.0)
# Requests of one client (IP address, as the upload budgets count it) waiting for their files given by address, all its
# sessions together (ui.fetch_first): each holds a download for up to URL_FETCH_SECONDS, and a session alone may have
# MAX_QUEUED_PER_USER waiting, so without this one address could open sessions until the queue is full of downloads.
URL_FETCHES_PER_CLIENT = int(_env("URL_FETCHES_PER_CLIENT", 4))

# A request body other than an upload's (an API call's JSON: texts, numbers, file paths): the largest the
# page or gradio_client sends is a few kB; without a bound, one POST of gigabytes was read whole into memory.
MAX_REQUEST_BODY_BYTES = int(_env("MAX_REQUEST_BODY_BYTES", 1024 * 1024))

# Audio input
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # one file, uploaded or given by address; larger ones are refused before decoding
MAX_INPUT_SECONDS = 60.0  # longer inputs are refused; sound-to-music works window by window
MIN_INPUT_SECONDS = 0.1
SILENCE_DBFS = -60.0  # a clip whose peak is below this is treated as silent
MAX_SAMPLE_PEAK = 1000.0  # float samples beyond this (+60 dBFS) are refused: broken, not loud
MAX_CHANNELS = 8  # 7.1 surround; more is almost certainly not music
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000  # Hz; outside this a header is broken or hostile
MAX_TRACK_SECONDS = 600.0  # playlist tracks: whole songs are fine (only one slice is used)
# Samples (frames x channels kept) one file may decode to, float32: 128 MiB, and twice that at the peak
# while its blocks are joined. 60 s of 7.1 at 48 kHz or a 10-minute song at 48 kHz (decoded to mono,
# as every down-mix is) fit; 8 channels at 384 kHz for 60 s (184 M) is refused from its header.
MAX_DECODED_VALUES = 32 * 2**20

# Diffusion
STEPS = Range(1, 100, integer=True)
GUIDANCE = Range(0.0, 20.0)
STRENGTH = Range(0.0, 1.0)
SEED = Range(0, 2**32 - 1, integer=True)
MAX_PROMPT_CHARS = 1000

# The mask (a negative factor skips its step)
MASK_INVERT = Range(-1.0, 1.0)
MASK_BRIGHTNESS = Range(-1.0, 10.0)
MASK_CONTRAST = Range(-1.0, 1000.0)
MASK_DOWNSHIFT = Range(-1.0, 255.0)

# Style interpolation
MAX_STYLES = 4
STYLE_WEIGHT = Range(0.0, 100.0)  # weights are normalised; the cap only keeps API callers' numbers sane

# Playlist to music
MAX_PLAYLIST_TRACKS = 10
MAX_PLAYLIST_STEPS = 1000  # the original's full DDPM schedule; more steps than training timesteps mean nothing
PLAYLIST_STEPS = Range(1, MAX_PLAYLIST_STEPS, integer=True)

# Images
MAX_IMAGE_SIDE = 1024
IMAGE_SIDE = Range(64, MAX_IMAGE_SIDE, integer=True)  # and a multiple of 8 (the latent is 1/8 of the image)
MIN_INPUT_IMAGE_SIDE, MAX_INPUT_IMAGE_SIDE = 16, 8192  # uploaded pictures (captioning); the processor resizes
LORA_SCALE = Range(0.0, 2.0)
MAX_SPECTROGRAM_WIDTH = 6500  # a little over MAX_INPUT_SECONDS of riffusion columns (100 px per second)
# any uploaded image: refused from its header before decoding (PIL's own bomb limit is set to this too);
# 50 MP covers phone cameras, and decoding it as RGBA takes 200 MB
MAX_IMAGE_PIXELS = 50_000_000

# Text to music (MusicGen)
MUSIC_SECONDS = Range(1.0, 120.0)  # past 30 s (musicgen-small's training clips) it continues in windows
TEMPERATURE = Range(0.05, 5.0)
TOP_K = Range(0, 2048, integer=True)  # musicgen's codebook size; 0 switches top-k off
TOP_P = Range(0.0, 1.0)  # 0 switches top-p off
MAX_CAPTION_TOKENS = 100

# Riffusion text to music and prompt interpolation (5.12 s windows)
RIFFUSION_SECONDS = Range(1.0, 60.0)  # text to music: successive windows continuing each other
INTERPOLATION_WINDOWS = Range(2, 12, integer=True)  # prompt interpolation: alpha = i / (N - 1), 5.12 s each

# Extend a track, variations (pipelines/systems/extend.py, pipelines/systems/variations.py)
EXTEND_SECONDS = Range(1.0, 60.0)  # seconds added after the end or before the start, either engine
VARIATION_SEEDS = Range(2, 8, integer=True)  # one request, N seeds, side by side

# Training a style in the app (pipelines/systems/train_style.py)
TRAIN_CLIPS = Range(3, 20, integer=True)  # audio clips of the style
TRAIN_STEPS = Range(1, 10_000, integer=True)  # MusicTI's own recipe runs 10 000
TRAIN_MAX_SECONDS = 1800.0  # a training running longer is stopped
TRAIN_QUEUE = 8  # trainings waiting or running at most, all users together
TRAIN_JOBS_PER_SESSION = 1  # trainings of one session waiting or running at a time
# What a visitor trains is theirs (pipelines/models/trained.py): kept in their session's folder, listed for them only,
# removed when their page closes or this long after its last use, and capped. A real MusicTI style weighs
# ~72 MB (17.9 M float32 parameters), a genre LoRA ~3 MB.
TRAIN_PER_SESSION = int(_env("TRAIN_PER_SESSION", 3))  # styles and LoRAs one session keeps (trainings in progress count)
TRAIN_SESSION_BYTES = int(_env("TRAIN_SESSION_MB", 256) * 2**20)  # one session's trained files
TRAIN_TOTAL_BYTES = int(_env("TRAIN_TOTAL_MB", 2048) * 2**20)  # every session's trained files together
TRAIN_SESSION_SECONDS = _env("TRAIN_SESSION_MINUTES", 120) * 60  # unused this long: the session's models go
# Shared mode, for a private or local run: trained styles go into the studio's styles folder and LoRAs into a
# shared folder, listed for everyone and kept for good, with no per-session caps (the studio before sessions)
TRAIN_SHARED = os.environ.get("STUDIO_TRAIN_SHARED", "").strip().lower() in ("1", "true", "yes", "on")

# Song recommendation
SONG_COUNT = Range(1, 20, integer=True)


SHOWN_CHARS = 40  # a caller's value quoted in a refusal: this many characters, then "..."


def shown(value: Any, chars: int = SHOWN_CHARS) -> str:
    """A caller's value as a refusal quotes it: its repr, a long text cut to its first ``chars`` characters
    ("'aaaa...'... (300 characters)"), any other long value's repr cut the same way: a very long name or
    list is never echoed in full."""
    if isinstance(value, str) and len(value) > chars:
        return f"{value[:chars]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= chars + 2 else f"{text[:chars]}... (cut)"


def capitalized(name: str) -> str:
    return name[:1].upper() + name[1:]


def check_number(name: str, value: Any, low: float | None, high: float | None, integer: bool = False) -> int | float:
    """``value`` if it is a finite number (not a bool) in [low, high] (None: no bound on that side); for
    ``integer`` (a control that takes whole numbers: seed, steps, count, ...) it must be whole, and an
    integral float such as 3.0 passes as the int 3 (3.7 is refused, never rounded). Raises InputError
    naming ``name`` (the control as the page labels it); the one rule for every number the studio takes,
    the UI's and the pipelines'."""
    numeric = isinstance(value, (int, float)) or type(value).__module__ == "numpy"
    ok = numeric and not isinstance(value, (bool, complex)) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        kind = "a whole number" if integer else "a number"
        if low is not None and high is not None:
            kind += f" from {format_bound(low)} to {format_bound(high)}"
        elif low is not None or high is not None:
            kind += f" {'at least ' + format_bound(low) if low is not None else 'at most ' + format_bound(high)}"
        raise InputError(f"{capitalized(name)} must be {kind}; got {shown(value)}.")
    return int(value) if integer else value


def check_boolean(name: str, value: Any) -> bool:
    """``value`` if it is a real boolean (true or false); "yes", 1 or "" are refused, naming ``name``."""
    if not isinstance(value, bool):
        raise InputError(f"{capitalized(name)} must be true or false; got {shown(value)}.")
    return value


def format_bound(x: float) -> str:
    """A limit as people write it: 4294967295, not 4.29497e+09; 0.05 stays 0.05."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def check_text(name: str, value: Any, *, required: bool = True, hint: str = "",
               max_chars: int = MAX_PROMPT_CHARS) -> str:
    """Return ``value`` if it is text of at most ``max_chars`` characters (and not blank, if
    ``required``); else raise InputError naming the field (``name``: the control as the page labels it),
    with ``hint`` on what to write."""
    if not isinstance(value, str):
        raise InputError(f"{capitalized(name)} must be text; got {type(value).__name__} {shown(value)}.")
    if required and not value.strip():
        raise InputError(f"{capitalized(name)} is empty{': ' + hint if hint else ''}.")
    if len(value) > max_chars:
        raise InputError(f"{capitalized(name)} must be at most {max_chars} characters; it has {len(value)}.")
    return value


def optional_text(name: str, value: Any, **kwargs: Any) -> str:
    """"" for None or blank text (the caller left the field empty), else ``check_text``'s result, stripped."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    return check_text(name, value, **kwargs).strip()


class Settings:
    """Base of every pipeline's settings dataclass: defaults in the fields, limits in ``RANGES``
    (field -> Range), texts in ``TEXTS`` (field -> (required, hint) or (required, hint, max characters):
    default ``MAX_PROMPT_CHARS``; None where the field's own rule in ``check()`` bounds its length), choices in ``CHOICES``, and
    ``validate()``.

    ``LABELS`` (field -> name) is each control's name as the page labels it, the one home of that name:
    the UI builds the control's label from it (``ui.common``: the name, then a note in parentheses), and
    every refusal here names the field by it ("Length must be ..."), so a caller reads one name per
    control; a field without an entry is named after itself ("top_p" -> "Top p").

    Subclasses add cross-field checks in ``check()``. Field names follow diffusers where one
    exists (``steps`` is ``num_inference_steps``, ``guidance`` is ``guidance_scale``).
    """

    RANGES: ClassVar[dict[str, Range]] = {}
    TEXTS: ClassVar[dict[str, tuple]] = {}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}
    LABELS: ClassVar[dict[str, str]] = {}

    @classmethod
    def label(cls, name: str) -> str:
        """Field ``name``'s control as the page names it (``LABELS``, else the field's own name)."""
        return cls.LABELS.get(name) or capitalized(name.replace("_", " "))

    def validate(self):
        """Check every field; return ``self`` so ``settings.validate()`` chains. Raises InputError naming
        the field by its control's name (``label``), with the field's name as its ``parameter``
        (``core.errors.concerning_parameter``: the endpoints' parameters are named after the fields, so the
        app names the parameter too); a ``check()`` rule tags the one field it is about the same way, and a
        rule about several fields tags none. A whole-number field given an integral float (3.0) holds the
        int (3) after it.

        Settings are frozen, so a passed check is remembered on the instance: the Studio validates
        once per request, before any audio decode or model load, and the pipeline's own guard for
        direct callers costs nothing after that (``dataclasses.replace`` makes a new, unchecked one).
        """
        if self.__dict__.get("_validated"):
            return self
        for name in dict.fromkeys([*self.TEXTS, *self.CHOICES, *self.RANGES]):  # texts, then choices, then numbers
            with concerning_parameter(name):
                self._check_field(name)
        self.check()
        object.__setattr__(self, "_validated", True)
        return self

    def _check_field(self, name: str) -> None:
        """Field ``name``'s own rules (``TEXTS``, ``CHOICES``, ``RANGES``); InputError naming its control."""
        value = getattr(self, name)
        if name in self.TEXTS:
            required, hint, *longest = self.TEXTS[name]
            most = longest[0] if longest else MAX_PROMPT_CHARS  # None: the field's own rule (check()) limits it
            check_text(self.label(name), value, required=required, hint=hint,
                       max_chars=sys.maxsize if most is None else most)
        if name in self.CHOICES and (not isinstance(value, str) or value not in self.CHOICES[name]):
            raise InputError(f"{self.label(name)} must be one of {', '.join(map(repr, self.CHOICES[name]))}; "
                             f"got {shown(value)}.")
        if name in self.RANGES:
            object.__setattr__(self, name, self.RANGES[name].check(self.label(name), value))

    def check(self) -> None:
        """Checks beyond each field's own range, text and choice (none by default): a rule about several
        fields raises as it is; a rule about one field runs inside ``concerning_parameter(field)``."""

    @classmethod
    def default(cls, name: str) -> Any:
        """The default value of field ``name`` (for the UI's controls)."""
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name == name:
                if f.default is not dataclasses.MISSING:
                    return f.default
                return f.default_factory()  # type: ignore[misc]
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """Every field, nested settings included, as plain values (for result parameters)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]
