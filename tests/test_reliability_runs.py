"""Runs under real use: cancel that stops the work, one stop flag per event, the time and per-user limits
(ui.common.guarded), a cancelled run holding its place until its work returns, and runs that overlap."""

import asyncio
import threading
import time
from types import SimpleNamespace

import gradio as gr
import pytest

from ui import common

M2I = dict(guidance=7.5, width=64, height=64, seed=3, lora_scale=0.0)


def m2i_args(steps):
    return [None, "a red violin in the rain", steps, M2I["guidance"], M2I["width"], M2I["height"], M2I["seed"],
            M2I["lora_scale"]]


@pytest.mark.slow
def test_an_api_cancel_stops_the_denoising_loop_and_frees_the_gpu(client, counted_steps):
    start = time.perf_counter()
    client.predict(*m2i_args(steps=2), api_name="/music_to_image")
    alone = time.perf_counter() - start
    counted_steps.clear()
    job = client.submit(*m2i_args(steps=40), api_name="/music_to_image")
    deadline = time.monotonic() + 60
    while len(counted_steps) < 3:  # the run is denoising
        assert time.monotonic() < deadline and not job.done()
        time.sleep(0.01)
    job.cancel()
    at_cancel = len(counted_steps)
    while True:  # wait until no step came for a while (at most 15 s)
        seen = len(counted_steps)
        time.sleep(2.0)
        if len(counted_steps) == seen or time.monotonic() > deadline + 15:
            break
    assert len(counted_steps) - at_cancel <= 1  # the step in progress polls the flag and the loop ends
    from gradio_client.utils import Status

    assert job.status().code == Status.CANCELLED  # what the README tells API users to check
    start = time.perf_counter()
    client.predict(*m2i_args(steps=2), api_name="/music_to_image")
    # as fast as alone: not queued behind the cancelled run's remaining ~35 steps
    assert time.perf_counter() - start < 2 * alone + 1.0


# -- the event wrapper, with gradio's request context set by hand ------------------------------------------
def run_event(fn, session="s1", *args, name=None):
    """Call ``common.guarded(fn, name)`` the way gradio does: in a task, with the request in LocalContext."""
    from gradio.context import LocalContext

    LocalContext.request.set(SimpleNamespace(session_hash=session))
    return common.guarded(fn, name)(*args)


def all_stopped(within: float = 5.0) -> bool:
    """True once no run is counted: a run's place is given back when its thread returns."""
    deadline = time.monotonic() + within
    while common.running_events() and time.monotonic() < deadline:
        time.sleep(0.01)
    return common.running_events() == 0


def looping(started: threading.Event, seen: list):
    """A handler that polls its stop flag like a pipeline, and records whether it was stopped."""

    def handler():
        flag = common.start_run(SimpleNamespace(info=SimpleNamespace(device="cpu", profile="tiny")))
        started.set()
        for _ in range(400):
            if flag.is_set():
                seen.append("stopped")
                return "stopped"
            time.sleep(0.01)
        seen.append("finished")
        return "finished"

    return handler


def test_cancelling_one_event_leaves_the_other_event_of_the_session_running():
    async def scenario():
        a_started, b_started, seen_a, seen_b = threading.Event(), threading.Event(), [], []
        a = asyncio.create_task(run_event(looping(a_started, seen_a)))
        b = asyncio.create_task(run_event(looping(b_started, seen_b)))
        while not (a_started.is_set() and b_started.is_set()):
            await asyncio.sleep(0.01)
        assert common.running_events() == 2
        a.cancel()  # what gradio does for the Cancel button and job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await a
        await asyncio.sleep(0.2)
        assert seen_a == ["stopped"] and seen_b == [] and not b.done()
        b.cancel()
        with pytest.raises(asyncio.CancelledError):
            await b
        await asyncio.sleep(0.1)
        assert seen_b == ["stopped"]

    asyncio.run(scenario())
    assert all_stopped() and common._running == {}  # nothing left behind, once the threads have returned


def test_the_cancel_button_also_stops_its_tabs_run_on_the_server_and_no_other():
    """The page's cancel carries the event's id, which it lacks until its join request is answered;
    the button's own server call (outside the queue) stops the run by session and endpoint."""
    with gr.Blocks() as demo:
        run, stop = common.run_and_cancel_buttons("Go")
        studio = SimpleNamespace(gpu_task=lambda fn, duration: fn)
        common.model_event(studio, run, lambda: None, [], [], api_name="music_to_image", api_description="x", stop=stop)
    on_stop = [d for d in demo.fns.values() if stop._id in [t[0] for t in d.targets]]
    cancel = next(d for d in on_stop if d.fn is not None)
    assert cancel.queue is False  # not behind the queue it is meant to cut short
    assert any(d.cancels for d in on_stop)  # and gradio's own cancel of the event's task

    async def scenario():
        runs = {key: (threading.Event(), []) for key in ("s1 music_to_image", "s1 text_to_music", "s2 music_to_image")}
        tasks = [asyncio.create_task(run_event(looping(*runs[key]), key.split()[0], name=key.split()[1]))
                 for key in runs]
        while not all(started.is_set() for started, _ in runs.values()):
            await asyncio.sleep(0.01)
        cancel.fn(SimpleNamespace(session_hash="s1"))  # gradio passes the click's request
        await asyncio.sleep(0.3)
        assert [seen for _, seen in runs.values()] == [["stopped"], [], []]
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
    assert all_stopped() and common._running == {}


def test_a_run_past_the_time_limit_is_stopped_and_the_caller_told(monkeypatch):
    monkeypatch.setattr(common, "RUN_LIMITS", common.RunLimits(max_seconds=0.2, per_user=2))
    started, seen = threading.Event(), []

    async def scenario():
        with pytest.raises(gr.Error, match="time limit of 0.2 s"):
            await run_event(looping(started, seen))
        await asyncio.sleep(0.1)

    asyncio.run(scenario())
    assert seen == ["stopped"] and all_stopped()


def test_a_session_over_its_run_limit_is_told_it_is_busy(monkeypatch):
    monkeypatch.setattr(common, "RUN_LIMITS", common.RunLimits(max_seconds=60, per_user=1))

    async def scenario():
        started, seen = threading.Event(), []
        first = asyncio.create_task(run_event(looping(started, seen)))
        while not started.is_set():
            await asyncio.sleep(0.01)
        with pytest.raises(gr.Error, match="Busy: you already have 1 run"):
            await run_event(looping(threading.Event(), []))
        other_session = await run_event(lambda: "ok", "s2")  # another user is not held up
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return other_session

    assert asyncio.run(scenario()) == "ok"


def test_closing_the_page_stops_the_sessions_runs():
    async def scenario():
        started, seen = threading.Event(), []
        task = asyncio.create_task(run_event(looping(started, seen), "closing"))
        while not started.is_set():
            await asyncio.sleep(0.01)
        common.stop_session(SimpleNamespace(session_hash="closing"))  # demo.unload's handler
        assert await task == "stopped"

    asyncio.run(scenario())
    assert all_stopped()


def test_a_cancelled_run_counts_until_its_thread_has_returned(monkeypatch):
    """The cancel returns at once, but the session's place is given back only when the work stops."""
    monkeypatch.setattr(common, "RUN_LIMITS", common.RunLimits(max_seconds=60, per_user=1))
    release = threading.Event()

    def stubborn():  # a step that does not poll its flag for a while
        started.set()
        release.wait(10)
        return "done"

    async def scenario():
        task = asyncio.create_task(run_event(stubborn))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 1.0)  # the cancel itself does not wait for the work
        with pytest.raises(gr.Error, match="a cancelled run counts until it has stopped"):
            await run_event(lambda: "again")
        release.set()
        assert all_stopped()
        return await run_event(lambda: "again")

    started = threading.Event()
    assert asyncio.run(scenario()) == "again"


def test_the_next_run_of_a_concurrency_group_waits_for_a_cancelled_one_to_stop():
    """Gradio frees an event's concurrency slot when its task is cancelled; the thread's own slot makes
    the next run (another user's) wait until the cancelled work has really returned."""
    import app
    from gradio_client import Client

    release, log = threading.Event(), []

    def step(text):
        log.append(f"start {text}")
        if text == "stubborn":
            release.wait(20)  # a step that does not poll its flag
        log.append(f"end {text}")
        return text

    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(common.guarded(step), box, box, api_name="step", concurrency_limit=1)
    app.queue(demo)
    demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        first = Client(demo.local_url, verbose=False).submit("stubborn", api_name="/step")
        deadline = time.monotonic() + 20
        while log != ["start stubborn"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first.cancel()
        second = Client(demo.local_url, verbose=False).submit("next", api_name="/step")
        time.sleep(1.5)
        assert log == ["start stubborn"]  # gradio started the next job, but its work waits for the slot
        release.set()
        assert second.result(timeout=20) == "next"
        assert log == ["start stubborn", "end stubborn", "start next", "end next"]
    finally:
        release.set()
        demo.close()


@pytest.mark.slow
def test_runs_that_overlap_import_the_model_libraries_safely():
    """diffusers resolves names lazily and not thread-safely: in a fresh process, threads that each
    start a run (import_model_libraries, then their own diffusers names) must all succeed."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import threading\n"
        "from pipelines.models.loaders import import_model_libraries\n"
        "errors = []\n"
        "def run(name):\n"
        "    try:\n"
        "        import_model_libraries()\n"
        "        exec(f'from diffusers import {name}', {})\n"
        "    except Exception as error:\n"
        "        errors.append(repr(error))\n"
        "names = ['DDIMScheduler', 'StableDiffusionPipeline', 'ConfigMixin', 'UNet2DConditionModel', 'DDPMScheduler']\n"
        "threads = [threading.Thread(target=run, args=(n,)) for n in names]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print('ERRORS', errors)\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300)
    assert "ERRORS []" in done.stdout, done.stdout + done.stderr
