"""Music & image studio: one Gradio app, one tab per pipeline, one GPU shared through a device manager.

    python app.py                   # real models from the Hugging Face Hub, loaded on first use
    python app.py --profile tiny    # tiny random models built on this machine: no network, no GPU
    python app.py --no-mcp          # without the MCP server (every tab is an MCP tool by default; STUDIO_MCP=0)

This file only assembles: flags, one tab module per pipeline from ui/, the queue, the upload budget
(ui/uploads.py), the start-up cleanup of what earlier processes left, launch. The work
happens in pipelines/, which never imports gradio; their errors (StudioError) become gr.Error in
ui/common.py with the same message, so API callers read them too. Importing this module loads no model.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections.abc import Mapping  # noqa: E402

from core.numba_cache import numba_cache_for  # noqa: E402

numba_cache_for("app")  # before numba is imported: a training it starts, or a second app, never shares it

from pipelines.models.device import import_spaces_first  # noqa: E402

import_spaces_first()  # ZeroGPU: `spaces` must be imported before torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
_T_GRADIO = time.perf_counter()
import gradio as gr  # noqa: E402

_GRADIO_IMPORT_S = time.perf_counter() - _T_GRADIO

from pipelines.schema import limits  # noqa: E402

from pipelines.signal import sandbox
from pipelines.models.registry import PROFILES  # noqa: E402
from pipelines.studio import Studio  # noqa: E402
from ui import about, image_to_music, music_to_image, playlist_to_music, sound_to_music  # noqa: E402
from ui import body_limit, common, errors, fetch_first, history, history_tab, http_errors, send_to, uploads  # noqa: E402
from ui import route_bodies  # noqa: E402
from ui import spectrogram as spectrogram_tab  # noqa: E402
from ui import style_interpolation  # noqa: E402
from ui import text_to_music  # noqa: E402
from ui import extend, streaming, train_style, variations  # noqa: E402
from ui import cancels  # noqa: E402

TITLE = "Sound ↔ Picture Studio"
# The page's own styling (gradio 6 takes it at launch): a compact header, so that each tab's inputs, main
# button and result share a laptop's first screen; the names in a table's first column (models, roles,
# parameters) never broken mid-word (on a phone the table scrolls sideways instead); on a phone, the
# examples wrapped to the screen's width.
CSS = """
#studio-header h1 { font-size: 1.6rem; margin: 0 0 0.15rem 0; }
#studio-header p { margin: 0; }
.studio-intro p { font-size: var(--text-sm); margin: 0; }
.studio-table [data-col="0"] span, .studio-table .sizing-body td:first-child .cell-wrap,
.studio-table th:first-child span { white-space: nowrap; word-break: normal; overflow-wrap: normal; }
@media (max-width: 640px) {
  #studio-header h1 { font-size: 1.3rem; }
  .table-wrap > table[role=grid] { table-layout: fixed; width: 100%; }  /* examples: wrapped to fit */
  .table-wrap > table[role=grid] td, .table-wrap > table[role=grid] th { padding: 6px 4px; }
}
"""


class _LaunchOptions(Mapping):
    """``launch()``'s keyword arguments (``demo.launch(**LAUNCH_OPTIONS)``). Handlers turn every error
    into gr.Error themselves; show_error lets gradio's own input checks (an upload that is not an
    image, say) reach API callers with their message too. ``ui.body_limit.BodyLimit`` bounds every
    request body but an upload's (``limits.MAX_REQUEST_BODY_BYTES``). A file over our limit is refused while it
    streams in, and ``ui.uploads.UploadBudget`` (middleware) refuses a client over its upload budget
    or a full temp folder before the bytes land; ``ui.http_errors.CallChecks`` (middleware) answers a
    malformed API call (an unknown endpoint, a body of the wrong shape) in our words, and ``ui.route_bodies``
    gradio's other routes (a malformed body or query; ``OwnBodies`` before the budgets, whose refusals it
    leaves as they are); ``css`` is the page's styling (``CSS``). ``app_kwargs`` is made fresh for every
    launch: gradio writes its own lifespan handler into the dict it is given."""

    def _options(self) -> dict:
        from fastapi.exceptions import RequestValidationError
        from starlette.middleware import Middleware

        middleware = [Middleware(body_limit.BodyLimit), Middleware(route_bodies.OwnBodies),
                      Middleware(uploads.UploadBudget), Middleware(http_errors.CallChecks)]
        return {"show_error": True, "max_file_size": limits.MAX_UPLOAD_BYTES, "css": CSS,
                "app_kwargs": {"middleware": middleware,
                               "exception_handlers": {RequestValidationError: route_bodies.validation_in_our_words}}}

    def __getitem__(self, key: str):
        return self._options()[key]

    def __iter__(self):
        return iter(self._options())

    def __len__(self) -> int:
        return len(self._options())


LAUNCH_OPTIONS = _LaunchOptions()
TABS = (sound_to_music, music_to_image, style_interpolation, text_to_music, image_to_music, playlist_to_music,
        extend, variations, train_style, spectrogram_tab, history_tab, about)


def build_demo(studio: Studio, delete_cache: tuple[int, int] = limits.CACHE_SWEEP) -> gr.Blocks:
    """The app; ``delete_cache`` (every, older than; seconds) bounds gradio's temporary files."""
    with gr.Blocks(title=TITLE, delete_cache=delete_cache) as demo:
        gr.Markdown(
            f"# {TITLE}\nTurn sound into pictures and pictures into sound. "
            f"Audio inputs up to {int(limits.MAX_INPUT_SECONDS)} s."
            + (f" **{studio.info.profile.capitalize()} profile: random models, output is noise.**"
               if common.random_weights(studio) else ""),
            elem_id="studio-header",
        )
        with gr.Tabs(overflow_behavior="wrap"):  # a phone shows every tab's name, on more lines
            for tab in TABS:
                tab.build(studio)
            send_to.connect()  # results flow between tabs
        demo.unload(common.stop_session)  # a closed page stops its runs
        demo.unload(history.forget)  # and its history goes
        demo.unload(train_style.forget_session(studio))  # its trainings stop, what it trained goes
        streaming.loop_music(demo)  # loop playback on every music output
    return errors.input_checks_in_our_words(demo)


# -- entry point --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=PROFILES, default=os.environ.get("STUDIO_PROFILE", "hub"),
                        help="hub: real models from the Hugging Face Hub; tiny: random tiny models, offline; "
                             "fullsize: random weights at the real sizes (builds ~16 GB once)")
    parser.add_argument("--device", default=os.environ.get("STUDIO_DEVICE", "auto"),
                        help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link (Colab)")
    parser.add_argument("--max-queue", type=int, default=int(os.environ.get("STUDIO_MAX_QUEUE", limits.MAX_QUEUE)),
                        help="requests waiting at most, all events together")
    parser.add_argument("--max-run-seconds", type=float,
                        default=float(os.environ.get("STUDIO_MAX_RUN_SECONDS", limits.MAX_RUN_SECONDS)),
                        help="a request running longer is stopped and its caller told")
    parser.add_argument("--max-runs-per-user", type=int,
                        default=int(os.environ.get("STUDIO_MAX_RUNS_PER_USER", limits.MAX_RUNS_PER_USER)),
                        help="runs of one session at a time; more are refused as busy")
    parser.add_argument("--max-queued-per-user", type=int,
                        default=int(os.environ.get("STUDIO_MAX_QUEUED_PER_USER", limits.MAX_QUEUED_PER_USER)),
                        help="requests of one session waiting in the queue; more are refused as busy")
    parser.add_argument("--no-mcp", dest="mcp", action="store_false",
                        default=os.environ.get("STUDIO_MCP", "1").strip().lower() not in ("0", "false", "no", "off"),
                        help="do not serve the tabs as MCP tools at /gradio_api/mcp/ (env STUDIO_MCP=0 does the same)")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="skip importing the model libraries (and building tiny models) in the background at start")
    return parser.parse_args(argv)


def queue(demo: gr.Blocks, max_size: int = limits.MAX_QUEUE,
          per_user: int = limits.MAX_QUEUED_PER_USER) -> gr.Blocks:
    # GPU events share one concurrency id with limit 1; CPU-side events (previews, codecs) run two at a time.
    # Files given by address are fetched before their event takes a slot (ui/fetch_first.py).
    # A cancel stops only the job it names, and every job whose run is stopped is answered (ui/cancels.py).
    demo = fetch_first.fetch_before_queue(demo.queue(default_concurrency_limit=2, max_size=max_size))
    return cancels.cancel_named_jobs_only(common.admit_requests(demo, per_user))


class _NothingToAct(logging.Filter):
    """Drops log lines no user can act on (Keras's legacy-HDF5 note: the original classifiers are .h5)."""

    NOTES = ("considered legacy",)

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(note in record.getMessage() for note in self.NOTES)


def quiet_console() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    for handler in logging.getLogger().handlers:
        handler.addFilter(_NothingToAct())


def _warm_up(studio: Studio) -> None:
    started = time.perf_counter()
    try:
        studio.warm_up()
    except Exception:  # noqa: BLE001  (a tab's own first click then reports what is wrong)
        logging.getLogger("studio").exception("warming up failed")
        return
    logging.getLogger("studio").info("warmed up in %.1f s (libraries imported, built models ready)",
                                     time.perf_counter() - started)


def clean_leftovers() -> None:
    """What earlier processes left: half-built model folders (a kill -9 during a build), their gradio
    temp files (gradio forgets those of other processes; this process gets its own temp folder), visitors'
    trained styles past their lifetime and the staging folders of trainings whose process is gone."""
    from pipelines.models.building.common import remove_stale_builds
    from pipelines.models.trained import TrainedStore, default_root

    started = time.perf_counter()
    builds = remove_stale_builds()
    _, files, size = uploads.claim_temp_folder()
    trained = TrainedStore(default_root())  # visitors' trained models past their lifetime, dead trainings' staging
    stale = trained.sweep(force=True) + trained.remove_stale_staging()
    if builds or files or stale:
        logging.getLogger("studio").info("removed %d stale build folder(s), %d old temp file(s) (%.0f MB) and %d "
                                         "expired training folder(s) in %.1f s", len(builds), files, size / 2**20,
                                         len(stale), time.perf_counter() - started)


def start(args: argparse.Namespace) -> gr.Blocks:
    """Build, queue and launch the app without blocking (the Colab notebook calls this); returns the demo."""
    quiet_console()
    clean_leftovers()
    sandbox.POOL.warm()  # the first upload is decoded by a worker that has its libraries imported
    if os.environ.get("SYSTEM") == "spaces" or os.environ.get("SPACE_ID"):
        args.host = "0.0.0.0"
    common.RUN_LIMITS = common.RunLimits(max_seconds=args.max_run_seconds, per_user=args.max_runs_per_user)
    studio = Studio(profile=args.profile, device=args.device)
    studio.preload()  # only does something on ZeroGPU
    if args.warm_up:  # the first click of each tab need not import libraries or build tiny models
        threading.Thread(target=_warm_up, args=(studio,), name="studio-warm-up", daemon=True).start()
    demo = queue(build_demo(studio), args.max_queue, args.max_queued_per_user)
    # quiet: gradio's own lines would suggest `share=True`, where our flag is --share; we print the URLs
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, prevent_thread_lock=True,
                quiet=True, mcp_server=args.mcp, **LAUNCH_OPTIONS)
    print(
        f"Serving {TITLE} (profile {args.profile}, device {studio.device}) after "
        f"{time.perf_counter() - _T0:.2f} s from start ({_GRADIO_IMPORT_S:.2f} s of it importing gradio) "
        f"at {demo.local_url}" + (f" and {demo.share_url}" if demo.share_url else " (--share for a public link)")
        + (f"; MCP tools at {demo.local_url}gradio_api/mcp/ (--no-mcp to switch off)" if args.mcp else ""),
        flush=True,
    )
    return demo


def main(argv: list[str] | None = None) -> None:
    demo = start(parse_args(argv))
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        demo.close()
        sys.exit(0)


if __name__ == "__main__":
    main()
