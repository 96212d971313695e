"""The HTTP API's answers to a caller's mistakes, through the real app: our words, the right status, one log
line and never a traceback (ui/http_errors.py for the routes, ui/file_kinds.py for files, ui/common.py
for "Busy")."""

import json
import logging
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from test_endpoints import call_with, endpoint_parameters, is_file

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CALL_ROUTES = ("call/{}", "run/{}", "api/{}", "call/v2/{}")  # every POST route gradio runs an endpoint by name on


def post(url, route, body, content_type="application/json"):
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return httpx.post(f"{url}gradio_api/{route}", content=content, timeout=30,
                      headers={"content-type": content_type} if content_type else {})


def detail(reply) -> str:
    value = reply.json()["detail"]
    assert isinstance(value, str), value  # our sentence, not pydantic's list of errors
    return value


def no_traceback(capfd, caplog):
    assert "Traceback" not in capfd.readouterr().err
    assert all(record.exc_info is None for record in caplog.records)


def test_an_unknown_endpoint_is_404_listing_the_endpoints_there_are(served_app, client, capfd, caplog):
    names = list(endpoint_parameters(client))
    for route in CALL_ROUTES:
        with caplog.at_level(logging.WARNING, logger="studio"):
            caplog.clear()
            reply = post(served_app, route.format("nope"), {"data": []} if "v2" not in route else {})
        assert reply.status_code == 404, (route, reply.text)
        text = detail(reply)
        assert text.startswith("The studio has no endpoint /nope. Its endpoints: " + ", ".join(names) + ".")
        assert "docs/API.md" in text
        assert [r.getMessage() for r in caplog.records] == [f"API call refused (HTTP 404): {text}"]
    reply = post(served_app, "queue/join", {"data": [], "fn_index": 9999, "session_hash": "x"})
    assert reply.status_code == 404 and 'no event number 9999 ("fn_index")' in detail(reply)
    no_traceback(capfd, caplog)


@pytest.mark.parametrize("body,content_type,status,words", [
    ("not json", "application/json", 400, "The request sent a body that is not JSON."),
    ("[" * 100_000 + "]" * 100_000, "application/json", 400, "The request sent a body that is not JSON."),  # too deep
    ('{"data": []}', "text/plain", 400, "The request sent Content-Type text/plain."),
    ("[1, 2]", "application/json", 422, "The request's body is a JSON list, not an object."),
    ('{"x": 1}', "application/json", 422, 'The request\'s body has no "data".'),
    ('{"data": 5}', "application/json", 422, 'The request\'s body has "data" as a JSON number.'),
    ('{"data": ["a", "riffusion", false], "session_hash": 5}', "application/json", 422,
     'The body\'s "session_hash" must be text; got 5.'),
])
@pytest.mark.parametrize("route", ["call/{}", "run/{}", "api/{}"])
def test_a_malformed_body_is_answered_with_what_the_body_should_be(served_app, capfd, caplog, route, body,
                                                                   content_type, status, words):
    reply = post(served_app, route.format("audio_to_spectrogram"), body, content_type)
    assert reply.status_code == status, reply.text
    text = detail(reply)
    assert text.startswith(words), text
    assert ('Send a JSON object {"data": [...]} with Content-Type: application/json; /audio_to_spectrogram takes '
            "3 input(s) (audio_path, preset, stereo), in this order. See docs/API.md.") in text
    no_traceback(capfd, caplog)


def test_the_keyword_route_and_the_pages_route_say_what_their_bodies_are(served_app, capfd, caplog):
    reply = post(served_app, "call/v2/audio_to_spectrogram", {"bogus": 1})
    assert reply.status_code == 422
    assert detail(reply).startswith("The request to /audio_to_spectrogram names 'bogus', not a parameter of it. Send "
                                    "a JSON object of /audio_to_spectrogram's parameters by name (audio_path, preset, "
                                    "stereo)")
    reply = post(served_app, "call/v2/audio_to_spectrogram", {"preset": "riffusion"})
    assert reply.status_code == 422 and "leaves out 'audio_path', which has no default" in detail(reply)
    for body in ("garbage", {"data": 1, "fn_index": 0, "session_hash": "x"}, {"data": [], "fn_index": 0}):
        reply = post(served_app, "queue/join", body)
        assert reply.status_code in (400, 422), reply.text
        assert "/gradio_api/queue/join is the page's own route" in detail(reply)
        assert "POST /gradio_api/call/<name>" in detail(reply)
    no_traceback(capfd, caplog)


def test_every_endpoint_says_how_many_inputs_it_takes(served_app, client, capfd, caplog):
    for endpoint, parameters in endpoint_parameters(client).items():
        names = [p["parameter_name"] for p in parameters]
        for count in {0, len(names) + 1} - {len(names)}:
            for route in ("call/{}", "run/{}"):
                reply = post(served_app, route.format(endpoint.strip("/")), {"data": [None] * count})
                assert reply.status_code == 422, (endpoint, reply.text)
                takes = (f"{endpoint} takes {len(names)} input(s) ({', '.join(names)}), in this order" if names
                         else f'{endpoint} takes no inputs ("data": [])')
                wanted = f'{takes}; the request\'s "data" has {count}. Send them as {{"data": [...]}}; see docs/API.md.'
                assert detail(reply) == wanted, detail(reply)
    no_traceback(capfd, caplog)


def test_the_queues_own_route_counts_the_inputs_of_every_event_before_queueing(served_app, client, capfd, caplog):
    """POST /gradio_api/queue/join (the page's route, gradio_client's too) with too many or too few values for
    the event numbered "fn_index": 422 at once, nothing queued; gradio_client's extra arguments are refused
    as its ValidationError in our words (they were dropped without a word)."""
    from gradio_client.exceptions import ValidationError

    dependencies = httpx.get(f"{served_app}config", timeout=30).json()["dependencies"]
    queued = [d for d in dependencies if d.get("queue") is not False and d.get("backend_fn")]
    assert len(queued) > 20
    for dependency in queued:
        count = len(dependency["inputs"])
        for sent in {max(count - 1, 0), count + 1} - {count}:
            reply = post(served_app, "queue/join", {"data": [None] * sent, "fn_index": dependency["id"],
                                                    "session_hash": "counted", "event_data": None})
            assert reply.status_code == 422, (dependency.get("api_name"), reply.text)
            text = detail(reply)
            assert f' takes {count} input(s) (' in text if count else ' takes no inputs ("data": [])' in text, text
            assert f'the request\'s "data" has {sent}.' in text, text
    named = next(d for d in queued if d.get("api_name") == "text_to_music")
    reply = post(served_app, "queue/join", {"data": [None] * 8, "fn_index": named["id"], "session_hash": "counted"})
    assert detail(reply).startswith("/text_to_music takes 7 input(s) (prompt, negative_prompt, seconds, steps, "
                                    "guidance, seed, model), in this order; the request's \"data\" has 8.")
    with pytest.raises(ValidationError, match=r"/text_to_music takes 7 input\(s\) .*the request's \"data\" has 9"):
        client.predict("x", "", 6, 5, 7.0, 42, "riffusion", 1, 2, api_name="/text_to_music")
    no_traceback(capfd, caplog)


def test_a_well_formed_call_still_runs(served_app):
    reply = post(served_app, "call/status", {"data": []})
    assert reply.status_code == 200
    event_id = reply.json()["event_id"]
    with httpx.stream("GET", f"{served_app}gradio_api/call/status/{event_id}", timeout=30) as stream:
        events = [line for line in stream.iter_lines() if line.startswith("event:")]
    assert events[-1] == "event: complete"
    reply = post(served_app, "run/status", {"data": []})
    assert reply.status_code == 200 and "Profile" in reply.json()["data"][0]


def test_reading_a_result_that_is_not_there_says_how_to_get_one(served_app, capfd, caplog):
    for path, status, words in [
        ("call/status/no-such-event", 404, "No call with the event id 'no-such-event' is waiting, running or unread"),
        ("call/nope/no-such-event", 404, "The studio has no endpoint /nope."),
        ("queue/data?session_hash=no-such-session", 404, "Nothing of the session 'no-such-session' is waiting"),
        ("queue/data", 422, "GET /gradio_api/queue/data needs ?session_hash="),
    ]:
        reply = httpx.get(f"{served_app}gradio_api/{path}", timeout=30)
        assert reply.status_code == status, (path, reply.text)
        assert detail(reply).startswith(words) and "docs/API.md" in detail(reply), detail(reply)
    no_traceback(capfd, caplog)  # gradio raised inside its stream ("Caught handled exception, but response already
    # started") and the log had two tracebacks per request


def test_the_pages_calls_outside_the_queue_still_run(served_app, capfd, caplog):
    """The page calls an event outside the queue (an example's click, a Cancel button) as POST /run/predict
    with its fn_index: gradio runs that event whatever the name, and so must the checks let it."""
    dependencies = httpx.get(f"{served_app}config", timeout=30).json()["dependencies"]
    outside = [d for d in dependencies if d.get("queue") is False and d.get("backend_fn")]
    example = next(d for d in outside if (d.get("api_name") or "").startswith("load_example"))
    cancel = next(d for d in outside if not d["inputs"])
    for dependency, data in ((example, [0]), (cancel, [])):
        reply = post(served_app, "run/predict", {"data": data, "fn_index": dependency["id"], "session_hash": "page",
                                                 "event_data": None, "trigger_id": None})
        assert reply.status_code == 200, (dependency, reply.text)
    reply = post(served_app, "run/predict", {"data": [], "fn_index": 99999, "session_hash": "page"})
    assert reply.status_code == 404 and 'no event number 99999 ("fn_index")' in detail(reply)
    no_traceback(capfd, caplog)


def file_component_types(client) -> dict[str, list]:
    """label -> file_types of the app's gr.File inputs."""
    return {c["props"].get("label"): c["props"].get("file_types") or [] for c in client.config["components"]
            if c.get("type") == "file"}


def test_a_file_of_the_wrong_kind_names_the_parameter_and_what_it_takes_on_every_endpoint(client, capfd, caplog):
    sound, picture = ASSETS / "knocks.wav", ASSETS / "sunset.png"
    file_types = file_component_types(client)
    checked = []
    for endpoint, parameters in endpoint_parameters(client).items():
        for parameter in filter(is_file, parameters):
            name, component = parameter["parameter_name"], parameter["component"]
            takes_image = component == "Image" or "image" in file_types.get(parameter["label"], [])
            wrong = sound if takes_image else picture
            sent = handle_file(str(wrong))
            several = parameter["python_type"]["type"].startswith("list")
            text = call_with(client, endpoint, parameters, **{name: [sent] if several else sent})
            takes = "an image (PNG, JPEG, WebP or TIFF)" if takes_image else "a sound file (WAV, FLAC, OGG or MP3)"
            is_ = "knocks.wav is a sound file (audio/wav)" if takes_image else "sunset.png is an image (image/png)"
            assert f"(parameter {name}) takes {takes}; {is_}." in text, (endpoint, text)
            assert "Invalid file type" not in text and "could not be read" not in text, (endpoint, text)
            checked.append(endpoint)
    assert {"/spectrogram_to_audio", "/masked_img2img", "/image_to_music", "/recommend_songs", "/playlist_to_music",
            "/train_style"} <= set(checked)
    no_traceback(capfd, caplog)


def test_a_busy_refusal_is_one_log_line_and_no_traceback(client, counted_steps, monkeypatch, capfd, caplog):
    from ui import common

    monkeypatch.setattr(common, "RUN_LIMITS", common.RunLimits(max_seconds=60, per_user=1))
    job = client.submit(None, "a red violin in the rain", 40, 7.5, 64, 64, 3, 0.0, api_name="/music_to_image")
    deadline = time.monotonic() + 60
    while len(counted_steps) < 2:  # the run is denoising: this visitor's one run in progress
        assert time.monotonic() < deadline and not job.done()
        time.sleep(0.01)
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="studio"), pytest.raises(AppError) as busy:
        client.predict(handle_file(str(ASSETS / "knocks.wav")), "riffusion", False, api_name="/audio_to_spectrogram")
    job.cancel()
    assert str(busy.value).startswith("Busy: you already have 1 run(s) in progress (at most 1 at a time")
    assert [r.getMessage() for r in caplog.records if "Busy" in r.getMessage()] == [f"request refused: {busy.value}"]
    no_traceback(capfd, caplog)


def upload(url, path) -> dict:
    """``path`` uploaded to the app, as the file dict an HTTP caller then sends."""
    reply = httpx.post(f"{url}gradio_api/upload", files={"files": (Path(path).name, Path(path).read_bytes())},
                       timeout=30)
    assert reply.status_code == 200, reply.text
    return {"path": reply.json()[0], "meta": {"_type": "gradio.FileData"}}


def test_a_refusal_on_the_direct_route_is_the_callers_4xx_and_the_same_words_everywhere(served_app, client, capfd,
                                                                                      caplog, tmp_path):
    """/run/<name> runs the event in the request and answered every error with HTTP 500, a refusal of the
    caller's value included (ui.errors.Refused): now 422, with gradio's body and our message unchanged; /call
    and gradio_client read the very same message, as before."""
    import soundfile as sf

    silent = tmp_path / "silent.wav"
    sf.write(silent, [0.0] * 22050, 22050)
    cases = [  # gradio's checks in our words (a choice); the pipeline's own InputError (through user_errors)
        ("audio_to_spectrogram", [ASSETS / "knocks.wav", "middle", False],
         "Preset (parameter preset) must be one of 'riffusion', 'audio-diffusion'; got 'middle'."),
        ("audio_to_spectrogram", [silent, "riffusion", False], "silent"),
    ]
    for endpoint, values, words in cases:
        data = [upload(served_app, values[0])] + values[1:]
        reply = post(served_app, f"run/{endpoint}", {"data": data})
        assert reply.status_code == 422, reply.text
        said = reply.json()["error"]
        assert words in said, said
        with pytest.raises(AppError) as refused:
            client.predict(handle_file(str(values[0])), *values[1:], api_name=f"/{endpoint}")
        assert str(refused.value) == said
        event_id = post(served_app, f"call/{endpoint}", {"data": data}).json()["event_id"]
        with httpx.stream("GET", f"{served_app}gradio_api/call/{endpoint}/{event_id}", timeout=30) as stream:
            lines = [line for line in stream.iter_lines() if line]
        assert lines[-2] == "event: error" and json.loads(lines[-1].removeprefix("data: "))["error"] == said, lines
    no_traceback(capfd, caplog)


def test_a_file_over_the_upload_limit_is_refused_in_our_words(served_app, capfd, caplog):
    from pipelines.schema import limits

    big = b"\0" * (limits.MAX_UPLOAD_BYTES + 1024)
    reply = httpx.post(f"{served_app}gradio_api/upload", files={"files": ("big.wav", big, "audio/wav")}, timeout=60)
    assert reply.status_code == 413
    assert reply.text.startswith(f"The file is larger than the {limits.MAX_UPLOAD_BYTES // 2**20} MB an upload may be.")
    assert "File size exceeded" not in reply.text
    no_traceback(capfd, caplog)


def test_a_huge_request_body_is_refused_before_it_is_read_whole(served_app, capfd, caplog):
    """ui/body_limit.py: an API call's body is JSON of a few kB; one of megabytes is refused (413, our words)
    whether its size is announced or it just keeps streaming, on every route but the uploads'."""
    from pipelines.schema import limits

    limit = limits.MAX_REQUEST_BODY_BYTES
    huge = json.dumps({"data": ["x" * (limit + 10), "", 5, 2, 7.0, 1, "riffusion"]})
    for route in ("call/text_to_music", "queue/join", "cancel", "reset"):
        reply = post(served_app, route, huge)  # Content-Length announced
        assert reply.status_code == 413, (route, reply.status_code, reply.text[:200])
        assert f"larger than the {limit // 1024} kB an API call may send" in detail(reply)

    def chunks():  # no Content-Length: chunked, past the limit
        yield b'{"data": ["'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    reply = httpx.post(f"{served_app}gradio_api/call/text_to_music", content=chunks(), timeout=30,
                       headers={"content-type": "application/json"})
    assert reply.status_code == 413 and "an API call may send" in detail(reply)
    # a call of the usual size still runs
    ok = post(served_app, "call/text_to_music", {"data": ["rain", "", 5, 2, 7.0, 1, "riffusion"]})
    assert ok.status_code == 200 and "event_id" in ok.json()
    no_traceback(capfd, caplog)
