"""Admission: the queue's own limits (waiting per user, waiting in all), refused in the studio's words."""

import json
import threading
import time

import gradio as gr
import pytest


@pytest.fixture
def gated_app(request):
    """A one-event app behind the studio's queue settings (by default 2 waiting in all, 1 per user;
    ``indirect`` parameters (max_size, per_user) change them): the event holds until the test opens the
    gate, so requests stay queued while the test probes the limits."""
    import app
    from gradio_client import Client

    max_size, per_user = getattr(request, "param", (2, 1))
    gate = threading.Event()

    def hold(text):
        gate.wait(30)
        return text

    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(hold, box, box, api_name="hold", concurrency_limit=1)
    app.queue(demo, max_size=max_size, per_user=per_user)
    demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        yield demo, gate, lambda: Client(demo.local_url, verbose=False)
    finally:
        gate.set()
        demo.close()


def join(demo, session, caller="app", full=False):
    """Ask to join the queue as the page does (``caller`` "app"), as gradio_client does ("api") or as a plain
    HTTP caller (None): status and detail (the event id when admitted); ``full``: the reply too."""
    import httpx

    fn_index = next(i for i, fn in demo.fns.items() if fn.api_name == "hold")
    reply = httpx.post(f"{demo.local_url}gradio_api/queue/join", timeout=10,
                       headers={"x-gradio-user": caller} if caller else {},
                       json={"data": ["x"], "fn_index": fn_index, "session_hash": session, "event_data": None})
    answer = reply.status_code, reply.json().get("detail", reply.json().get("event_id", ""))
    return (*answer, reply) if full else answer


def answer_of(demo, session, event_id):
    """The completion message of ``event_id`` on ``session``'s stream, as the page reads it."""
    import httpx

    with httpx.stream("GET", f"{demo.local_url}gradio_api/queue/data", params={"session_hash": session},
                      timeout=30) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                    return message
    raise AssertionError(f"no answer for {event_id}")


def wait_until_waiting(demo, count):
    deadline = time.monotonic() + 20
    while len(demo._queue) < count:
        assert time.monotonic() < deadline, f"{len(demo._queue)} waiting, expected {count}"
        time.sleep(0.05)


def wait_until_running(demo):
    deadline = time.monotonic() + 20
    while not any(demo._queue.active_jobs):
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("gated_app", [(3, 1)], indirect=True)
def test_a_session_over_its_queued_limit_is_told_how_many_may_wait_and_others_still_get_in(gated_app):
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    demo, gate, client = gated_app
    alice, bob = client(), client()
    running = alice.submit("run", api_name="/hold")
    wait_until_running(demo)
    waiting = alice.submit("wait", api_name="/hold")
    wait_until_waiting(demo, 1)
    busy = ("Busy: you already have 1 request(s) waiting in the studio's queue, and a visitor may have at most 1 "
            "waiting. Wait until one of them starts or finishes, then send this one again.")
    with pytest.raises(AppError) as refused:  # gradio_client: our words, not QueueError's "Queue is full!"
        alice.submit("one too many", api_name="/hold").result(timeout=30)
    assert str(refused.value) == busy and not isinstance(refused.value, QueueError)
    assert len(demo._queue) == 1  # the refused request never joined the queue
    status, _ = join(demo, "a-page")  # the page: its first request waits, its second is answered at once
    assert status == 200
    wait_until_waiting(demo, 2)
    status, event_id = join(demo, "a-page")
    assert status == 200 and len(demo._queue) == 2
    status, detail = join(demo, "a-page", caller=None)  # a plain HTTP caller: 429 at once, its own limit
    assert (status, detail) == (429, busy) and len(demo._queue) == 2
    answer = answer_of(demo, "a-page", event_id)  # (closing the page's stream drops its waiting request)
    assert answer["success"] is False and answer["output"]["error"] == busy
    other = bob.submit("bob", api_name="/hold")  # another user is not refused for alice's requests
    deadline = time.monotonic() + 20
    while not any(event.session_hash == bob.session_hash for q in demo._queue.event_queue_per_concurrency_id.values()
                  for event in q.queue):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    gate.set()
    assert [running.result(timeout=30), waiting.result(timeout=30), other.result(timeout=30)] == ["run", "wait", "bob"]


def test_a_full_queue_says_so_in_the_studios_words(gated_app, caplog, capfd):
    import logging

    from gradio_client.utils import QueueError

    caplog.set_level(logging.WARNING, logger="studio")
    demo, gate, client = gated_app
    users = [client() for _ in range(3)]
    jobs = [users[0].submit("run", api_name="/hold")]
    wait_until_running(demo)
    jobs += [users[1].submit("a", api_name="/hold"), users[2].submit("b", api_name="/hold")]
    wait_until_waiting(demo, 2)
    full = "Busy: the studio's queue is full (2 requests waiting, at most 2). Please try again in a minute."
    for caller in (None, "api"):  # plain HTTP and gradio_client: 503 (not their mistake), our words, when to retry
        status, detail, reply = join(demo, "a-new-visitor", caller=caller, full=True)
        assert (status, detail, reply.headers.get("retry-after")) == (503, full, "60")
    with pytest.raises(QueueError):  # gradio_client's own exception for a 503, which callers catch and retry
        client().submit("c", api_name="/hold").result(timeout=30)
    status, event_id = join(demo, "a-page")  # the page shows fixed words for a 503: it reads ours on its stream
    assert status == 200 and len(demo._queue) == 2
    answer = answer_of(demo, "a-page", event_id)
    assert answer["success"] is False and answer["output"]["error"] == full
    refusals = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(refusals) == 4 and all(r.exc_info is None for r in refusals)  # one line each, expected behaviour
    assert "Traceback" not in capfd.readouterr().err
    gate.set()
    assert [job.result(timeout=30) for job in jobs] == ["run", "a", "b"]
