"""Test harness: no network, tiny models, and the real app served on a free localhost port."""

import atexit
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

# Before anything imports huggingface_hub or gradio: tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("STUDIO_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "studio"))
# gradio's copies of uploads and examples: this run's own folder. In the shared /tmp/gradio, another test
# run closing its app deletes the files it made there, which are the same paths (content hashes) as ours.
if "GRADIO_TEMP_DIR" not in os.environ:
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="studio-tests-gradio-")
    atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], ignore_errors=True)
# librosa's numba kernels cache their machine code beside the installed package by default; a cache that
# several test processes write at once (the served app, notebooks, recipes' subprocesses, other checkouts
# sharing one virtualenv) was seen corrupted, segfaulting the tempo step. Each checkout keeps its own.
# Every test client uploads from 127.0.0.1 to one served app for the whole run: the per-client upload
# budgets would refuse the suite itself (tests/test_uploads.py sets its own small ones).
os.environ.setdefault("STUDIO_UPLOAD_FILES_WAITING", "100000")
os.environ.setdefault("STUDIO_UPLOAD_MB_PER_MINUTE", "100000")
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))
from core.numba_cache import numba_cache_for  # noqa: E402

numba_cache_for("tests")  # the test process's own; processes it starts nest theirs inside (core/numba_cache.py)

import pytest  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_real_data(*parts: str) -> Path:
    """The folder holding the original projects' files under ``parts`` (scripts/real_data.py finds it).

    Skips with one line saying how to get them; fails instead where ``STUDIO_REQUIRE_REAL_DATA=1``
    (CI, which has them, must notice when they go missing).
    """
    from scripts.real_data import HOW_TO_GET, find_real_data

    folder = find_real_data(*parts)
    if folder is None:
        if os.environ.get("STUDIO_REQUIRE_REAL_DATA") == "1":
            pytest.fail(f"STUDIO_REQUIRE_REAL_DATA=1 but {HOW_TO_GET}", pytrace=False)
        pytest.skip(HOW_TO_GET)
    return folder


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The original projects' files (the mask paper's pairs, MusicTI's clips and images, the TechJam LoRA)."""
    return require_real_data()


@pytest.fixture(scope="session")
def studio():
    from pipelines.studio import Studio

    return Studio(profile="tiny", device="cpu")


@contextmanager
def serving(demo):
    """Serve ``demo`` (queued as the app does) on a free localhost port; yields its URL, closes it after."""
    import app

    demo = app.queue(demo)
    for attempt in range(3):
        port = free_port()
        try:
            demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                        **app.LAUNCH_OPTIONS)
            break
        except (OSError, ValueError):
            # gradio checks the new server with one 3 s request: on a loaded machine the first answer can
            # come later ("When localhost is not accessible ..."), or another process took the free port
            demo.close()
            if attempt == 2:
                raise
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="session")
def served_app(studio):
    """The real app (app.build_demo) on the tiny profile, served on localhost; yields its URL."""
    import app

    with serving(app.build_demo(studio)) as url:
        yield url


@pytest.fixture(scope="module")
def ffmpeg(tmp_path_factory):
    """An ``ffmpeg`` first on the PATH for the module; yields its path.

    Gradio encodes streamed audio with ffmpeg (``gradio/audio_stream_encoder.py``), which Spaces
    preinstall and CI machines need not have: this is imageio-ffmpeg's static binary (requirements-dev.txt),
    linked as ``ffmpeg`` in a folder of its own. With ffmpeg on the PATH gradio also asks ffprobe whether
    each audio file it serves plays in a browser (``processing_utils.audio_is_playable``), and that
    package has no ffprobe: where none is installed, the check answers what ffprobe answers for the
    16-bit WAV files the studio writes (playable).
    """
    try:
        import imageio_ffmpeg
    except ImportError:
        pytest.fail("imageio-ffmpeg is missing: install requirements-dev.txt (make venv).", pytrace=False)
    import gradio.processing_utils

    folder = tmp_path_factory.mktemp("ffmpeg")
    (folder / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
        if not shutil.which("ffprobe"):
            patch.setattr(gradio.processing_utils, "audio_is_playable", lambda path: True)
        yield str(folder / "ffmpeg")


@pytest.fixture(scope="session")
def client(served_app):
    """A gradio_client.Client on the served app: every endpoint is tested the way API users call it."""
    from gradio_client import Client

    return Client(served_app, verbose=False)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def tiny_pipe(studio):
    """The tiny sound-to-music pipe (``mask_model``) on the CPU, its progress bar off."""
    pipe = studio.manager.get_cpu("mask_model")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    """The training recipes' toy audio: three 2.5 s tones in one 'style' (``training_toys.write_clips``).
    tests/test_train_style.py has a ``clips`` of its own."""
    from training_toys import write_clips

    return write_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="session")
def frames(tmp_path_factory) -> Path:
    """The LoRA recipe's toy imagefolder: three pictures and captions (``training_toys.write_frames``)."""
    from training_toys import write_frames

    return write_frames(tmp_path_factory.mktemp("frames"))


@pytest.fixture
def counted_steps(studio, monkeypatch):
    """Counts the denoising steps of music_to_image (its stop-flag polls, one per step), each made 50 ms
    slower so that a long run lasts seconds on any machine."""
    polls = []
    real = studio.music_to_image

    def counting(*args, should_stop=None, **kwargs):
        def poll():
            polls.append(time.perf_counter())
            time.sleep(0.05)
            return should_stop()

        return real(*args, should_stop=poll, **kwargs)

    monkeypatch.setattr(studio, "music_to_image", counting)
    return polls


def metrics_of(table) -> dict[str, float]:
    """A result's metrics table (gr.Dataframe through gradio_client: {"headers", "data"} or rows) as
    label -> value."""
    rows = table["data"] if isinstance(table, dict) else table
    return {label: float(value) for label, value in rows}


def click_example(page, name: str) -> None:
    """Click a visible example row or thumbnail showing ``name`` and wait until the tab's input holds that
    file: its player offers it for download (state, not time: the button pressed earlier sent no audio)."""
    page.get_by_text(name, exact=True).locator("visible=true").first.click()
    page.wait_for_function(
        "(name) => [...document.querySelectorAll(`a[href*='${name}'], audio[src*='${name}']`)]"
        ".some(element => element.offsetParent !== null)", arg=name, timeout=60_000)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium (Debian's package, driven by Playwright) per module: Playwright's sync API keeps an
    event loop running in the main thread while it is open, which later tests' asyncio.run() cannot share."""
    from playwright.sync_api import sync_playwright

    if not shutil.which("chromium"):
        pytest.fail("Chromium is not installed: run `make browser` (Debian: apt-get install chromium).")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str, width: int, height: int):
    """A new page (its own session) of ``width`` x ``height`` CSS pixels on ``url``, its tabs drawn."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(120_000)
    page.goto(url)
    page.wait_for_selector("[role='tab']")
    return page


@pytest.fixture(scope="module")
def page(browser, served_app):
    """A tall page on the served app, per module (the flow tests; the layout tests size their own)."""
    page = open_page(browser, served_app, 1400, 1800)
    yield page
    page.close()
