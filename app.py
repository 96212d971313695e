"""Music & image studio: one Gradio app, one tab per pipeline, one GPU shared through a device manager.

    python app.py                   # real models from the Hugging Face Hub, loaded on first use
    python app.py --profile tiny    # tiny random models built on this machine: no network, no GPU

This file is the UI layer only: it turns widgets into arguments and results into widgets. The work
happens in pipelines/, which never imports gradio; their errors (StudioError) become gr.Error here
with the same message, so API callers read them too. Importing this module loads no model.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import functools  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from pipelines.device import import_spaces_first  # noqa: E402

import_spaces_first()  # ZeroGPU: `spaces` must be imported before torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
_T_GRADIO = time.perf_counter()
import gradio as gr  # noqa: E402

_GRADIO_IMPORT_S = time.perf_counter() - _T_GRADIO

from pipelines import limits  # noqa: E402
from pipelines.errors import StudioError  # noqa: E402
from pipelines.studio import Studio  # noqa: E402

log = logging.getLogger("studio")

TITLE = "Sound ↔ Picture Studio"


# -- error handling -----------------------------------------------------------------------------------
def user_errors(fn):
    """Turn the project's errors into gr.Error (shown in the UI and sent to API callers)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except StudioError as error:
            raise gr.Error(str(error)) from error
        except Exception as error:  # noqa: BLE001  (the app must keep running)
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(
                f"Something unexpected went wrong ({type(error).__name__}: {str(error)[:200]}). "
                "The app is still running; please try again or report this."
            ) from error

    return wrapper


# -- tabs ---------------------------------------------------------------------------------------------
def about_tab(studio: Studio) -> None:
    def summary() -> str:
        info = studio.describe()
        tiny_note = (
            "\n\n**Tiny profile:** every model is a tiny random-weight stand-in built on this machine. "
            "Everything runs end to end, but the output is noise."
            if info["profile"] == "tiny"
            else ""
        )
        return (
            f"**Profile:** `{info['profile']}` · **Device:** `{info['device']}` ({info['dtype']})"
            f"{' · ZeroGPU' if info['zero_gpu'] else ''}{tiny_note}"
        )

    def loaded_models() -> list[list]:
        return [[r["name"], r["where"], r["mb"], r["uses"], r["load_s"], ", ".join(r["shares"])]
                for r in studio.manager.status()]

    def roles() -> list[list]:
        return [[r["role"], r["source"], r["purpose"]] for r in studio.registry.describe()]

    with gr.Tab("About"):
        info_md = gr.Markdown(summary())
        gr.Markdown("### Models in memory\nModels load on first use and move off the GPU when others need room.")
        models_df = gr.Dataframe(
            value=loaded_models(),
            headers=["model", "where", "MB", "uses", "load (s)", "shares weights with"],
            interactive=False,
        )
        refresh = gr.Button("Refresh", size="sm")
        refresh.click(lambda: (summary(), loaded_models()), outputs=[info_md, models_df], api_name="status")
        gr.Markdown("### Where each model comes from")
        gr.Dataframe(value=roles(), headers=["role", "source", "purpose"], interactive=False)


def build_demo(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(
            f"# {TITLE}\nTurn sound into pictures and pictures into sound. "
            f"Audio inputs up to {int(limits.MAX_INPUT_SECONDS)} s."
            + (" **Tiny profile: random models, output is noise.**" if studio.info.profile == "tiny" else "")
        )
        about_tab(studio)
    return demo


# -- entry point --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=["hub", "tiny"], default=os.environ.get("STUDIO_PROFILE", "hub"),
                        help="hub: real models from the Hugging Face Hub; tiny: random tiny models, offline")
    parser.add_argument("--device", default=os.environ.get("STUDIO_DEVICE", "auto"),
                        help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link (Colab)")
    parser.add_argument("--max-queue", type=int, default=32, help="requests waiting at most")
    return parser.parse_args(argv)


def queue(demo: gr.Blocks, max_size: int = 32) -> gr.Blocks:
    # GPU events share one concurrency id with limit 1; CPU-side events (previews, codecs) run two at a time
    return demo.queue(default_concurrency_limit=2, max_size=max_size)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    if os.environ.get("SYSTEM") == "spaces" or os.environ.get("SPACE_ID"):
        args.host = "0.0.0.0"
    studio = Studio(profile=args.profile, device=args.device)
    studio.preload()  # only does something on ZeroGPU
    demo = queue(build_demo(studio), args.max_queue)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, prevent_thread_lock=True)
    print(
        f"Serving {TITLE} (profile {args.profile}, device {studio.device}) after "
        f"{time.perf_counter() - _T0:.2f} s from start ({_GRADIO_IMPORT_S:.2f} s of it importing gradio)",
        flush=True,
    )
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        demo.close()
        sys.exit(0)


if __name__ == "__main__":
    main()
