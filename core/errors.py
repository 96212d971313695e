"""The project's own exception types.

Pipelines raise these with a message meant for the person using the app; app.py turns every
``StudioError`` into ``gr.Error`` with the same text, so API callers see it too.
"""


class StudioError(Exception):
    """Base class: the message is shown to the user as it is."""


class InputError(StudioError, ValueError):
    """The user's input (file, value, text) cannot be used; the message says why and what to do."""


class ModelUnavailableError(StudioError):
    """A model's weights cannot be found or loaded (offline, missing, wrong layout)."""


class OutOfMemoryError(StudioError):
    """The accelerator ran out of memory even after freeing the other models."""


class Cancelled(StudioError):
    """The person (or API caller) stopped the run; nothing is wrong with their input."""

    def __init__(self, message: str = "Cancelled."):
        super().__init__(message)
