"""Seconds per tab for a user's first click on the tiny profile: every API endpoint called through
gradio_client with the values the page opens with, the tab's first example filled in.

    python benchmarks/tiny_demo.py              # the app is built and served in this process
    python benchmarks/tiny_demo.py --runs 2     # second run: models already in memory
    python benchmarks/tiny_demo.py --profile hub   # without network: how fast each tab says what is missing
    python benchmarks/tiny_demo.py --no-warm-up    # clicks at once, paying the imports and tiny builds themselves

By default the app's start-up warm-up (``Studio.warm_up``, a background thread in ``app.start``: library
imports and tiny builds) is run and timed first, then the clicks: a user who opens the page once the
log says "warmed up". ``--no-warm-up`` measures a user who clicks the moment the app serves.

Defaults are read from the built app itself (each input component's value; the first gr.Examples row
of the tab overrides the inputs it covers), so the figures follow the UI when its defaults change.
Two values the page fills in at run time are filled in the same way here: the style names (the
first two, as when the tab opens) and the spectrogram image (the one the first click made). Target:
under 10 s per tab on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if "hub" not in sys.argv:  # the tiny profile never needs the network (set before huggingface_hub loads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

TARGET_S = 10.0
# tab -> the endpoints one default click runs, in order
TABS = {
    "Sound to music": ["preview_mask", "masked_img2img"],
    "Music to image": ["describe_music", "music_to_image"],
    "Style interpolation": ["style_interpolation"],
    "Text to music": ["text_to_music"],
    "Prompt interpolation": ["interpolate_prompts"],
    "Image to music": ["image_to_music", "recommend_songs"],
    "Playlist to music": ["playlist_to_music"],
    "Spectrogram": ["audio_to_spectrogram", "spectrogram_to_audio"],
    "History": ["download_session"],  # the zip of everything the clicks above made
    "About": ["status"],
}


def record_examples() -> list:
    """Keep every gr.Examples the app builds, with its raw (unprocessed) rows."""
    from gradio.helpers import Examples  # gr.Examples is a function that builds one of these

    seen = []
    original = Examples.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self)

    Examples.__init__ = init
    return seen


def page_defaults(demo, examples) -> dict[str, list]:
    """api_name -> the argument list a user's first click sends (component values + first example row)."""
    first_row = {}
    for example in examples:
        for component, value in zip(example.inputs, example.examples[0]):
            first_row.setdefault(component._id, value)
    defaults = {}
    for fn in demo.fns.values():
        if fn.api_name in {name for names in TABS.values() for name in names}:
            defaults[fn.api_name] = [first_row.get(c._id, c.value) for c in fn.inputs]
    return defaults


def as_client_value(value):
    from gradio_client import handle_file

    if isinstance(value, str) and os.path.isfile(value):
        return handle_file(value)
    if isinstance(value, list) and value and all(isinstance(v, str) and os.path.isfile(v) for v in value):
        return [handle_file(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", default="tiny", choices=["tiny", "hub"])
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false")
    args = parser.parse_args()

    examples = record_examples()
    import app
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from pipelines.studio import Studio

    studio = Studio(profile=args.profile, device="cpu")
    if args.warm_up:
        start = time.perf_counter()
        studio.warm_up()
        print(f"warm-up (the app does this in the background at start): {time.perf_counter() - start:.1f} s")
    demo = app.queue(app.build_demo(studio))
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    try:
        client = Client(demo.local_url, verbose=False)
        defaults = page_defaults(demo, examples)
        try:
            defaults["style_interpolation"][1] = studio.style_names()[:2]  # what the tab fills in when it opens
        except Exception:  # noqa: BLE001  (no styles without network: the tab itself reports that)
            defaults["style_interpolation"][1] = ["jazz", "rock"]
        for run in range(args.runs):
            print(f"run {run + 1} ({'models load on first use' if run == 0 else 'models in memory'}):")
            worst = 0.0
            for tab, endpoints in TABS.items():
                start = time.perf_counter()
                made, said = None, ""
                for name in endpoints:
                    values = list(defaults[name])
                    if name == "spectrogram_to_audio":  # the page copies the image the first button made
                        values[0] = made[0]
                    try:
                        made = client.predict(*[as_client_value(v) for v in values], api_name=f"/{name}")
                    except AppError as error:  # what the user reads (the hub profile without network)
                        said = f"   says: {str(error)[:110]}"
                        break
                seconds = time.perf_counter() - start
                worst = max(worst, seconds)
                print(f"  {tab:<20} {seconds:6.1f} s   ({' + '.join('/' + n for n in endpoints)}){said}", flush=True)
            print(f"  slowest tab {worst:.1f} s: {'under' if worst < TARGET_S else 'OVER'} the {TARGET_S:.0f} s target")
    finally:
        demo.close()


if __name__ == "__main__":
    main()
