"""gradio's other routes answering a malformed request in the studio's words.

``ui.http_errors`` checks the routes that run an endpoint. Every other route a caller can reach
(``/gradio_api/cancel``, ``/reset``, ``/stream/<event_id>``, ``/upload``, ``/component_server``, a query such
as ``/upload_progress?upload_id=``, ...) is checked by FastAPI against what the route declares, and a mistake
came back as pydantic's list of errors ("model_attributes_type", "loc": ["body"], ...). Two pieces answer
instead with ``{"detail": "<our sentence>"}`` (plain text on ``/gradio_api/upload``, like its budgets), one
log line each, no traceback:

* :func:`validation_in_our_words`, FastAPI's handler of ``RequestValidationError`` (installed by
  ``app.LAUNCH_OPTIONS``): for every route that declares its body or parameters, what was wrong (the first
  problem) and what the route takes, read from the route's own declaration (its body model's fields and
  their types, its query and path parameters), so a route gradio adds later is answered the same way.
  400 for a body that is not JSON (or not sent as JSON), 422 for the rest.
* :class:`OwnBodies` (ASGI middleware) for the routes that read their body themselves and declare none
  (``OWN_BODIES``: the upload, the page's component functions, its webcam recordings): the Content-Type
  checked first; gradio's own refusals of such a body (and the exception ``/component_server`` raises for
  a field left out or a component it does not have) reworded.

``tests/test_api_routes.py`` lists the app's POST routes from its FastAPI router and fails on a route that
reads its own body and is not in ``OWN_BODIES``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ui.http_errors import DOCS, _json_kind, read_body, replayed

log = logging.getLogger("studio")

_MULTIPART = "multipart/form-data"
# POST routes that read their body themselves (no body declared to FastAPI): path under gradio's API prefix ->
# (the media type they take, what the body holds)
OWN_BODIES = {
    "/upload": (_MULTIPART, 'the files, each in a field "files" (curl -F files=@sound.wav ...; gradio_client\'s '
                            "handle_file(path) uploads for you); it answers the list of their paths on the server"),
    "/process_recording": (_MULTIPART, 'a video recording in a field "video" (the page\'s webcam recorder)'),
    "/component_server": ("application/json", '{"data": ..., "component_id": <a whole number>, "session_hash": '
                                              '"...", "fn_name": "..."}: a server function of one of the page\'s '
                                              "components (the page's own calls)"),
}
_JSON_KINDS = {"string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "an object", "null": "null"}


# -- routes that declare what they take (FastAPI's validation) ----------------------------------------------
async def validation_in_our_words(request: Any, error: Any) -> Any:
    """FastAPI's exception handler for ``RequestValidationError``: our sentence instead of pydantic's list."""
    from fastapi.responses import JSONResponse

    problems = list(error.errors())
    first = problems[0] if problems else {"loc": ("body",), "type": ""}
    place = first["loc"][0] if first.get("loc") else "body"
    route = request.scope.get("route")
    said = f"{request.method} {request.url.path}"
    try:
        if place == "body":
            status, problem = _body_problem(problems, request.headers.get("content-type", ""), _is_form(route))
            message = f"{problem} {said} takes {_body_wanted(route)}. See {DOCS}."
        else:
            status, problem = 422, _parameter_problem(problems, place)
            message = f"{problem} {said} takes {_parameters_wanted(route, place)}. See {DOCS}."
    except Exception:  # noqa: BLE001  (a declaration this cannot read: still our words, never a traceback)
        log.exception("describing a refused request failed")
        status, message = 422, f"The request to {said} is not what the route takes. See {DOCS}."
    log.warning("API request refused (HTTP %d): %s", status, message)
    return JSONResponse({"detail": message}, status_code=status)


def _body_problem(problems: list[dict], content_type: str, form: bool) -> tuple[int, str]:
    first = problems[0]
    loc, kind, given = tuple(first.get("loc") or ()), first.get("type", ""), first.get("input")
    if kind == "json_invalid":
        return 400, "The request sent a body that is not JSON."
    missing = [str(p["loc"][1]) for p in problems if p.get("type") == "missing" and len(p.get("loc") or ()) == 2]
    if len(loc) == 1:  # the whole body
        if isinstance(given, (str, bytes)) and not form:  # not read as JSON: sent as another media type
            media = content_type.split(";")[0].strip() or "none"
            return 400, f"The request sent Content-Type {media[:60]}, not application/json."
        if given is None or missing:
            return 422, "The request sent no body."
        return 422, f"The request's body is a JSON {_json_kind(given)}, not an object."
    if missing:
        return 422, f"The request's {'form' if form else 'body'} has no {', '.join(map(_quoted, missing))}."
    field = ".".join(str(part) for part in loc[1:])
    return 422, f"The body's {_quoted(field)} {_wrong(first)}; got {_shown(given)}."


def _parameter_problem(problems: list[dict], place: str) -> str:
    first = problems[0]
    name = str(first["loc"][-1]) if len(first.get("loc") or ()) > 1 else "?"
    if first.get("type") == "missing":
        return f"The request has no {place} parameter {_quoted(name)}."
    return f"The {place} parameter {_quoted(name)} {_wrong(first)}; got {_shown(first.get('input'))}."


def _wrong(problem: dict) -> str:
    """ "must be a whole number" from pydantic's error type (int_parsing, string_type, ...)."""
    kind = problem.get("type", "")
    for prefix, words in (("int", "a whole number"), ("float", "a number"), ("bool", "true or false"),
                          ("string", "text"), ("list", "a list"), ("dict", "an object"), ("model", "an object")):
        if kind.startswith(prefix):
            return f"must be {words}"
    return "is not what it takes"


def _is_form(route: Any) -> bool:
    from fastapi import params

    field = getattr(route, "body_field", None)
    return field is not None and isinstance(getattr(field, "field_info", None), params.Form)


def _body_wanted(route: Any) -> str:
    """What ``route``'s body is, from its declaration: 'a JSON object with "a" (text) and "b" (a list)'."""
    field = getattr(route, "body_field", None)
    if field is None:
        return "no body"
    form = _is_form(route)
    annotation = getattr(getattr(field, "field_info", None), "annotation", None)
    fields = getattr(annotation, "model_fields", None)
    what = ("a form (application/x-www-form-urlencoded or multipart/form-data)" if form
            else "a JSON object (Content-Type: application/json)")
    if not fields:
        return what
    required = [f"{_quoted(info.alias or name)} ({_kind(info.annotation)})" for name, info in fields.items()
                if info.is_required()]
    optional = [_quoted(info.alias or name) for name, info in fields.items() if not info.is_required()]
    parts = f" with {_listed(required)}" if required else ""
    if optional:
        parts += f"{' and' if required else ' with'} optionally {_listed(optional, 'or')}"
    return what + parts


def _parameters_wanted(route: Any, place: str) -> str:
    """``route``'s parameters of ``place`` (query, path, header, cookie): '"upload_id" (text)'."""
    fields, pending = [], [getattr(route, "dependant", None)]
    while pending:  # the route's own parameters and its dependencies'
        dependant = pending.pop()
        if dependant is not None:
            fields += getattr(dependant, f"{place}_params", None) or []
            pending += getattr(dependant, "dependencies", None) or []
    named = [f"{_quoted(field.alias or field.name)} ({_kind(field.field_info.annotation)}"
             f"{'' if field.field_info.is_required() else ', optional'})" for field in fields]
    return f"the {place} parameter(s) {_listed(named)}" if named else f"no {place} parameters"


def _kind(annotation: Any) -> str:
    """A type in words, from its JSON schema: text, a whole number, a list, ... ("or null" when optional)."""
    try:
        from pydantic import TypeAdapter

        schema = TypeAdapter(annotation).json_schema()
    except Exception:  # noqa: BLE001  (a type pydantic cannot describe: say nothing wrong)
        return "a value"
    kinds = [option.get("type") for option in schema.get("anyOf", [schema])]
    words = [_JSON_KINDS.get(kind, "an object" if kind is None and schema.get("$ref") else "any value")
             for kind in kinds if kind]
    return " or ".join(dict.fromkeys(words)) or ("an object" if "$ref" in json.dumps(schema) else "any value")


# -- routes that read their body themselves ---------------------------------------------------------------
class OwnBodies:
    """ASGI middleware: the ``OWN_BODIES`` routes' Content-Type checked before gradio, and gradio's refusals
    of such a body (400, or an exception for a field it does not find) answered in our words. Install it
    before ``ui.uploads.UploadBudget``: the budgets' own refusals (429, 413) pass unchanged."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope.get("type") == "http" and scope.get("method") == "POST" else ""
        name = next((name for name in OWN_BODIES if path.rstrip("/").endswith("/gradio_api" + name)), None)
        if name is None:
            return await self.app(scope, receive, send)
        media, holds = OWN_BODIES[name]
        wanted = f"POST /gradio_api{name} takes {media}: {holds}. See {DOCS}."
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        given = content_type.split(";")[0].strip().lower()
        plain = name == "/upload"  # the upload route answers in plain text (its budgets' refusals too)
        if given != media or (media == _MULTIPART and "boundary=" not in content_type):
            sent = f"Content-Type {given[:60]}" if given else "no Content-Type"
            if given == media:
                sent += " without a boundary"
            return await _refuse(send, 400, f"The request sent {sent}. {wanted}", plain)
        if name == "/component_server":
            body, complete = await read_body(receive)
            if not complete:
                return None
            problem = _component_call_problem(body)
            if problem:
                status = 400 if problem.endswith("not JSON.") else 422
                return await _refuse(send, status, f"{problem} {wanted}", plain)
            receive = replayed(body, receive)
        started = {"status": None, "held": None}

        async def reworded(message: dict) -> None:
            if message["type"] == "http.response.start":
                started["status"] = message["status"]
                if message["status"] == 400 or (plain and message["status"] == 200):
                    started["held"] = [message]  # gradio's refusal of the body, or an upload that held no file
                    return
            elif started["held"] is not None:
                started["held"].append(message)
                if message.get("more_body"):
                    return
                answer = b"".join(part.get("body", b"") for part in started["held"][1:])
                if started["status"] == 400:
                    return await _refuse(send, 400, f"The request's body could not be used. {wanted}", plain)
                if answer.strip() == b"[]":
                    return await _refuse(send, 422, f"The request's body held no file in a field \"files\". {wanted}",
                                         plain)
                for held in started["held"]:
                    await send(held)
                return None
            await send(message)

        try:
            return await self.app(scope, receive, reworded)
        except KeyError as missing:  # /component_server: a field left out, or a component it does not have
            if started["status"] is not None:
                raise
            named = _shown(missing.args[0] if missing.args else "")
            return await _refuse(send, 422, f"The request names a component or a field the page does not have "
                                            f"({named}). {wanted}", plain)


def _component_call_problem(body: bytes) -> str | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return "The request sent a body that is not JSON."
    if not isinstance(value, dict):
        return f"The request's body is a JSON {_json_kind(value)}, not an object."
    missing = [key for key in ("data", "component_id", "session_hash", "fn_name") if key not in value]
    if missing:
        return f"The request's body has no {', '.join(map(_quoted, missing))}."
    for key, kind, words in (("component_id", int, "a whole number"), ("session_hash", str, "text"),
                             ("fn_name", str, "text")):
        if not isinstance(value[key], kind) or isinstance(value[key], bool):
            return f"The body's {_quoted(key)} must be {words}; got {_shown(value[key])}."
    return None


# -- shared ----------------------------------------------------------------------------------------------
def _quoted(name: str) -> str:
    return json.dumps(str(name)[:60])


def _listed(items: list[str], last: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


async def _refuse(send: Any, status: int, message: str, plain: bool) -> None:
    log.warning("API request refused (HTTP %d): %s", status, message)
    body = message.encode("utf-8") if plain else json.dumps({"detail": message}).encode("utf-8")
    media = b"text/plain; charset=utf-8" if plain else b"application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
