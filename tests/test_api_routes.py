"""gradio's other routes (not the ones that run an endpoint: tests/test_api_http.py) answer a malformed
request in our words, one log line and no traceback (ui/route_bodies.py). The POST routes come from the
app's own FastAPI router, so a route gradio adds is checked too, and one that reads its body itself without
an entry in ``route_bodies.OWN_BODIES`` fails the test by name."""

import json
import logging
import re

import httpx
import pytest

from ui import route_bodies


@pytest.fixture(scope="module")
def routes_app(studio):
    """The real app served; yields (URL, its FastAPI app)."""
    import app
    from tests.conftest import serving

    demo = app.build_demo(studio)
    with serving(demo) as url:
        yield url, demo.app


def post_routes(fastapi_app) -> dict[str, object]:
    """Every POST route of the app, path -> route, as its router holds them (FastAPI's included routers
    listed through ``iter_route_contexts`` where it has one; older FastAPI keeps them flat in ``routes``)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        entries = [(route.path, getattr(route, "methods", None), route) for route in fastapi_app.routes]
    else:
        entries = [(c.path, c.methods, c.original_route) for c in iter_route_contexts(fastapi_app.routes)]
    return {path: route for path, methods, route in entries if methods and "POST" in methods}


def reads_its_own_body(route) -> bool:
    dependant = getattr(route, "dependant", None)
    return getattr(route, "body_field", None) is None and bool(getattr(dependant, "request_param_name", None))


def words(reply) -> str:
    """The refusal's sentence: {"detail": "..."} (pydantic's list fails here), or the upload's plain text."""
    if reply.headers.get("content-type", "").startswith("text/plain"):
        return reply.text
    detail = reply.json()["detail"]
    assert isinstance(detail, str), (reply.request.url, detail)
    return detail


def no_traceback(capfd, caplog):
    assert "Traceback" not in capfd.readouterr().err
    assert all(record.exc_info is None for record in caplog.records)


def test_every_post_route_answers_a_malformed_body_in_our_words(routes_app, capfd, caplog):
    url, fastapi_app = routes_app
    routes = post_routes(fastapi_app)
    assert {"/gradio_api/cancel", "/gradio_api/reset", "/gradio_api/stream/{event_id}", "/gradio_api/upload",
            "/gradio_api/component_server", "/gradio_api/call/{api_name}"} <= set(routes), sorted(routes)
    own = {path for path, route in routes.items() if reads_its_own_body(route)}
    unlisted = {path for path in own if path.removeprefix("/gradio_api").rstrip("/") not in route_bodies.OWN_BODIES}
    assert not unlisted, f"routes that read their body themselves, not in ui/route_bodies.py OWN_BODIES: {unlisted}"
    checked = []
    for path, route in sorted(routes.items()):
        if getattr(route, "body_field", None) is None and path not in own:
            continue  # takes no body: nothing in one can be malformed
        target = url.rstrip("/") + re.sub(r"\{[^}]+\}", "x", path.replace("{api_name}", "status"))
        with caplog.at_level(logging.WARNING, logger="studio"):
            caplog.clear()
            reply = httpx.post(target, content="not json", headers={"content-type": "application/json"}, timeout=30)
            assert reply.status_code in (400, 422), (path, reply.status_code, reply.text)
            said = words(reply)
            assert said.endswith("See docs/API.md.") or "see docs/API.md" in said, (path, said)
            assert [r.getMessage() for r in caplog.records if said in r.getMessage()], (path, "not logged")
            for body in ("[1]", "{}", '{"data": 5, "event_id": 1}'):
                reply = httpx.post(target, content=body, headers={"content-type": "application/json"}, timeout=30)
                assert reply.status_code != 500, (path, body, reply.text)
                if reply.status_code in (400, 422):
                    words(reply)
        checked.append(path)
    assert len(checked) >= 12, checked
    no_traceback(capfd, caplog)


@pytest.mark.parametrize("path,body,status,start", [
    ("cancel", "not json", 400, 'The request sent a body that is not JSON. POST /gradio_api/cancel takes a JSON object '
                                '(Content-Type: application/json) with "session_hash" (text), "fn_index" (a whole '
                                'number) and "event_id" (text). See docs/API.md.'),
    ("cancel", '{"session_hash": "s", "fn_index": "x", "event_id": "e"}', 422,
     'The body\'s "fn_index" must be a whole number; got "x". POST /gradio_api/cancel takes'),
    ("reset", "{}", 422, 'The request\'s body has no "event_id". POST /gradio_api/reset takes a JSON object'),
    ("stream/abc", "[1]", 422, "The request's body is a JSON list, not an object. POST /gradio_api/stream/abc takes "
                               'a JSON object (Content-Type: application/json) with "data" (a list) and optionally'),
    ("component_server", '{"data": 1}', 422, 'The request\'s body has no "component_id", "session_hash", "fn_name". '
                                             "POST /gradio_api/component_server takes application/json"),
    ("component_server", '{"data": 1, "component_id": 99999, "session_hash": "s", "fn_name": "f"}', 422,
     "The request names a component or a field the page does not have (99999)."),
    ("upload", '{"files": []}', 400, "The request sent Content-Type application/json. POST /gradio_api/upload takes "
                                     'multipart/form-data: the files, each in a field "files"'),
])
def test_what_each_refusal_says(routes_app, capfd, caplog, path, body, status, start):
    url, _ = routes_app
    reply = httpx.post(f"{url}gradio_api/{path}", content=body, headers={"content-type": "application/json"},
                       timeout=30)
    assert reply.status_code == status, reply.text
    assert words(reply).startswith(start), words(reply)
    no_traceback(capfd, caplog)


def test_an_upload_that_cannot_be_read_or_holds_no_file_says_how_to_send_one(routes_app, capfd, caplog):
    url, _ = routes_app
    upload = f"{url}gradio_api/upload"
    garbled = httpx.post(upload, content=b"xx", headers={"content-type": "multipart/form-data; boundary=abc"})
    assert garbled.status_code == 400 and garbled.text.startswith("The request's body could not be used. POST "
                                                                  "/gradio_api/upload takes multipart/form-data")
    no_boundary = httpx.post(upload, content=b"xx", headers={"content-type": "multipart/form-data"})
    assert no_boundary.status_code == 400
    assert no_boundary.text.startswith("The request sent Content-Type multipart/form-data without a boundary.")
    elsewhere = httpx.post(upload, files={"file": ("a.wav", b"123")})  # gradio answered 200 and [], silently
    assert elsewhere.status_code == 422 and 'held no file in a field "files"' in elsewhere.text
    fine = httpx.post(upload, files={"files": ("a.wav", b"123")})
    assert fine.status_code == 200 and json.loads(fine.text)[0].endswith("a.wav")
    no_traceback(capfd, caplog)


def test_a_query_or_path_parameter_is_refused_in_our_words_too(routes_app, capfd, caplog):
    url, _ = routes_app
    reply = httpx.get(f"{url}gradio_api/upload_progress", timeout=30)
    assert reply.status_code == 422
    assert words(reply) == ('The request has no query parameter "upload_id". GET /gradio_api/upload_progress takes '
                            'the query parameter(s) "upload_id" (text). See docs/API.md.')
    reply = httpx.get(f"{url}gradio_api/stream/a/b/notint/playlist.m3u8", timeout=30)
    assert reply.status_code == 422
    assert words(reply).startswith('The path parameter "component_id" must be a whole number; got "notint".')
    no_traceback(capfd, caplog)
