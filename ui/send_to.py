""""Send to" buttons: a tab's result becomes another tab's input, and that tab opens.

A tab that shows a result calls ``buttons(component, targets)`` where it lays the result out (a row of
small buttons appears under it); a tab whose input can take it calls ``target(name, component)``.
``app.build_demo`` calls ``connect()`` once every tab is built, inside its ``gr.Tabs``: each button then
copies the value into the target (a playlist adds it to the tracks already there) and selects the
target's tab. These events are UI-only (no API endpoint): an API caller passes the file itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from .common import refusal

# name -> the label on the button (the target tab's name)
TARGETS = {"music_to_image": "Music to image", "image_to_music": "Image to music", "spectrogram": "Spectrogram",
           "playlist": "Playlist to music", "extend": "Extend"}
AUDIO = ("music_to_image", "spectrogram", "playlist", "extend")  # where any audio result can go
IMAGE = ("image_to_music",)  # where a picture can go


@dataclass
class _Target:
    component: Any
    append: bool  # a list of files (the playlist): add to it rather than replace


_targets: dict[str, _Target] = {}
_pending: list[tuple[gr.Button, Any, str]] = []


def target(name: str, component: Any, append: bool = False) -> None:
    """Register ``component`` (an input) as where ``name``'s "Send to" buttons deliver."""
    if name not in TARGETS:
        raise KeyError(f"unknown send-to target {name!r}")
    _targets[name] = _Target(component, append)


def buttons(source: Any, names: tuple[str, ...]) -> list[gr.Button]:
    """A row of "Send to <tab>" buttons for the result ``source``, laid out where this is called."""
    made = []
    with gr.Row():
        for name in names:
            button = gr.Button(f"Send to {TARGETS[name]}", size="sm", variant="secondary")
            _pending.append((button, source, name))
            made.append(button)
    return made


def _enclosing(component: Any, kind: type) -> Any:
    block = getattr(component, "parent", None)
    while block is not None and not isinstance(block, kind):
        block = getattr(block, "parent", None)
    return block


def _sender(tab_id: str, append: bool):
    def send(value, current=None):
        if not value:
            raise refusal("Nothing to send yet: make a result first.")
        if append:
            paths = [getattr(f, "name", f) for f in (current or [])]
            value = [*paths, value] if value not in paths else paths
        return value, gr.Tabs(selected=tab_id)

    return send


def connect() -> None:
    """Wire every button made since the last call to its target (call once, inside the app's gr.Tabs)."""
    try:
        for button, source, name in _pending:
            wanted = _targets.get(name)
            if wanted is None:  # that tab is not in this app
                button.visible = False
                continue
            tab = _enclosing(wanted.component, gr.Tab)
            tabs = _enclosing(tab, gr.Tabs)
            if tab is None or tabs is None:
                raise RuntimeError(f"the {name} target must sit in a gr.Tab inside a gr.Tabs")
            if tab.id is None:
                tab.id = name
            inputs = [source, wanted.component] if wanted.append else [source]
            button.click(_sender(tab.id, wanted.append), inputs, [wanted.component, tabs], api_visibility="private")
    finally:
        _pending.clear()
        _targets.clear()
