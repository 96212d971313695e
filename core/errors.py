"""The project's own exception types, and who reads their messages.

Pipelines raise these with a message meant for the person using the app; app.py turns every
``StudioError`` into ``gr.Error`` with the same text, so API callers see it too. The same pipelines
run under the command lines (``python -m training.*``, ``python -m evaluation``, ``python -m studio
batch``), whose users give paths, not uploads: inside :func:`command_line` (every CLI's ``main`` runs
in it) a message about an input file names the path as given and says what is wrong with it, where
the app names the file alone (never a server path) and asks for the upload again.
"""

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path


class StudioError(Exception):
    """Base class: the message is shown to the user as it is."""


class InputError(StudioError, ValueError):
    """The user's input (file, value, text) cannot be used; the message says why and what to do.

    What it is about, where one input is (the app names that input's control and API parameter:
    ``ui.errors.user_errors``): ``input_value``, the value a loader refused (:func:`concerning`), or
    ``parameter``, the name of the settings field a check refused (:func:`concerning_parameter`); neither
    for a refusal of several inputs together."""

    parameter: str | None = None


def concerning(parameter: str) -> Callable[[Callable], Callable]:
    """Decorate a loader: an ``InputError`` it raises is about its argument ``parameter`` (the path, recording
    or None a caller gave), kept on the error as ``input_value`` (the innermost loader's, when they nest).
    The app names the control that value came from (``ui.errors.user_errors``): "Sound (parameter
    audio_path): The audio file 'a.wav' could not be read as audio ..."."""

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except InputError as error:
                if not hasattr(error, "input_value"):
                    error.input_value = signature.bind_partial(*args, **kwargs).arguments.get(parameter)
                raise

        return wrapper

    return decorate


@contextmanager
def concerning_parameter(name: str) -> Iterator[None]:
    """An ``InputError`` raised inside this block is about the caller's parameter ``name`` (a settings field:
    the endpoints' parameters are named after the fields), kept on the error as ``parameter`` (the innermost
    block's, when they nest). ``limits.Settings.validate`` checks each field in one; the app then names
    its control and parameter: "Style name (parameter name) must be ..."."""
    try:
        yield
    except InputError as error:
        if error.parameter is None:
            error.parameter = name
        raise


class ModelUnavailableError(StudioError):
    """A model's weights cannot be found or loaded (offline, missing, wrong layout)."""


class OutOfMemoryError(StudioError):
    """The accelerator ran out of memory even after freeing the other models."""


class Cancelled(StudioError):
    """The person (or API caller) stopped the run; nothing is wrong with their input."""

    def __init__(self, message: str = "Cancelled."):
        super().__init__(message)


# -- who reads the message: a visitor of the app (uploads) or a command line's user (paths) -----------------
_COMMAND_LINE: ContextVar[bool] = ContextVar("studio_command_line", default=False)


@contextmanager
def command_line() -> Iterator[None]:
    """Word input-file errors for a command line inside this block (see the module doc)."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def on_command_line() -> bool:
    """True inside :func:`command_line`, and in a decode worker serving a call made in one."""
    return _COMMAND_LINE.get()


def shown_path(path) -> str:
    """An input file as a message shows it: the path as given on a command line, the name alone in the
    app (a server path tells a visitor nothing and shows the install)."""
    text = str(path)
    return text if on_command_line() else Path(text).name


def file_error(what: str, path, problem: str, app_hint: str = "Please upload it again.") -> InputError:
    """InputError for an input file that cannot be used, worded for whoever reads it. ``problem``
    says what is wrong ("does not exist", "cannot be read (Permission denied)", "is empty (0 bytes)").
    In the app: "The audio file 'a.wav' does not exist. Please upload it again." (``app_hint``). On a
    command line: "The audio file 'data/a.wav' does not exist." (the path is the user's to check)."""
    message = f"The {what} '{shown_path(path)}' {problem}."
    return InputError(message if on_command_line() or not app_hint else f"{message} {app_hint}")
