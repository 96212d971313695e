"""A user's input error is one log line without a traceback; an unexpected error keeps its traceback."""

import logging

import gradio as gr
import pytest

from core.errors import InputError
from ui.errors import user_errors


def test_an_input_error_is_one_line_and_gradio_prints_no_traceback(caplog):
    @user_errors
    def handler():
        raise InputError("No audio was given.")

    with caplog.at_level(logging.INFO, logger="studio"), pytest.raises(gr.Error) as raised:
        handler()
    assert raised.value.print_exception is False  # gradio's queue prints a traceback otherwise
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert [r.getMessage() for r in caplog.records] == ["handler: No audio was given."]
    assert all(r.exc_info is None for r in caplog.records)


def test_an_unexpected_error_logs_its_traceback_once(caplog):
    @user_errors
    def handler():
        raise ZeroDivisionError("boom")

    with caplog.at_level(logging.INFO, logger="studio"), pytest.raises(gr.Error) as raised:
        handler()
    assert raised.value.print_exception is False  # logged here once, not again by gradio
    assert [r.exc_info[0] for r in caplog.records] == [ZeroDivisionError]


def test_the_console_drops_the_keras_legacy_note_only():
    import app

    keep = app._NothingToAct()
    note = logging.LogRecord("absl", logging.WARNING, "", 0, "This file format is considered legacy.", None, None)
    real = logging.LogRecord("studio", logging.WARNING, "", 0, "handler: No audio was given.", None, None)
    assert not keep.filter(note) and keep.filter(real)


def test_the_libraries_unactionable_warnings_are_dropped_at_their_handler_and_real_ones_kept():
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "from pipelines.models import loaders\n"
        "from pipelines.models.building import tiny\n"
        "loaders.import_model_libraries()\n"
        "loaders.load_blip(str(tiny.ensure('blip')))\n"  # BlipImageProcessor: the torchvision fallback note
        "loaders.load_musicgen(str(tiny.ensure('musicgen')))\n"  # pad/bos 2048 beside a vocabulary of 2048
        "from transformers.utils import logging as tf_logging\n"
        "from diffusers.utils import logging as df_logging\n"
        "tf_logging.get_logger('transformers.models.x').warning('a real transformers problem')\n"
        "df_logging.get_logger('diffusers.loaders.lora').warning('No LoRA keys associated to CLIPTextModel found')\n"
        "df_logging.get_logger('diffusers.loaders.lora').warning('a real diffusers problem')\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "a real transformers problem" in done.stderr and "a real diffusers problem" in done.stderr
    for note in ("requires torchvision", "within the vocabulary", "No LoRA keys"):
        assert note not in done.stderr, done.stderr


def test_saving_a_transformers_model_prints_no_bar_and_loading_keeps_its_own(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "from pipelines.models import loaders\n"
        "loaders.import_model_libraries()\n"
        "from transformers import BertConfig, BertModel\n"
        "from transformers.utils import logging as tf_logging\n"
        "model = BertModel(BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,"
        " intermediate_size=8))\n"
        f"model.save_pretrained({str(tmp_path)!r})\n"
        "for _ in tf_logging.tqdm(range(3), desc='Loading weights'):\n"
        "    pass\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Writing model shards" not in done.stderr
    assert "Loading weights" in done.stderr  # a bar that shows progress on long work stays


def test_every_refusal_the_ui_raises_is_shown_without_gradios_traceback():
    """gradio prints the traceback of every gr.Error unless told not to: each one the UI makes says
    print_exception=False (ui.common.refusal, ui.errors' own), so a refusal is one log line, never more."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    loud = []
    for path in sorted([*(root / "ui").glob("*.py"), root / "app.py"]):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Error"
                    and not any(k.arg == "print_exception" and getattr(k.value, "value", None) is False
                                for k in node.keywords)):
                loud.append(f"{path.name}:{node.lineno}")
    assert loud == []
