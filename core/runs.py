"""The stop flag of the run in progress, for code that cannot be handed one.

``ui.common.guarded`` gives every event a ``threading.Event`` and sets it here (a context variable, so
it follows the handler into its worker thread and nowhere else); whatever ends the request (Cancel,
the time limit, a closed page) sets the flag. Long loops that are not passed a ``should_stop``
(decoding in ``core.sandbox``, Griffin-Lim, classifiers) call :func:`stop_requested` or
:func:`raise_if_stopped` between their steps. Outside an event (scripts, tests) there is no flag and
nothing ever stops.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar

from .errors import Cancelled

current_stop: ContextVar[threading.Event | None] = ContextVar("studio_stop", default=None)


def stop_requested() -> bool:
    """True once the run in progress (if any) has been told to stop."""
    flag = current_stop.get()
    return flag is not None and flag.is_set()


def raise_if_stopped() -> None:
    """Raise :class:`~core.errors.Cancelled` once the run in progress has been told to stop."""
    if stop_requested():
        raise Cancelled()
