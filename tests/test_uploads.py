"""Upload budgets on /gradio_api/upload (ui.uploads.UploadBudget): per client bytes per minute and files
waiting, and the temp folder's size, refused in our words before the bytes land."""

import time

import httpx
import pytest

from pipelines.schema import limits
from core.disk import folder_bytes

MB = 2**20


@pytest.fixture
def budget_app(studio, tmp_path, monkeypatch):
    """The real app on its own temp folder, with the budgets scaled down (the defaults are 300 MB a
    minute, 40 files waiting and 4 GB of temp folder; these are 20 MB, 6 files and 30 MB)."""
    import app
    from tests.conftest import free_port

    temp = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(temp))
    monkeypatch.setattr(limits, "UPLOAD_BYTES_PER_MINUTE", 20 * MB)
    monkeypatch.setattr(limits, "UPLOAD_FILES_WAITING", 6)
    monkeypatch.setattr(limits, "TEMP_BUDGET_BYTES", 30 * MB)
    demo = app.queue(app.build_demo(studio))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    try:
        yield f"http://127.0.0.1:{port}/gradio_api/upload", temp
    finally:
        demo.close()


SENT = [0]


def upload(url, size, name="flood.wav"):
    SENT[0] += 1  # each file different: gradio keeps identical files once
    try:
        reply = httpx.post(url, files={"files": (name, SENT[0].to_bytes(8, "little") + b"\0" * (size - 8))}, timeout=60)
    except httpx.HTTPError as error:  # a refusal before the body was read may close the connection early
        return 0, repr(error)
    return reply.status_code, reply.text


@pytest.mark.slow
def test_a_flood_of_uploads_is_refused_in_our_words_and_the_temp_folder_stays_under_budget(budget_app, monkeypatch):
    url, temp = budget_app
    at_start = folder_bytes(temp)  # the examples' files
    answers, deadline = [], time.monotonic() + 8
    while time.monotonic() < deadline:  # one client sending 4.9 MB files as fast as it can
        answers.append(upload(url, int(4.9 * MB)))
        assert folder_bytes(temp) <= limits.TEMP_BUDGET_BYTES
    codes = [code for code, _ in answers]
    assert codes[:4] == [200] * 4  # 19.6 MB: within 20 MB a minute
    refused = [text for code, text in answers if code == 429]
    assert len(refused) >= 3 and codes.count(200) == 4
    assert refused[0].startswith("Too many uploads: you sent 20 MB in the last minute and this upload would pass "
                                 "the limit of 20 MB per minute per user")
    assert folder_bytes(temp) - at_start < 4 * 5 * MB  # the refused bytes never landed

    monkeypatch.setattr(limits, "UPLOAD_BYTES_PER_MINUTE", 1000 * MB)  # now the folder's budget is the one that bites
    code, text = upload(url, int(4.9 * MB))
    assert code == 200
    code, text = upload(url, int(9 * MB))
    assert code == 413 and text.startswith("The studio's upload space is full (") and "of 30 MB in use" in text
    assert folder_bytes(temp) <= limits.TEMP_BUDGET_BYTES

    monkeypatch.setattr(limits, "TEMP_BUDGET_BYTES", 1000 * MB)  # and the files waiting
    assert upload(url, 1000)[0] == 200  # the sixth
    code, text = upload(url, 1000)
    assert code == 429 and text.startswith("Too many uploads: you have 6 uploaded files waiting")


def chunked_multipart(size, chunk=MB):
    """A multipart upload sent without Content-Length (chunked): only the streamed bytes can be counted."""
    boundary = b"studio-test-boundary"
    yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="files"; filename="stream.wav"\r\n' \
        b"Content-Type: audio/wav\r\n\r\n"
    for _ in range(size // chunk):
        yield b"\0" * chunk
    yield b"\r\n--" + boundary + b"--\r\n"


@pytest.mark.slow
def test_a_chunked_upload_is_cut_off_where_it_passes_the_budget(budget_app):
    url, temp = budget_app
    reply = httpx.post(url, content=chunked_multipart(40 * MB), timeout=60,
                       headers={"content-type": "multipart/form-data; boundary=studio-test-boundary"})
    assert reply.status_code == 429 and "the limit of 20 MB per minute per user" in reply.text
    time.sleep(0.5)
    assert folder_bytes(temp) < 5 * MB  # the part received was removed


def test_folder_bytes_counts_files_recursively_and_never_follows_a_link(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.bin").write_bytes(b"x" * 1000)
    (tmp_path / "two.bin").write_bytes(b"y" * 24)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.bin"
    outside.write_bytes(b"z" * 10_000)
    (tmp_path / "link").symlink_to(outside)
    assert folder_bytes(tmp_path) == 1024 + len(str(outside))  # a link weighs its target's path, not the target
    assert folder_bytes(tmp_path / "missing") == 0


def test_the_processs_temp_folder_is_readable_by_the_server_user_only(tmp_path, monkeypatch):
    """Visitors' uploads and results live in <gradio temp>/studio-<pid>: on a shared host /tmp is
    everyone's, so the folder lets no other user in (files below keep the usual mode)."""
    import os
    import stat

    from ui import uploads

    monkeypatch.setattr(uploads, "_claimed", [])
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    folder, _, _ = uploads.claim_temp_folder()
    assert folder == tmp_path / "gradio" / f"studio-{os.getpid()}"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
