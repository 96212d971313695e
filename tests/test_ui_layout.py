"""The page's wording and wiring without a browser: outputs that are outputs, honest labels on random
models, readable History parameters, a live About tab (tests/test_browser_layout.py looks at the page)."""

from types import SimpleNamespace

import gradio as gr
import pytest


@pytest.fixture(scope="module")
def demo(studio):
    import app

    return app.build_demo(studio)


def _events(demo):
    """The endpoints: every public event (gradio's own example loaders are not ours)."""
    return [fn for fn in demo.fns.values() if fn.api_visibility == "public"]


def test_every_endpoints_file_outputs_take_no_upload(demo):
    """An output audio, picture, gallery or file shows no "Drop here / Click to Upload" before a result."""
    outputs = {id(o): o for fn in _events(demo) for o in fn.outputs
               if isinstance(o, (gr.Audio, gr.Image, gr.File, gr.Gallery))}
    assert len(outputs) >= 15
    uploads = [o.label for o in outputs.values() if o.interactive is not False]
    assert uploads == []


def test_metrics_tables_and_the_zip_wait_hidden_until_filled(demo):
    hidden = [block for block in demo.blocks.values()
              if isinstance(block, (gr.Dataframe, gr.File)) and block.visible is False]
    labels = sorted(block.label.split(" (")[0] for block in hidden)
    assert labels == ["Metrics", "Metrics", "Metrics", "Session zip", "Similarity to the input"]
    # each is shown by the step that follows its event, with whatever it then holds
    followers = [fn for fn in demo.fns.values() if len(fn.outputs) == 1 and fn.outputs[0] in hidden
                 and fn.inputs == fn.outputs]
    assert len(followers) == len(hidden)


def test_shown_when_filled_shows_rows_and_hides_an_empty_table():
    import pandas as pd

    from ui import common

    rows = pd.DataFrame([["SSIM", "0.41"]], columns=["metric", "value"])
    empty = pd.DataFrame([["", ""]], columns=["metric", "value"])
    blocks = gr.Blocks()
    with blocks:
        table = common.metrics_table()
        event = gr.Button().click(lambda: None)
        common.shown_when_filled(event, table)
    (follower,) = [fn for fn in blocks.fns.values() if fn.outputs == [table]]
    assert follower.fn(rows).visible is True and follower.fn(empty).visible is False


def test_random_models_say_so_beside_their_numbers(demo):
    from ui import common

    labels = [getattr(block, "label", None) or "" for block in demo.blocks.values()]
    for name in ("Genre", "Emotion", "Description used", "Prompt used", "Songs with lyrics close to the caption",
                 "Metrics", "Similarity to the input"):
        marked = [label for label in labels if label.startswith((f"{name} (", f"{name}:"))]
        assert marked and all("random" in label and "tiny profile" in label for label in marked), (name, marked)
    # tempo is measured by beat tracking, not by a model: it is not called random
    assert not any(label.startswith("Tempo") and "random" in label for label in labels)
    real = SimpleNamespace(info=SimpleNamespace(profile="hub"))
    assert common.random_note(real, "CLAP") == "" and not common.random_weights(real)
    assert common.random_note(SimpleNamespace(info=SimpleNamespace(profile="fullsize"))) == \
        " (random model: fullsize profile)"


def test_history_shows_parameters_as_readable_rows():
    from ui.history import Entry, parameter_rows

    entry = Entry("music_to_image", 0.0, [], {"steps": 30, "guidance": 7.5, "seed": 42, "lora": None,
                                                "genres": [["pop", 0.4812], ["rock", 0.2]],
                                                "mask": {"invert": 1.0, "contrast": 200.0},
                                                "metrics": {"ssim": 0.123456}})
    assert parameter_rows(entry) == [
        ["endpoint", "music_to_image"], ["steps", "30"], ["guidance", "7.5"], ["seed", "42"], ["lora", ""],
        ["genres", "pop 0.4812, rock 0.2"], ["mask invert", "1"], ["mask contrast", "200"],
        ["metrics ssim", "0.1235"]]


def test_generate_fills_the_description_panels_from_the_pictures_parameters(demo, tmp_path):
    """Music to image's Generate step is followed by one that reads the genre, emotion and tempo back from
    the picture it made (the PNG keeps them), so the panels fill without Describe."""
    from PIL import Image

    from pipelines.schema.outputs import save_png

    (generate,) = [fn for fn in demo.fns.values() if fn.api_name == "music_to_image"]
    image = generate.outputs[0]
    (follower,) = [fn for fn in demo.fns.values() if fn.inputs == [image] and len(fn.outputs) == 3]
    assert [o.label.split(" (")[0] for o in follower.outputs] == ["Genre", "Emotion", "Tempo"]
    heard = save_png(Image.new("RGB", (8, 8)), tmp_path / "heard.png",
                     {"genres": [["pop", 0.48]], "emotions": [["nostalgia", 0.25]], "bpm": 117, "refined_bpm": 120.04})
    genres, emotions, tempo = follower.fn(heard)
    assert genres == {"pop": 0.48} and emotions == {"nostalgia": 0.25} and tempo == "117 BPM (refined 120.0)"
    written = save_png(Image.new("RGB", (8, 8)), tmp_path / "written.png", {"prompt": "a red house"})
    assert all(isinstance(value, type(gr.skip())) for value in follower.fn(written))  # the user's own text


def test_tempo_text():
    from pipelines.systems.music_to_image import tempo_text

    assert tempo_text(117, 120.04) == "117 BPM (refined 120.0)"
    assert tempo_text(117) == "117 BPM" and tempo_text(None, None) == "no steady beat"


def test_the_about_tab_is_current_when_opened_and_speaks_of_this_device(demo, studio):
    status = [fn for fn in demo.fns.values() if fn.api_name == "status"]
    (opened,) = [fn for fn in demo.fns.values() if fn.outputs == status[0].outputs and fn is not status[0]]
    assert opened.fn is status[0].fn  # opening the tab runs what Refresh runs
    words = [block.value for block in demo.blocks.values()
             if isinstance(block, gr.Markdown) and "Models load on first use" in str(block.value)]
    assert words and "GPU" not in words[0]  # the tests' studio is on the CPU
