"""A cancel stops only the job it names, and no job is left waiting for ever (ui/cancels.py).

gradio's /cancel cancelled every running job of the session on the endpoint but answered only the one it
named: cancelling a client's queued job stopped its running one, which then hung in PROGRESS for ever.
"""

import threading
import time

import gradio as gr
import pytest

from ui import common

ARGS = ("a cancelled sunrise", "", 1.0, 3, 7.0)  # prompt, negative, seconds, steps, guidance (then seed, model)


@pytest.fixture
def held_runs(studio, monkeypatch):
    """text_to_music runs that wait at their first stop-flag poll until ``release`` is set (or their run is
    told to stop): a run is surely in progress while the test cancels. Records each run's seed as it
    starts and "stopped" when a poll found its run stopped."""
    seen = {"started": [], "stopped": [], "release": threading.Event()}
    real = studio.text_to_music

    def held(settings=None, *args, should_stop=None, **kwargs):
        seen["started"].append(settings.seed)

        def poll():
            while not seen["release"].is_set() and not should_stop():
                time.sleep(0.02)
            if should_stop():
                seen["stopped"].append(settings.seed)
                return True
            return False

        return real(settings, *args, should_stop=poll, **kwargs)

    monkeypatch.setattr(studio, "text_to_music", held)
    yield seen
    seen["release"].set()


def _until(condition, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _running_and_queued(served_app, seen):
    """One client's two jobs on /text_to_music: ``first`` running (held), ``second`` waiting behind it."""
    from gradio_client import Client
    from gradio_client.utils import Status

    client = Client(served_app, verbose=False)  # one session for both
    first = client.submit(*ARGS, 1, "riffusion", api_name="/text_to_music")
    _until(lambda: seen["started"] == [1], 60, "the first job never started")
    second = client.submit(*ARGS, 2, "riffusion", api_name="/text_to_music")
    _until(lambda: second.status().code == Status.IN_QUEUE, 30, "the second job never joined the queue")
    assert first.status().code in (Status.PROCESSING, Status.PROGRESS) and not first.done()
    return first, second


def _music(result) -> str:
    music = result[0]
    assert isinstance(music, str) and music.endswith(".wav"), result
    return music


@pytest.mark.slow
def test_cancelling_the_queued_job_leaves_the_running_one_to_finish_with_its_music(served_app, held_runs):
    from gradio_client.utils import Status

    first, second = _running_and_queued(served_app, held_runs)
    assert second.cancel()
    _until(lambda: second.status().code == Status.CANCELLED, 10, "the cancelled job was not cancelled")
    time.sleep(0.5)  # what the cancel did to the other job has happened by now
    assert held_runs["stopped"] == [] and not first.done()  # the running job was not stopped
    held_runs["release"].set()
    _music(first.result(timeout=60))  # its music, not a wait for ever
    assert first.status().code == Status.FINISHED
    time.sleep(0.5)
    assert held_runs["started"] == [1]  # the cancelled job never ran


@pytest.mark.slow
def test_cancelling_the_running_job_stops_it_and_the_queued_one_still_runs(served_app, held_runs):
    from gradio_client.utils import Status

    first, second = _running_and_queued(served_app, held_runs)
    assert first.cancel()
    _until(lambda: held_runs["stopped"] == [1], 10, "the cancelled run went on")  # its pipeline was told to stop
    assert first.status().code == Status.CANCELLED
    _until(lambda: held_runs["started"] == [1, 2], 30, "the queued job did not start after the cancel")
    held_runs["release"].set()
    _music(second.result(timeout=60))
    assert held_runs["stopped"] == [1]


def test_a_run_cancelled_on_the_server_any_other_way_is_answered_with_an_error():
    """Whatever cancels a job's task (not a /cancel naming it: a later gradio, the queue stopping), its
    client is told, and does not wait for ever."""
    import app
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from ui import cancels

    started, release = threading.Event(), threading.Event()

    def step(text):
        started.set()
        release.wait(20)
        return text

    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(common.guarded(step), box, box, api_name="step")
    app.queue(demo)
    demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        job = Client(demo.local_url, verbose=False).submit("hello", api_name="/step")
        assert started.wait(20)
        task = next(task for task in list(demo._queue._asyncio_tasks) if cancels.SEPARATOR in task.get_name())
        task.get_loop().call_soon_threadsafe(task.cancel)
        with pytest.raises(AppError, match="stopped on the server before it finished"):
            job.result(timeout=10)  # not a TimeoutError: the job was answered
    finally:
        release.set()
        demo.close()
