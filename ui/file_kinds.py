"""The kind of file each file input takes (a sound, an image), checked once for every input of every endpoint.

A file input given the wrong kind of file (a WAV where a spectrogram image goes, a picture where a sound
goes) is refused by its file's name, the way gradio's ``file_types`` check judges it, but in our words
and naming the input: "Spectrogram image (PNG) (parameter image_path) takes an image (PNG, JPEG, WebP
or TIFF); knocks.wav is a sound file (audio/wav)." What each input takes:

* ``gr.Audio``: a sound (any ``audio/*`` name; ``video/*`` too: a container such as WebM, what a
  browser records, is decoded for its sound);
* ``gr.Image``: an image (``image/*``);
* a component with ``file_types`` (``gr.File``): those types, by gradio's own test
  (``gradio_client.utils.is_valid_file``), so that nothing reaches gradio's "Invalid file type" check.

Only a name whose type is known and is another kind of media (or text) is refused for ``gr.Audio`` and
``gr.Image``; a name that says nothing goes on to the decoder, whose message says what it could not
read. Called by ``ui.errors`` for each file input of a request, after the files are in gradio's cache.
"""

from __future__ import annotations

import os
from typing import Any

from pipelines.signal import audio, images

SOUND = f"a sound file ({audio.FORMATS})"
PICTURE = f"an image ({images.FORMATS})"
_MEDIA = ("audio", "image", "video", "text")  # MIME major types that say what a file is
_WORDS = {"audio": "a sound file", "image": "an image", "video": "a video", "text": "a text file"}


def refusal(block: Any, payload: Any, where: str) -> str | None:
    """Why ``payload`` (gradio's file dict, or a list of them) is the wrong kind of file for ``block``,
    named ``where`` in the message ("Sound (parameter audio_path)"); None when it is not (or cannot be told
    by its name). The first wrong file of a list is the one named."""
    for item in payload if isinstance(payload, list) else [payload]:
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, str) or not path:
            continue
        name = item.get("orig_name") or os.path.basename(path)
        takes = _wanted(block, path)
        if takes is not None:
            return (f"{where} takes {takes}; {name} is {_what(path)}. Check which file goes to which input "
                    "(API callers: the parameters' order in docs/API.md).")
    return None


def _wanted(block: Any, path: str) -> str | None:
    """What ``block`` takes, in words, when the file at ``path`` is not it; None when it is (or may be)."""
    from gradio import components
    from gradio_client.utils import get_mimetype, is_valid_file

    file_types = getattr(block, "file_types", None)
    if file_types:
        return None if is_valid_file(path, list(file_types)) else " or ".join(_takes(kind) for kind in file_types)
    accepted = {components.Audio: ("audio", "video"), components.Image: ("image",)}
    kinds = next((kinds for kind, kinds in accepted.items() if isinstance(block, kind)), None)
    major = (get_mimetype(path) or "").split("/")[0]
    if kinds is None or major not in _MEDIA or major in kinds:
        return None
    return SOUND if kinds[0] == "audio" else PICTURE


def _takes(file_type: str) -> str:
    if file_type.startswith("."):
        return f"a {file_type} file"
    return {"audio": SOUND, "image": PICTURE}.get(file_type, _WORDS.get(file_type, f"a {file_type} file"))


def _what(path: str) -> str:
    from gradio_client.utils import get_mimetype

    mime = get_mimetype(path)
    if mime is None:
        return "a file whose name does not say its type (no known extension)"
    major = mime.split("/")[0]
    return f"{_WORDS[major]} ({mime})" if major in _WORDS else f"a file of type {mime}"
