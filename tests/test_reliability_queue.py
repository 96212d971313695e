"""Admission: the queue's own limits (waiting per user, waiting in all), refused in the studio's words."""

import threading
import time

import gradio as gr
import pytest


@pytest.fixture
def gated_app():
    """A one-event app behind the studio's queue settings (2 waiting in all, 1 per user): the event
    holds until the test opens the gate, so requests stay queued while the test probes the limits."""
    import app
    from gradio_client import Client

    gate = threading.Event()

    def hold(text):
        gate.wait(30)
        return text

    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(hold, box, box, api_name="hold", concurrency_limit=1)
    app.queue(demo, max_size=2, per_user=1)
    demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        yield demo, gate, lambda: Client(demo.local_url, verbose=False)
    finally:
        gate.set()
        demo.close()


def join(demo, session, api=False):
    """Ask to join the queue as the page does (or as gradio_client does, ``api``): status and detail."""
    import httpx

    fn_index = next(i for i, fn in demo.fns.items() if fn.api_name == "hold")
    reply = httpx.post(f"{demo.local_url}gradio_api/queue/join", timeout=10,
                       headers={"x-gradio-user": "api"} if api else {},
                       json={"data": ["x"], "fn_index": fn_index, "session_hash": session, "event_data": None})
    return reply.status_code, reply.json().get("detail", "")


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


def test_a_session_over_its_queued_limit_is_told_it_is_busy_and_others_still_get_in(gated_app):
    from gradio_client.utils import QueueError  # what gradio_client callers catch and retry on

    demo, gate, client = gated_app
    alice, bob = client(), client()
    running = alice.submit("run", api_name="/hold")
    wait_until_running(demo)
    waiting = alice.submit("wait", api_name="/hold")
    wait_until_waiting(demo, 1)
    session = alice.session_hash
    status, detail = join(demo, session)  # the page: our words, shown as the error
    assert status == 400
    assert detail == ("Busy: you already have 1 request(s) waiting in the studio's queue (at most 1 per user). "
                      "Try again when one has started.")
    status, detail = join(demo, session, api=True)  # gradio_client: 503, which it raises as QueueError
    assert status == 503 and detail.startswith("Busy: you already have 1 request(s) waiting")
    with pytest.raises(QueueError):
        alice.submit("one too many", api_name="/hold").result(timeout=30)
    other = bob.submit("bob", api_name="/hold")  # another user is not refused for alice's requests
    wait_until_waiting(demo, 2)
    gate.set()
    assert [running.result(timeout=30), waiting.result(timeout=30), other.result(timeout=30)] == ["run", "wait", "bob"]


def test_a_full_queue_says_so_in_the_studios_words(gated_app):
    demo, gate, client = gated_app
    users = [client() for _ in range(3)]
    jobs = [users[0].submit("run", api_name="/hold")]
    wait_until_running(demo)
    jobs += [users[1].submit("a", api_name="/hold"), users[2].submit("b", api_name="/hold")]
    wait_until_waiting(demo, 2)
    status, detail = join(demo, "a-new-visitor")
    assert status == 400
    assert detail == "Busy: the studio's queue is full (2 requests waiting, at most 2). Please try again in a minute."
    gate.set()
    assert [job.result(timeout=30) for job in jobs] == ["run", "a", "b"]
