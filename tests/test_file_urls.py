"""Files given by http(s) address (``handle_file("http://...")``) are fetched like uploads (ui.file_urls):
refused from their Content-Length, cut off where their bytes pass the per-file limit, stopped at the
time limit, counted in the caller's upload budgets, each redirect checked; a small WAV still works.

The files come from an HTTP server on loopback run by the test, which counts the bytes it really
sent. The studio never fetches a private or local address, so the test names its server's exact
host:port in ``file_urls.TEST_SERVERS`` (a test-only switch, empty in the app)."""

import http.server
import io
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from core.disk import folder_bytes
from pipelines.schema import limits
from ui import file_urls, uploads

MB = 2**20
LIMIT = 1 * MB  # the per-file limit in these tests (the app's is 50 MB)
CHUNK = 16 * 1024


def wav_bytes(seconds: float, rate: int = 22050, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * 440 * t), rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


TONE = wav_bytes(1.0)
LONG_TONE = wav_bytes(11.0, subtype="FLOAT")  # 0.97 MB: a file the budget test counts


class Files(http.server.BaseHTTPRequestHandler):
    """The test's server: what each path serves; ``served[path]`` counts the body bytes sent."""

    protocol_version = "HTTP/1.1"
    served: dict[str, int] = {}
    finished: dict[str, float] = {}  # when the last byte of a path's body was sent (time.monotonic())
    asked: list[str] = []  # every GET's path, its query included, in order

    def setup(self):
        # a small send buffer, so that what the kernel accepted is close to what the client read
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        super().setup()

    def log_message(self, *args):
        pass

    def send(self, data: bytes) -> bool:
        path = self.path.split("?")[0]
        try:
            self.wfile.write(data)
        except OSError:  # the studio hung up
            return False
        self.served[path] = self.served.get(path, 0) + len(data)
        return True

    def do_GET(self):
        self.asked.append(self.path)
        path = self.path.split("?")[0]
        self.served.setdefault(path, 0)
        if path in ("/tone.wav", "/long.wav"):
            body = TONE if path == "/tone.wav" else LONG_TONE
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.send(body)
        elif path == "/declared.wav":  # says 4 MB, then sends after a pause: a bounded fetch has hung up
            self.send_response(200)
            self.send_header("Content-Length", str(4 * LIMIT))
            self.end_headers()
            self.wfile.flush()
            time.sleep(0.5)
            for _ in range(4 * LIMIT // CHUNK):
                if not self.send(b"\0" * CHUNK):
                    break
        elif path == "/chunked.wav":  # no size said: chunked, 64 MB unless stopped
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(64 * MB // CHUNK):
                if not self.send(b"%x\r\n" % CHUNK + b"\0" * CHUNK + b"\r\n"):
                    break
            self.close_connection = True
        elif path == "/unsized.wav":  # no size said: the body ends when the connection closes
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(64 * MB // CHUNK):
                if not self.send(b"\0" * CHUNK):
                    break
            self.close_connection = True
        elif path == "/slow-tone.wav":  # the tone, 2 KB every 0.1 s: about 2.2 s
            self.send_response(200)
            self.send_header("Content-Length", str(len(TONE)))
            self.end_headers()
            for start in range(0, len(TONE), 2048):
                time.sleep(0.1)
                if not self.send(TONE[start:start + 2048]):
                    return
            self.finished[path] = time.monotonic()
        elif path == "/drip.wav":  # 512 KB, 1 KB every 50 ms: 25 s
            self.send_response(200)
            self.send_header("Content-Length", str(512 * 1024))
            self.end_headers()
            for _ in range(512):
                if not self.send(b"\0" * 1024):
                    break
                time.sleep(0.05)
        elif path == "/gzip.wav":  # 10 KB that would unpack to 10 MB
            import gzip

            body = gzip.compress(b"\0" * 10 * MB)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.send(body)
        elif path in ("/to-tone", "/to-private"):
            target = "/tone.wav" if path == "/to-tone" else "http://127.0.0.1:9/private.wav"
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def file_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def url_app(studio, tmp_path_factory, file_server):
    """The real app on its own temp folder; yields (app URL, temp folder, the app's UploadBudget)."""
    import app
    from tests.conftest import serving

    temp = tmp_path_factory.mktemp("url-app") / "gradio"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(temp))
        with serving(app.build_demo(studio)) as url:
            httpx.get(url, timeout=30)  # the first request builds the middleware
            yield url, temp


@pytest.fixture
def served(url_app, file_server, monkeypatch):
    """A gradio_client on the app, the test server allowed, the per-file limit scaled down to 1 MB."""
    from gradio_client import Client

    monkeypatch.setattr(file_urls, "TEST_SERVERS", frozenset({file_server}))
    monkeypatch.setattr(limits, "MAX_UPLOAD_BYTES", LIMIT)
    Files.served.clear()
    return Client(url_app[0], verbose=False), f"http://{file_server}", url_app[1]


def spectrogram_of(client, address):
    from gradio_client import handle_file

    return client.predict(handle_file(address), "riffusion", False, api_name="/audio_to_spectrogram")[0]  # the image


def refusal(client, address) -> str:
    with pytest.raises(Exception) as refused:
        spectrogram_of(client, address)
    return str(refused.value)


def cached(temp: Path, name: str) -> list[Path]:
    """Files called ``name`` in gradio's cache, and any part file a download left."""
    return [path for path in temp.rglob("*")
            if path.is_file() and (path.name == name or path.name.startswith(".part-"))]


def test_a_small_wav_by_address_works_end_to_end_and_through_a_redirect(served):
    client, base, temp = served
    image = spectrogram_of(client, f"{base}/tone.wav")
    assert Path(image).is_file() and Path(image).suffix == ".png"
    assert Files.served["/tone.wav"] == len(TONE)
    assert [path.stat().st_size for path in cached(temp, "tone.wav")] == [len(TONE)]  # whole; no part file left
    Files.served.clear()
    assert Path(spectrogram_of(client, f"{base}/to-tone")).is_file()  # a relative redirect on the same server
    assert Files.served["/tone.wav"] == len(TONE)


def test_a_declared_size_over_the_limit_is_refused_before_the_body_is_read(served):
    client, base, temp = served
    text = refusal(client, f"{base}/declared.wav")
    assert (f"Sound (parameter audio_path): the file at {base}/declared.wav is 4 MB, over the limit of 1 MB per "
            "file (uploaded or given by address)") in text, text
    time.sleep(1.0)  # the server's writes after its pause fail once it sees the studio hung up
    assert Files.served["/declared.wav"] < 256 * 1024  # out of 4 MB: the body was never downloaded
    assert not cached(temp, "declared.wav")


@pytest.mark.parametrize("path", ["/chunked.wav", "/unsized.wav"])
def test_a_body_without_a_size_is_cut_off_where_it_passes_the_limit(served, path):
    client, base, temp = served
    text = refusal(client, base + path)
    assert (f"the file at {base}{path} passed the limit of 1 MB per file (uploaded or given by address) while it "
            "downloaded, so the download was stopped (the server did not say its size)") in text, text
    time.sleep(0.5)
    assert LIMIT - CHUNK <= Files.served[path] < LIMIT + 2 * MB  # of 64 MB offered: near the limit
    assert not cached(temp, path[1:])


def test_a_server_that_drips_is_stopped_at_the_time_limit(served, monkeypatch):
    client, base, temp = served
    monkeypatch.setattr(limits, "URL_FETCH_SECONDS", 1.5)
    started = time.monotonic()
    text = refusal(client, f"{base}/drip.wav")
    assert (f"the file at {base}/drip.wav did not finish downloading within 1.5 s, the limit for a file given by "
            "address, so the download was stopped") in text, text
    assert time.monotonic() - started < 10  # not the 25 s the server would take
    assert Files.served["/drip.wav"] < 128 * 1024
    assert not cached(temp, "drip.wav")


def test_a_redirect_to_a_private_address_is_refused_at_that_hop(served):
    client, base, _ = served
    text = refusal(client, f"{base}/to-private")
    assert (f"Sound (parameter audio_path): {base}/to-private redirects to http://127.0.0.1:9/private.wav, a "
            "private or local address, which the studio does not fetch") in text, text


def test_a_compressed_answer_is_refused_rather_than_unpacked(served):
    client, base, temp = served
    text = refusal(client, f"{base}/gzip.wav")
    assert (f"the server of {base}/gzip.wav sent the file compressed (Content-Encoding: gzip), which the studio "
            "does not unpack") in text, text
    assert not cached(temp, "gzip.wav")


def test_the_test_servers_switch_is_off_in_the_app():
    assert file_urls.TEST_SERVERS == frozenset()


def test_a_file_by_address_spends_the_callers_upload_budget(served, monkeypatch):
    client, base, temp = served
    monkeypatch.setattr(limits, "MAX_UPLOAD_BYTES", 50 * MB)  # the per-file limit out of the way
    monkeypatch.setattr(limits, "UPLOAD_BYTES_PER_MINUTE", 2.5 * MB)
    # a client of its own: this module's other requests came from the same address
    monkeypatch.setattr(uploads.UploadBudget, "client_key", lambda self, scope: "budget-test")
    for n in (1, 2):  # 0.97 MB each: within 2.5 MB a minute
        assert Path(spectrogram_of(client, f"{base}/long.wav?n={n}")).is_file()
    assert Files.served["/long.wav"] == 2 * len(LONG_TONE)
    text = refusal(client, f"{base}/long.wav?n=3")
    assert ("Sound (parameter audio_path): Too many uploads: you sent 2 MB in the last minute and the file at this "
            "address would pass the limit of 2 MB per minute per user") in text, text
    # and an upload after them spends the same budget
    reply = httpx.post(client.src.rstrip("/") + "/gradio_api/upload", files={"files": ("x.wav", LONG_TONE)}, timeout=60)
    assert reply.status_code == 429 and reply.text.startswith("Too many uploads: you sent 2 MB in the last minute")

    monkeypatch.setattr(limits, "UPLOAD_BYTES_PER_MINUTE", 1000 * MB)  # now the temp folder's budget
    monkeypatch.setattr(limits, "TEMP_BUDGET_BYTES", folder_bytes(temp) + len(LONG_TONE) // 2)
    text = refusal(client, f"{base}/long.wav?n=4")
    assert "Sound (parameter audio_path): The studio's upload space is full (" in text, text


# -- the download happens before the event takes its queue slot (ui.fetch_first) --------------------------
@pytest.fixture(scope="module", params=["fetched before the slot", "fetched in the slot"])
def one_slot_app(request, tmp_path_factory, file_server):
    """A one-event app wired as the real one (its input checks, app.queue), whose event has one slot:
    the GPU's case. The second param leaves ui.fetch_first out, the studio's way before it: the control
    that shows the test below can fail. Yields (URL, whether files are fetched before the slot)."""
    import gradio as gr

    import app
    from tests.conftest import serving
    from ui import errors, fetch_first

    before = request.param == "fetched before the slot"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("one-slot") / "gradio"))
        with gr.Blocks() as demo:  # after the temp folder is set: a component keeps the one it was made with
            sound, size = gr.File(label="Sound"), gr.Number(label="Bytes")
            gr.Button().click(lambda path: Path(path).stat().st_size, sound, size, api_name="size",
                              concurrency_limit=1)
            # outside the queue (the page's /run/predict): its files are fetched in the run itself (ui.errors)
            gr.Button().click(lambda path: Path(path).stat().st_size, sound, size, api_name="size_now", queue=False)
        if not before:
            patch.setattr(fetch_first, "fetch_before_queue", lambda demo: demo)
        with serving(errors.input_checks_in_our_words(demo)) as url:
            yield url, before


def test_a_slow_address_delays_only_its_own_caller(one_slot_app, file_server, monkeypatch, tmp_path):
    """Caller A gives a file by an address that takes ~2.2 s to serve; caller B, on the same one-slot
    event, uploads its file once A's download has begun. B must finish before A's download ends, and A
    still gets its whole file. In the slot (the control), B waits for A's download to end."""
    from gradio_client import Client, handle_file

    url, before = one_slot_app
    monkeypatch.setattr(file_urls, "TEST_SERVERS", frozenset({file_server}))
    Files.served.clear()
    Files.finished.clear()
    caller_a, caller_b = Client(url, verbose=False), Client(url, verbose=False)
    (tmp_path / "b.wav").write_bytes(TONE[:1000])
    a = caller_a.submit(handle_file(f"http://{file_server}/slow-tone.wav"), api_name="/size")
    deadline = time.monotonic() + 20
    while not Files.served.get("/slow-tone.wav") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert Files.served.get("/slow-tone.wav"), "A's download never began"
    assert caller_b.predict(handle_file(str(tmp_path / "b.wav")), api_name="/size") == 1000
    b_done = time.monotonic()
    assert a.result(timeout=60) == len(TONE)  # A's file, whole
    a_downloaded = Files.finished["/slow-tone.wav"]
    if before:
        assert b_done < a_downloaded, f"B finished {b_done - a_downloaded:.2f} s after A's download ended"
    else:
        assert b_done > a_downloaded  # the slot was A's for its whole download


def test_a_cancelled_request_stops_its_download(one_slot_app, file_server, monkeypatch):
    """gradio's /cancel removes an event waiting for its files as it removes any waiting event; its
    download is then stopped (the server sees the studio hang up). In the slot, gradio cancels the
    running event, its download with it."""
    from gradio_client import Client, handle_file

    url, _ = one_slot_app
    monkeypatch.setattr(file_urls, "TEST_SERVERS", frozenset({file_server}))
    Files.served.clear()
    caller = Client(url, verbose=False)
    job = caller.submit(handle_file(f"http://{file_server}/drip.wav?cancel"), api_name="/size")  # 25 s to serve
    deadline = time.monotonic() + 20
    while not Files.served.get("/drip.wav") and time.monotonic() < deadline:
        time.sleep(0.02)
    job.cancel()
    time.sleep(1.5)
    stopped_at = Files.served["/drip.wav"]
    time.sleep(1.0)
    assert Files.served["/drip.wav"] == stopped_at < 256 * 1024  # of 512 KB: nothing more was read


def test_requests_waiting_for_their_files_count_as_waiting_in_the_queue(one_slot_app, file_server, monkeypatch):
    """A session's requests still fetching their files count toward its limit of requests waiting
    (limits.MAX_QUEUED_PER_USER), so downloads cannot be stacked past it: of limit + 2 slow addresses
    sent by one session, the 2 over the limit are refused as busy."""
    from gradio_client import Client, handle_file

    url, before = one_slot_app
    monkeypatch.setattr(file_urls, "TEST_SERVERS", frozenset({file_server}))
    caller = Client(url, verbose=False)
    jobs = [caller.submit(handle_file(f"http://{file_server}/drip.wav?n={n}"), api_name="/size")
            for n in range(limits.MAX_QUEUED_PER_USER + 2)]
    try:
        deadline = time.monotonic() + 30
        while not any(job.done() for job in jobs) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the other refusal, answered at its join as well, may be a moment behind
        refused = [job for job in jobs if job.done()]
        # held: the limit waits, 2 refused; in the slot, one may have started (then only 1 is refused)
        assert len(refused) == 2 if before else len(refused) in (1, 2), f"{len(refused)} of {len(jobs)} refused"
        with pytest.raises(Exception, match="Busy: you already have 4 request\\(s\\) waiting"):
            refused[0].result()
    finally:
        for job in jobs:
            job.cancel()


@pytest.mark.parametrize("path,words", [
    ("/declared.wav", "the file at {} is 4 MB, over the limit of 1 MB per file (uploaded or given by address)"),
    ("/drip.wav", "the file at {} did not finish downloading within 1.5 s, the limit for a file given by address"),
])
def test_a_refused_download_answers_its_request_on_every_path(one_slot_app, file_server, monkeypatch, path, words):
    """Too big (from its Content-Length) and too slow (the time limit) are refused in our words however the
    file is fetched: before the slot (ui.fetch_first) or in it (the control param), for a queued event, and
    in the run itself (ui.errors) for an event outside the queue, called as the page does (/run/<name>), whose
    refusal is the caller's 422."""
    from gradio_client import Client, handle_file

    url, _ = one_slot_app
    monkeypatch.setattr(file_urls, "TEST_SERVERS", frozenset({file_server}))
    monkeypatch.setattr(limits, "MAX_UPLOAD_BYTES", LIMIT)
    monkeypatch.setattr(limits, "URL_FETCH_SECONDS", 1.5)
    address = f"http://{file_server}{path}"
    expected = words.format(address)
    for n, how in enumerate(("queued", "outside the queue")):
        started = time.monotonic()
        if how == "queued":
            with pytest.raises(Exception) as refused:
                Client(url, verbose=False).predict(handle_file(f"{address}?{n}"), api_name="/size")
            text = str(refused.value)
        else:
            reply = httpx.post(f"{url}gradio_api/run/size_now", timeout=30,
                               json={"data": [{"path": f"{address}?{n}", "meta": {"_type": "gradio.FileData"}}]})
            assert reply.status_code == 422, reply.text
            text = reply.json()["error"]
        assert text.startswith("Sound (parameter path): "), (how, text)
        assert expected.replace(path, f"{path}?{n}") in text, (how, text)
        assert time.monotonic() - started < 10, how  # not the 25 s the drip would take
    time.sleep(0.5)
    assert Files.served[path] < 256 * 1024  # of 4 MB or 512 KB: neither body was downloaded


def test_one_address_may_hold_only_so_many_downloads_whatever_its_sessions(one_slot_app, file_server, monkeypatch):
    """A session may have MAX_QUEUED_PER_USER requests waiting, but one address can open many sessions: the
    requests waiting for their files are bounded per client too (limits.URL_FETCHES_PER_CLIENT, the client
    as the upload budgets name it). Client "a" holds two slow downloads from two sessions; its third, from a
    third session, is refused at once in our words; client "b" still gets its own. In the slot (the control)
    nothing is held, so nothing is refused."""
    from gradio_client import Client, handle_file

    url, before = one_slot_app
    monkeypatch.setattr(file_urls, "TEST_SERVERS", frozenset({file_server}))
    monkeypatch.setattr(limits, "URL_FETCHES_PER_CLIENT", 2)
    monkeypatch.setattr(uploads.UploadBudget, "client_key",
                        lambda self, scope: dict(scope["headers"]).get(b"x-test-client", b"?").decode())

    def submit(client: str, n: str):
        caller = Client(url, verbose=False, headers={"x-test-client": client})
        return caller.submit(handle_file(f"http://{file_server}/drip.wav?{n}"), api_name="/size")

    jobs = []
    try:
        for n in ("a1", "a2"):
            jobs.append(submit("a", n))
            deadline = time.monotonic() + 20
            while f"/drip.wav?{n}" not in Files.asked and time.monotonic() < deadline:
                time.sleep(0.02)
        if before:
            assert {"/drip.wav?a1", "/drip.wav?a2"} <= set(Files.asked), "the downloads never began"
        third, other = submit("a", "a3"), submit("b", "b1")
        jobs += [third, other]
        deadline = time.monotonic() + 20
        while not third.done() and time.monotonic() < deadline and before:
            time.sleep(0.05)
        time.sleep(1.0)
        if not before:
            assert not any(job.done() for job in jobs)  # the control: no limit on downloads in the slot
            return
        with pytest.raises(Exception) as refused:
            third.result()
        assert str(refused.value).startswith(
            "Busy: 2 request(s) from your address are already waiting for files given by address to download (at "
            "most 2 per address, all its pages and clients together; each download may take up to 30 s)"), refused.value
        assert "/drip.wav?a3" not in Files.asked  # refused before its download began
        assert "/drip.wav?b1" in Files.asked and not other.done()  # another client's download goes on
        assert not any(job.done() for job in jobs[:2])
    finally:
        for job in jobs:
            job.cancel()
