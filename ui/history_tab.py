"""The History tab: what this session made, "Download all" as one zip, and re-running a result.

Endpoint: ``/download_session`` (no inputs) -> a zip with every result's files in a numbered folder
and ``session.json`` (per result: the endpoint, its time, every parameter and metric, its files).
The store it shows is ``ui/history.py``.
"""

from __future__ import annotations

import gradio as gr

from core.errors import InputError

from .common import GPU, guarded, shown_when_filled
from .errors import user_errors
from .history import MAX_ENTRIES, entries, parameter_rows, rerun, session_of, write_zip


def build(studio) -> None:
    @user_errors
    def download_session(request: gr.Request = None):
        mine = entries(session_of(request))
        if not mine:
            raise InputError("This session has no results yet: make some music or a picture first, then download.")
        return write_zip(mine)

    def show(request: gr.Request = None):
        mine = entries(session_of(request))
        labels = [entry.label(len(mine) - i) for i, entry in enumerate(mine)]
        images = [(image, labels[i]) for i, entry in enumerate(mine) for image in entry.images]
        first = mine[0] if mine else None
        return (images, gr.Dropdown(choices=labels, value=labels[0] if labels else None),
                first.audio if first else None, parameter_rows(first) if first else [])

    @user_errors
    def run_again(label, request: gr.Request = None):
        mine = entries(session_of(request))
        labels = [entry.label(len(mine) - i) for i, entry in enumerate(mine)]
        if label not in labels:
            raise InputError("Choose a result to run again.")
        rerun(mine[labels.index(label)], session_of(request))
        return show(request)

    def pick(label, request: gr.Request = None):
        mine = entries(session_of(request))
        labels = [entry.label(len(mine) - i) for i, entry in enumerate(mine)]
        if label not in labels:
            return None, []
        return mine[labels.index(label)].audio, parameter_rows(mine[labels.index(label)])

    with gr.Tab("History") as tab:
        gr.Markdown(
            f"Everything this session made (the {MAX_ENTRIES} newest results), with the parameters of each. "
            "**Download all** gives a zip of the audio, the pictures and a JSON of every parameter. Files are "
            "kept for up to an hour.",
            elem_classes=["studio-intro"],
        )
        with gr.Row():
            with gr.Column():
                chosen = gr.Dropdown([], label="Result")
                with gr.Row():
                    again = gr.Button("Re-run the chosen result (same settings and seed)", min_width=200)
                    refresh = gr.Button("Refresh", min_width=100)
                audio = gr.Audio(label="Its audio", type="filepath", interactive=False)
                parameters = gr.Dataframe(headers=["parameter", "value"], datatype=["str", "str"], wrap=True,
                                          label="Its parameters", interactive=False, max_height=420,
                                          elem_classes=["studio-table"])
            with gr.Column():
                download = gr.Button("Download all", variant="primary")
                archive = gr.File(label="Session zip", interactive=False, visible=False)  # shown with its zip
                gallery = gr.Gallery(label="Pictures of this session", columns=4, height=360, interactive=False)
        outputs = [gallery, chosen, audio, parameters]
        tab.select(show, None, outputs, api_visibility="private")
        refresh.click(show, None, outputs, api_visibility="private")
        chosen.input(pick, chosen, [audio, parameters], api_visibility="private")
        # a model run like the tab's own: the GPU queue; API callers call the endpoint itself again
        again.click(guarded(run_again), chosen, outputs, concurrency_id=GPU, concurrency_limit=1,
                    api_visibility="private")
        zipped = download.click(guarded(download_session), None, archive, api_name="download_session",
                                api_description="A zip of everything this session made: its WAVs, PNGs and "
                                                "session.json with every parameter.")
        shown_when_filled(zipped, archive)
