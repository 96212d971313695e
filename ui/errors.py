"""Errors as the studio's users read them: the error boundary of every handler, and gradio's own
refusals of a request or an input, reworded.

Pipelines raise the project's errors (``core.errors``); ``user_errors`` turns them into ``gr.Error``
with the same message (API callers read it too), and a ``Cancelled`` run into an information toast.
``input_checks_in_our_words`` rewords what gradio checks before a handler runs (a number out of its
range, a request naming a server file, too few inputs), one log line each and no traceback.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import gradio as gr

from core.errors import Cancelled, InputError, StudioError
from pipelines.schema import limits
from ui import binding, file_kinds, file_urls, http_errors

log = logging.getLogger("studio")
# the ASGI scope of the request whose event is being processed (the queue's join): whose budget a file
# fetched by address spends (set by the process_api wrapper of _request_checks_in_our_words)
_caller_scope: contextvars.ContextVar[dict | None] = contextvars.ContextVar("studio_caller_scope", default=None)
# the event (gradio's BlockFunction) whose request is being processed: which control and parameter an input
# came from, for the refusals of its values and of the files its handler loads (set by process_api's wrapper)
_event: contextvars.ContextVar[Any] = contextvars.ContextVar("studio_event", default=None)


# -- error handling -------------------------------------------------------------------------------------
class Refused(gr.Error):
    """A request refused for what its caller sent or did (an ``InputError``, gradio's checks in our words,
    "Busy"), not for a fault of the studio's: every route answers it as gradio answers any gr.Error (the
    event's error, the page's toast, gradio_client's AppError), and the route that runs an event in the
    request itself, ``POST /gradio_api/run/<name>``, with HTTP ``status`` (422: the input; 429: busy)
    instead of gradio's 500 (``ui.http_errors``). No traceback is printed."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message, print_exception=False)
        self.status = status


def user_errors(fn: Callable) -> Callable:
    """Turn the project's errors into gr.Error (shown in the UI and sent to API callers); a cancelled
    run is not an error: it says so and leaves every output as it was."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Cancelled as stopped:
            gr.Info(str(stopped))
            return gr.skip()
        except InputError as error:  # the caller's input: one log line, no traceback (the message says it all)
            message = _named_by_input(fn, args, kwargs, error)
            log.warning("%s: %s", fn.__name__, message)
            raise Refused(message) from None
        except StudioError as error:  # a missing model, out of memory: the same, but the studio's side
            log.warning("%s: %s", fn.__name__, error)
            raise gr.Error(str(error), print_exception=False) from None
        except Exception as error:  # noqa: BLE001  (the app must keep running)
            log.exception("unexpected error in %s", fn.__name__)  # a real error keeps its traceback, once
            raise gr.Error(
                f"Something unexpected went wrong ({type(error).__name__}: {str(error)[:200]}). "
                "The app is still running; please try again or report this.",
                print_exception=False,
            ) from error

    return wrapper


def _named_by_input(fn: Callable, args: tuple, kwargs: dict, error: InputError) -> str:
    """The refusal of one input, named by the control and parameter it came from as every refusal names them:
    a value a loader could not use (``core.errors.concerning``: the error's ``input_value``) is prefixed
    ("Sound (parameter audio_path): The audio file 'a.wav' ..."); a settings field a check refused
    (``core.errors.concerning_parameter``: its ``parameter``, the handler's parameter of that name) gets the
    parameter after the control's name ("Steps (parameter steps) must be ..."). The message alone when the
    refusal is not one input's (a cross-field rule) or the event is not known."""
    message = str(error)
    block_fn = _event.get()
    cause = error  # a pipeline may word a loader's refusal again ("Track 2: ..."), raising from it
    while cause is not None and not hasattr(cause, "input_value") and cause.parameter is None:
        cause = cause.__cause__ if isinstance(cause.__cause__, InputError) else None
    if cause is None or block_fn is None:
        return message
    try:
        names = binding.parameters(fn)
        values = binding.arguments(fn, args, kwargs)
    except (TypeError, ValueError):
        return message
    if len(names) != len(block_fn.inputs):
        return message
    if not hasattr(cause, "input_value"):
        return _with_parameter(message, block_fn, names.index(cause.parameter)) if cause.parameter in names else message
    subject = cause.input_value
    found = [index for index, name in enumerate(names)
             if _holds(values.get(name), subject) and (subject is not None or _takes_files(block_fn.inputs[index]))]
    if len(found) != 1:
        return message
    return f"{_input_name(block_fn, found[0], block_fn.inputs[found[0]])}: {message}"


def _with_parameter(message: str, block_fn: Any, index: int) -> str:
    """``message`` (about input ``index``) naming its control as ``_input_name`` does, once: the parameter
    inserted after the control's name it starts with ("Steps must ..." -> "Steps (parameter steps) must
    ..."), else the control and parameter before it; unchanged when it names them already."""
    block = block_fn.inputs[index]
    named, label = _input_name(block_fn, index, block), binding.control_name(block)
    if message.startswith(named) or named == label:
        return message
    if message.startswith(label) and message[len(label):len(label) + 1] in (" ", ":", ",", ""):
        return named + message[len(label):]
    return f"{named}: {message}"


def _holds(value: Any, subject: Any) -> bool:
    """Whether an argument is (or, a list of files, holds) the value a loader refused."""
    import os

    if isinstance(value, (list, tuple)) and not (isinstance(subject, (list, tuple)) and value is subject):
        return any(_holds(item, subject) for item in value)
    if isinstance(value, (str, os.PathLike)) and isinstance(subject, (str, os.PathLike)):
        return os.fspath(value) == os.fspath(subject)
    return value is subject


# -- gradio's own input checks, in our words -------------------------------------------------------------
def input_checks_in_our_words(demo: gr.Blocks) -> gr.Blocks:
    """Make gradio's own input checks read like the studio's, and check every value a caller sends (the
    page, gradio_client or the HTTP API) for its control's whole kind (``_checked_value``): a slider or
    number out of its range, not a number or not whole where whole numbers are taken says "Steps must be
    a whole number from 1 to 100; got 1000." instead of "Value 1000 is greater than maximum value 100."
    (or a silent rounding); a checkbox takes true or false only, a text box text only. Each refusal names
    the control as the page labels it (``binding.control_name``), is one log line and a gr.Error without
    the traceback gradio prints for its own errors. Each input component's ``preprocess`` (where gradio
    checks) is wrapped on the instance; call after building ``demo``."""
    for block in demo.blocks.values():
        if isinstance(block, gr.components.Component) and "preprocess" not in vars(block):
            block.preprocess = _checked_preprocess(block, block.preprocess)
    _request_checks_in_our_words(demo)
    return demo


def _request_checks_in_our_words(demo: gr.Blocks) -> None:
    """gradio's checks of a whole request, reworded where they would show internals or name no input:
    too few inputs ("Wanted inputs: [<gradio.components.textbox.Textbox object at 0x...>]"), and, per
    input, before gradio's own pass: a file sent as a bare path or a dict that is not gradio's file
    ("1 validation error for FileData"), a choice outside its control's choices ("Value: 'x' (type:
    <class 'str'>) is not in the list of choices"), a URL gradio will not fetch ("Hostname ... failed
    validation"), a file of the wrong kind ("Invalid file type ... ['image']": ``ui.file_kinds``) and a
    request naming a file on the server ("Cannot move /.../app.py to the gradio
    cache dir": the install folder). Each message names the control and the API parameter. A file given
    by address is fetched here, bounded like an upload (``ui.file_urls``), never by gradio's unbounded
    download. Wraps ``demo.validate_inputs``, ``demo.preprocess_data`` and ``demo.process_api`` (which
    passes the request down: its budget counts the fetched bytes) on the instance."""
    validate, preprocess_data, process_api = demo.validate_inputs, demo.preprocess_data, demo.process_api

    def validate_inputs(block_fn: Any, inputs: list) -> None:
        wanted = block_fn.inputs
        if len(inputs) < len(wanted):
            labels = ", ".join(getattr(block, "label", None) or type(block).__name__ for block in wanted)
            endpoint = f"/{block_fn.api_name}" if block_fn.api_name else "This event"
            message = (f"{endpoint} takes {len(wanted)} input(s) ({labels}); the request sent {len(inputs)}. "
                       "The page's 'Use via API' lists them.")
            _refuse(message)
        validate(block_fn, inputs)

    async def checked_preprocess_data(block_fn: Any, inputs: list, state: Any, *args: Any, **kwargs: Any) -> Any:
        explicit_call = args[0] if args else kwargs.get("explicit_call", False)
        validate_inputs(block_fn, inputs)  # the count first (gradio's pass checks it again)
        inputs = list(inputs)
        for index, block in enumerate(block_fn.inputs[:len(inputs)]):
            if index in getattr(block_fn, "component_prop_inputs", ()) or inputs[index] is None:
                continue
            if state is not None and block._id in state and not block.stateful:
                block = state[block._id]  # the session's copy: its choices may have been updated
            if _takes_files(block):
                where = _input_name(block_fn, index, block)
                _check_file_payload(block, inputs[index], where)
                inputs[index] = await _files_in_cache(block, inputs[index], where, not explicit_call)
                wrong_kind = file_kinds.refusal(block, inputs[index], where)  # a WAV where an image goes
                if wrong_kind:
                    _refuse(wrong_kind)
            elif isinstance(block, (gr.Radio, gr.Dropdown, gr.CheckboxGroup)):
                _check_choice(block, inputs[index], lambda: _input_name(block_fn, index, block))
        return await preprocess_data(block_fn, inputs, state, *args, **kwargs)

    async def process_api_of_caller(*args: Any, **kwargs: Any) -> Any:
        request = kwargs["request"] if "request" in kwargs else (args[3] if len(args) > 3 else None)
        if isinstance(request, list):  # a batch: its first request's caller
            request = request[0] if request else None
        starlette_request = vars(request).get("request") if request is not None else None
        scope = getattr(starlette_request, "scope", None)
        token = _caller_scope.set(scope)
        block_fn = kwargs["block_fn"] if "block_fn" in kwargs else (args[0] if args else None)
        event = _event.set(demo.fns.get(block_fn) if isinstance(block_fn, int) else block_fn)
        try:
            return await process_api(*args, **kwargs)
        except Refused as refused:
            if scope is not None:  # the request that runs the event in itself (/run/<name>) answers with this
                scope[http_errors.REFUSED_STATUS] = refused.status
            raise
        finally:
            _event.reset(event)
            _caller_scope.reset(token)

    demo.validate_inputs = validate_inputs
    demo.preprocess_data = checked_preprocess_data
    demo.process_api = process_api_of_caller


def _refuse(message: str) -> None:
    log.warning("request refused: %s", message)
    raise Refused(message)


def _input_name(block_fn: Any, index: int, block: Any) -> str:
    """How a message names input ``index`` of an event: its label and, for API callers, its parameter
    ("Sound (parameter audio_path)"), the name ``view_api()`` shows (gradio's own naming)."""
    label = binding.control_name(block)
    try:
        from gradio.blocks import _get_api_parameter_name
        from gradio.utils import get_function_params

        name = _get_api_parameter_name(block_fn, get_function_params(block_fn.fn), index)
    except Exception:  # noqa: BLE001  (gradio's private helper moved: the label alone still says which)
        return label
    return label if name.startswith("param_") else f"{label} (parameter {name})"


# -- files: gradio's file dicts only, uploaded or from a public address ------------------------------------
def _takes_files(block: Any) -> bool:
    from gradio.data_classes import FileData, ImageData, ListFiles

    model = getattr(block, "data_model", None)
    return isinstance(model, type) and issubclass(model, (FileData, ImageData, ListFiles))


def _check_file_payload(block: Any, payload: Any, where: str) -> None:
    """A file input's payload must be gradio's file dict (a list of them for several files): what
    ``gradio_client.handle_file`` sends. A bare path, for one, is text to the server."""
    from pydantic import ValidationError

    try:
        block.data_model.model_validate(payload, context={"validate_meta": True})
        return
    except ValidationError:
        pass
    many = block.data_model.__name__ == "ListFiles"
    sent = _described(payload)
    if many and isinstance(payload, list) and payload:
        sent = "a list holding " + _described(next((item for item in payload if not isinstance(item, dict)), payload[0]))
    elif many and _is_one_file(payload):
        sent = "one file alone: put it in a list, [gradio_client.handle_file(path)], even when it is the only one"
    wanted = "[gradio_client.handle_file(path), ...]" if many else "gradio_client.handle_file(path)"
    _refuse(f"{where} takes {'a list of files' if many else 'a file'}: pass {'them' if many else 'it'} as {wanted} "
            f"(a local path or an http(s) address), not {sent}.")


def _is_one_file(payload: Any) -> bool:
    """Whether ``payload`` is one of gradio's file dicts (what ``handle_file`` sends)."""
    from gradio.data_classes import FileData
    from pydantic import ValidationError

    try:
        FileData.model_validate(payload, context={"validate_meta": True})
    except ValidationError:
        return False
    return True


def _described(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {value[:100]!r}"
    return "a dict that is not gradio's file dict" if isinstance(value, dict) else f"a {type(value).__name__}"


async def _files_in_cache(block: Any, payload: Any, where: str, uploaded_only: bool) -> Any:
    """The payload with its files moved into gradio's cache, as gradio's own pass does (which then finds
    them there): uploads stay where they are, an http(s) address is fetched by ``ui.file_urls`` (bounded
    like an upload: size, time, the caller's upload budgets). One file at a time, so a refusal names the
    file: a server path (not uploaded) or an address the studio does not fetch."""
    if isinstance(payload, list):
        return [await _files_in_cache(block, item, where, uploaded_only) for item in payload]
    from gradio import processing_utils
    from gradio.exceptions import InvalidPathError
    from gradio_client.utils import is_http_url_like

    address = payload.get("path") if isinstance(payload, dict) else None
    if is_http_url_like(address) and not getattr(block, "proxy_url", None):
        try:
            path = await file_urls.fetch_into_cache(address, block.GRADIO_CACHE, where, _caller_scope.get())
        except file_urls.FetchRefused as refused:
            _refuse(str(refused))
        block.temp_files.add(path)  # as gradio's own download does: removed with the app's files
        payload = {**payload, "path": path}
    try:
        return await processing_utils.async_move_files_to_cache(payload, block, check_in_upload_folder=uploaded_only)
    except InvalidPathError:
        _refuse(f"{where} names a file that is not one uploaded to the studio: upload it first (API callers: "
                "gradio_client.handle_file(path)). Files on the server cannot be named.")


# -- choices ------------------------------------------------------------------------------------------------
def _check_choice(block: Any, payload: Any, where: Callable[[], str]) -> None:
    """A radio, dropdown or checkbox group's value must be among its choices (a dropdown that allows
    custom values takes anything): refused as gradio's own check would, naming the control and its
    choices."""
    if isinstance(block, gr.Dropdown) and block.allow_custom_value:
        return
    several = isinstance(payload, list) and not isinstance(block, gr.Radio)
    allowed = [value for _, value in block.choices]
    outside = [value for value in (payload if several else [payload]) if value not in allowed]
    if not outside:
        return
    choices = ", ".join(repr(value) for value in allowed)
    if not allowed:
        _refuse(f"{where()} has nothing to choose from yet; got {limits.shown(outside[0])}.")
    _refuse(f"{'Each value of ' if several else ''}{where()} must be one of {choices}; got {limits.shown(outside[0])}.")


# -- every value by its control's kind (the page's controls and any API caller's value) -----------------------
def _checked_value(component: Any, name: str, payload: Any) -> Any:
    """``payload`` (not None) as ``component``'s kind takes it, or InputError naming the control (``name``):
    a slider or number: a finite number within its bounds, whole where the control takes whole numbers
    (precision 0: an integral 3.0 passes as 3, 3.7 is refused, never rounded: ``limits.check_number``);
    a checkbox: true or false, nothing else ("yes" is not true); a text box: text (123 or a list is not
    turned into "123"); a dropdown taking any name: a name, or a list of names where it takes several."""
    if isinstance(component, (gr.Slider, gr.Number)):
        return limits.check_number(name, payload, component.minimum, component.maximum,
                                   integer=component.precision == 0)
    if isinstance(component, gr.Checkbox):
        return limits.check_boolean(name, payload)
    if isinstance(component, gr.Textbox):
        return limits.check_text(name, payload, required=False, max_chars=sys.maxsize)
    if isinstance(component, gr.Dropdown) and component.allow_custom_value:
        several = component.multiselect and isinstance(payload, list)
        for value in payload if several else [payload]:
            if not isinstance(value, str):
                kind = "a name or a list of names" if component.multiselect else "a name"
                raise InputError(f"{name} takes {kind} (text); got {limits.shown(payload)}.")
    return payload


def _named_in_event(component: Any) -> str:
    """How a refusal names ``component`` as an input of the event being processed: its label and API
    parameter ("Stereo (parameter stereo)"); its label alone outside an event."""
    block_fn = _event.get()
    inputs = getattr(block_fn, "inputs", None) or []
    index = next((i for i, block in enumerate(inputs) if block._id == component._id), None)
    return binding.control_name(component) if index is None else _input_name(block_fn, index, component)


def _checked_preprocess(component: Any, preprocess: Callable) -> Callable:
    def checked(payload: Any) -> Any:
        name = _named_in_event(component)
        try:
            if payload is not None:
                payload = _checked_value(component, name, payload)
            return preprocess(payload)
        except InputError as error:
            message = str(error)
        except (gr.Error, TypeError, ValueError) as error:
            message = f"{name}: {getattr(error, 'message', None) or error}"
        log.warning("input refused: %s", message)
        raise Refused(message) from None

    return checked
