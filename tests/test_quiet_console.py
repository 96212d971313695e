"""A user's input error is one log line without a traceback; an unexpected error keeps its traceback."""

import logging

import gradio as gr
import pytest

from core.errors import InputError
from ui.common import user_errors


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
