"""The HTTP API's call routes answering a caller's mistake in the studio's words, before gradio sees it.

gradio's routes that run an endpoint take a JSON body that FastAPI checks with pydantic, and find the
endpoint by name or number without a check of their own: an unknown name is an uncaught exception
(HTTP 500 and a traceback in the server's log), a body that is not JSON or lacks ``"data"`` gets
pydantic's list of errors. :class:`CallChecks` (ASGI middleware, installed by ``app.LAUNCH_OPTIONS``)
reads the body of every ``POST`` to these routes first and answers a mistake itself, as
``{"detail": "<our message>"}`` with one log line and no traceback:

* ``/gradio_api/call/<name>``, ``/gradio_api/run/<name>`` and ``/gradio_api/api/<name>`` (body
  ``{"data": [...]}``; ``/run`` and ``/api`` with a ``"fn_index"`` run that event whatever the name: the
  page calls its events outside the queue as ``/run/predict``), ``/gradio_api/call/v2/<name>`` (body
  ``{"<parameter>": value, ...}``) and ``/gradio_api/queue/join`` (the page's route: ``{"data",
  "fn_index", "session_hash"}``);
* an endpoint name (or ``fn_index``) the app does not have: 404, listing the endpoints it has;
* a body that is not JSON: 400; JSON of the wrong shape (not an object, no ``"data"`` list, a field of
  the wrong type, a parameter the endpoint does not have) or with the wrong number of inputs: 422,
  saying what the body should look like and the endpoint's inputs in order (docs/API.md);
* ``/run/<name>`` and ``/api/<name>`` run the event in the request and answer its every error with HTTP 500:
  one refused for what the caller sent (``ui.errors.Refused``: a value, a file, "Busy") gets its status
  instead (422, 429), with gradio's body unchanged (``{"error": "<our message>", ...}``);
* ``GET /gradio_api/call/<name>/<event_id>`` and ``GET /gradio_api/queue/data?session_hash=...`` with
  nothing left to read (an unknown or already read event id, a session with no request): 404, where
  gradio raises inside its stream.

A body that passes goes on to gradio unchanged; the values themselves are checked per input by
``ui.errors`` (files, choices, numbers). The page and ``gradio_client`` always send well-formed bodies.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

log = logging.getLogger("studio")

DOCS = "docs/API.md"
# where ui.errors marks a request whose event was refused for what its caller sent (errors.Refused): the HTTP status
# that /run/<name> and /api/<name>, which answer every error of the event they run with 500, answer instead
REFUSED_STATUS = "studio.refused_status"
# POST routes that run an endpoint: (kind, name) from the path; a prefix (a mounted app) is allowed
_ROUTE = re.compile(r"/gradio_api/(?:(?P<kind>call/v2|call|run|api)/(?P<name>[^/]+)|(?P<join>queue/join))/?$")
# GET routes that stream results: a call's (by event id) and a session's (the page's, gradio_client's)
_RESULT = re.compile(r"/gradio_api/call/(?:v2/)?(?P<name>[^/]+)/(?P<event>[^/]+)/?$")
_STREAM = re.compile(r"/gradio_api/queue/data/?$")
# gradio's body fields besides "data", with what each must be (gradio.data_classes.PredictBody)
_FIELDS = {"session_hash": (str, "text"), "event_id": (str, "text"), "oauth_token": (str, "text"),
           "fn_index": (int, "a whole number"), "trigger_id": (int, "a whole number"),
           "simple_format": (bool, "true or false"), "batched": (bool, "true or false")}


class Refusal(Exception):
    """A call refused before gradio: ``status`` (404, 400 or 422) and the message the caller reads."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class CallChecks:
    """ASGI middleware: the checks above on the call routes; everything else passes through."""

    def __init__(self, app: Any):
        self.app = app
        self._api: dict[int, dict] = {}  # id(blocks) -> gradio's API info (every named endpoint), built once

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path, method = scope.get("path", ""), scope.get("method") if scope.get("type") == "http" else None
        route = _ROUTE.search(path) if method == "POST" else None
        stream = (_RESULT.search(path) or _STREAM.search(path)) if method == "GET" else None
        blocks = _blocks(scope) if route or stream else None
        if blocks is None:
            return await self.app(scope, receive, send)
        if stream is not None:
            try:
                self.check_stream(blocks, stream, scope.get("query_string", b""))
            except Refusal as refused:
                return await _refuse(send, refused)
            return await self.app(scope, receive, send)
        body, complete = await read_body(receive)
        if not complete:  # the caller went away
            return None
        headers = dict(scope.get("headers") or [])
        try:
            self.check(blocks, route, body, headers)
        except Refusal as refused:
            # gradio_client (its header) reads a 422 on queue/join as gradio's list of failed validations only
            from_client = route["join"] and headers.get(b"x-gradio-user") == b"api"
            return await _refuse(send, refused, from_client)

        async def refused_as_4xx(message: dict) -> None:
            # gradio's /run answers every error of the event with 500; a refusal of what the caller sent is theirs
            if message["type"] == "http.response.start" and message["status"] == 500 and scope.get(REFUSED_STATUS):
                message = {**message, "status": scope[REFUSED_STATUS]}
            await send(message)

        return await self.app(scope, replayed(body, receive), refused_as_4xx if route["kind"] in ("run", "api") else send)

    # -- the checks ---------------------------------------------------------------------------------------
    def check(self, blocks: Any, route: re.Match, body: bytes, headers: dict[bytes, bytes]) -> None:
        """Raise Refusal when the request cannot be what its route takes (module docstring)."""
        kind, name = ("join", None) if route["join"] else (route["kind"], route["name"])
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        try:
            if content_type and not (content_type == "application/json" or content_type.endswith("+json")):
                raise ValueError(content_type)
            value, unreadable = json.loads(body), None
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included; nesting too deep
            value = None
            unreadable = (f"Content-Type {content_type}" if content_type and "json" not in content_type
                          else "a body that is not JSON")
        # gradio's /run/<name> runs the event numbered "fn_index" whatever the name: the page's own calls of
        # events outside the queue (a Cancel button) are POST /gradio_api/run/predict with their fn_index
        by_number = kind in ("run", "api") and isinstance(value, dict) and _whole(value.get("fn_index"))
        if by_number:
            fn = self._numbered(blocks, value["fn_index"], value.get("session_hash"))
        else:
            fn = None if kind == "join" else self._named(blocks, kind, name)
        if unreadable:
            raise Refusal(400, f"The request sent {unreadable}. {self._wanted(blocks, kind, fn)}")
        if not isinstance(value, dict):
            raise Refusal(422, f"The request's body is a JSON {_json_kind(value)}, not an object. "
                               f"{self._wanted(blocks, kind, fn)}")
        if kind == "call/v2":
            return self._check_keywords(blocks, fn, value)
        data = value.get("data")
        if not isinstance(data, list):
            sent = "has no \"data\"" if "data" not in value else f"has \"data\" as a JSON {_json_kind(data)}"
            raise Refusal(422, f"The request's body {sent}. {self._wanted(blocks, kind, fn)}")
        for field, (wanted, words) in _FIELDS.items():
            given = value.get(field)
            if given is not None and (not isinstance(given, wanted) or (wanted is int and isinstance(given, bool))):
                raise Refusal(422, f"The body's \"{field}\" must be {words}; got {_shown(given)}. "
                                   f"{self._wanted(blocks, kind, fn)}")
        if kind == "join":
            fn = self._numbered(blocks, value.get("fn_index"), value.get("session_hash"))
            if not value.get("session_hash"):
                raise Refusal(422, f"The request's body has no \"session_hash\". {self._wanted(blocks, kind, fn)}")
        elif by_number:
            return None  # the page's calls outside the queue: their inputs are counted per event (ui.errors)
        if value.get("batched"):
            return None  # a batch's "data" holds a list per input: counted per event (ui.errors)
        # /call/<name> may leave out the inputs hidden from the API (gradio fills them); the page and gradio_client
        # (queue/join), /run and /api send every input, gr.State's included (as null)
        self._check_count(blocks, fn, data, _input_counts(fn) if kind == "call" else {len(fn.inputs)}, kind)
        return None

    def _check_count(self, blocks: Any, fn: Any, data: list, counts: set[int], kind: str) -> None:
        """Refusal 422 when ``data`` does not hold one value per input of ``fn`` (``counts``: the lengths taken)."""
        if len(data) in counts:
            return
        parameters = self._parameters(blocks, fn)
        if len(parameters) not in counts:  # inputs hidden from the API (gr.State) that /run wants too
            parameters = [getattr(block, "label", None) or type(block).__name__ for block in fn.inputs]
        how = "Send them as {\"data\": [...]}"
        if kind == "join":
            how = "Pass them in this order (gradio_client: Client.view_api() lists them)" if parameters else "Send none"
        raise Refusal(422, f"{_inputs(fn, parameters)}; the request's \"data\" has {len(data)}. {how}; see {DOCS}.")

    def check_stream(self, blocks: Any, route: re.Match, query: bytes) -> None:
        """``GET /gradio_api/call/<name>/<event_id>`` (a call's result) and ``GET /gradio_api/queue/data``
        (a session's stream): Refusal 404 when nothing of that call or session is left to read, the case
        gradio answers by raising inside its stream (a traceback in the log)."""
        queue = getattr(blocks, "_queue", None)
        if queue is None:
            return
        if route.re is _RESULT:
            self._named(blocks, "call", route["name"])
            event_id = route["event"]
            event = queue.event_ids_to_events.get(event_id)
            session = event.session_hash if event is not None else next(
                (s for s, ids in list(queue.pending_event_ids_session.items()) if event_id in ids), event_id)
            if session not in queue.pending_messages_per_session:
                raise Refusal(404, f"No call with the event id {event_id[:64]!r} is waiting, running or unread (a "
                                   "result is read once, from the GET that follows its POST). Start the call again: "
                                   f"POST /gradio_api/call/{route['name'][:100]} answers a new event_id; see {DOCS}.")
            return
        from urllib.parse import parse_qs

        session = (parse_qs(query.decode("latin-1")).get("session_hash") or [""])[0]
        if not session:
            raise Refusal(422, "GET /gradio_api/queue/data needs ?session_hash=<the hash its requests joined the queue "
                               "with>. Callers use POST /gradio_api/call/<name>, then GET "
                               f"/gradio_api/call/<name>/<event_id>; see {DOCS}.")
        if session not in queue.pending_messages_per_session:
            raise Refusal(404, f"Nothing of the session {session[:64]!r} is waiting, running or unread: "
                               "/gradio_api/queue/data streams the results of a session's requests once they have "
                               "joined the queue (/gradio_api/queue/join with that session_hash). Callers use POST "
                               f"/gradio_api/call/<name>, then GET /gradio_api/call/<name>/<event_id>; see {DOCS}.")

    def _check_keywords(self, blocks: Any, fn: Any, value: dict) -> None:
        """``/call/v2/<name>``: the body names the endpoint's parameters; unknown and missing ones refused."""
        parameters = self._api_info(blocks)["named_endpoints"].get(_endpoint(fn), {}).get("parameters", [])
        names = [parameter["parameter_name"] for parameter in parameters]
        unknown = [key for key in value if key not in names and key not in ("oauth_token", "session_hash")]
        missing = [parameter["parameter_name"] for parameter in parameters
                   if not parameter.get("parameter_has_default") and parameter["parameter_name"] not in value]
        if unknown or missing:
            said = (f"names {', '.join(map(repr, unknown[:5]))}, not a parameter of it" if unknown
                    else f"leaves out {', '.join(map(repr, missing))}, which has no default")
            raise Refusal(422, f"The request to {_endpoint(fn)} {said}. {self._wanted(blocks, 'call/v2', fn)}")

    # -- the app's endpoints ------------------------------------------------------------------------------
    def _api_info(self, blocks: Any) -> dict:
        if id(blocks) not in self._api:
            self._api[id(blocks)] = blocks.get_api_info(all_endpoints=True)
        return self._api[id(blocks)]

    def _named(self, blocks: Any, kind: str, name: str) -> Any:
        """The event called ``name`` (as gradio finds it), or Refusal 404 listing the app's endpoints."""
        fn = next((fn for fn in blocks.fns.values() if fn.api_name == name), None)
        # /call/v2 finds its endpoint in gradio's public API info only (app.api_info)
        if fn is not None and (kind != "call/v2" or getattr(fn, "api_visibility", "public") == "public"):
            return fn
        raise Refusal(404, f"The studio has no endpoint /{name[:100]}. Its endpoints: {', '.join(endpoints(blocks))}. "
                           f"Call one as POST /gradio_api/call/<name> with {{\"data\": [...]}} (its inputs in order), "
                           f"or with gradio_client (Client.view_api() lists each one's parameters); see {DOCS}.")

    def _numbered(self, blocks: Any, index: Any, session: str | None) -> Any:
        """The event numbered ``index`` (in the session's copy of the app where it has one, as gradio looks)."""
        holder = getattr(blocks, "state_holder", None)
        own = isinstance(session, str) and session and holder is not None and session in holder
        fns = holder[session].blocks_config.fns if own else blocks.fns
        if index in fns:
            return fns[index]
        raise Refusal(404, f"The studio has no event number {_shown(index)} (\"fn_index\"). Call an endpoint by "
                           f"name instead: POST /gradio_api/call/<name> with {{\"data\": [...]}}; its endpoints: "
                           f"{', '.join(endpoints(blocks))}; see {DOCS}.")

    def _parameters(self, blocks: Any, fn: Any) -> list[str]:
        """An endpoint's inputs in order, by their API parameter names (the labels where it has none)."""
        info = self._api_info(blocks)["named_endpoints"].get(_endpoint(fn))
        if info is not None:
            return [parameter["parameter_name"] for parameter in info["parameters"]]
        return [getattr(block, "label", None) or type(block).__name__ for block in fn.inputs]

    def _wanted(self, blocks: Any, kind: str, fn: Any) -> str:
        """What the body of a ``kind`` route should look like, for ``fn`` (None: not known yet)."""
        if kind == "join":
            return ("/gradio_api/queue/join is the page's own route (a body {\"data\": [...], \"fn_index\": N, "
                    "\"session_hash\": \"...\"}); callers use POST /gradio_api/call/<name> with {\"data\": [...]} "
                    f"and read the result from GET /gradio_api/call/<name>/<event_id>. See {DOCS}.")
        parameters = self._parameters(blocks, fn)
        if kind == "call/v2":
            return (f"Send a JSON object of {_endpoint(fn)}'s parameters by name ({', '.join(parameters) or 'none'}), "
                    f"with Content-Type: application/json. See {DOCS}.")
        return (f"Send a JSON object {{\"data\": [...]}} with Content-Type: application/json; "
                f"{_inputs(fn, parameters)}. See {DOCS}.")


def endpoints(blocks: Any) -> list[str]:
    """The app's public named endpoints ("/name"), in the order they were wired (what ``view_api`` lists)."""
    return [f"/{fn.api_name}" for fn in blocks.fns.values()
            if fn.api_name and fn.fn and getattr(fn, "api_visibility", "public") == "public"]


def _endpoint(fn: Any) -> str:
    return f"/{fn.api_name}" if getattr(fn, "api_name", None) else "This event"


def _inputs(fn: Any, parameters: list[str]) -> str:
    """ "/x takes 3 inputs (a, b, c), in this order" (what "data" holds)."""
    if not parameters:
        return f"{_endpoint(fn)} takes no inputs (\"data\": [])"
    return f"{_endpoint(fn)} takes {len(parameters)} input(s) ({', '.join(parameters)}), in this order"


def _input_counts(fn: Any) -> set[int]:
    """The lengths of "data" that ``/call/<name>`` takes: every input, or every one shown to the API
    (gradio fills the others: ``prepare_simple_api_data``)."""
    return {len(fn.inputs), sum(not getattr(block, "skip_api", False) for block in fn.inputs)}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_kind(value: Any) -> str:
    kinds = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _blocks(scope: dict) -> Any:
    """The gradio Blocks the request's app serves (None outside a gradio app)."""
    get_blocks = getattr(scope.get("app"), "get_blocks", None)
    try:
        return get_blocks() if get_blocks is not None else None
    except Exception:  # noqa: BLE001  (not launched yet: gradio answers as it would)
        return None


class BodyTooLarge(Exception):
    """A request body went past the ``limit`` given to :func:`read_body`."""


async def read_body(receive: Any, limit: int | None = None) -> tuple[bytes, bool]:
    """The whole request body, and whether it arrived (False: the client disconnected first). Raises
    BodyTooLarge as soon as more than ``limit`` bytes came (None: no limit), without reading the rest."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", False
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def replayed(body: bytes, receive: Any) -> Any:
    """An ASGI ``receive`` that hands the app ``body`` (already read) first, then the connection's own."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Any, refused: Refusal, from_client: bool = False) -> None:
    """Answer ``{"detail": "<our message>"}``; to gradio_client's queue/join a 422's detail is gradio's own list
    of failed validations (``gradio_client.utils.extract_validation_message``), which it raises as its
    ``ValidationError`` with our message (a string there breaks it: "'str' object has no attribute 'get'")."""
    log.warning("API call refused (HTTP %d): %s", refused.status, refused.message)
    detail: Any = refused.message
    if from_client and refused.status == 422:
        detail = [{"__type__": "validate", "is_valid": False, "parameter_name": "request", "message": refused.message}]
    await json_answer(send, refused.status, {"detail": detail})


async def json_answer(send: Any, status: int, content: dict) -> None:
    body = json.dumps(content).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
