"""The disk stays bounded under use: the output folder's bound, gradio's temporary files swept, an upload
over the limit refused while it streams."""

import os
import time
from pathlib import Path

import pytest

from ui import common


def test_the_output_folder_keeps_at_most_its_bound(tmp_path):
    from pipelines.schema.outputs import new_output_dir

    made = []
    for i in range(12):
        made.append(new_output_dir(tmp_path, max_folders=4))
        (made[-1] / "music.wav").write_bytes(b"x")
        os.utime(made[-1], (time.time() - 100 + i,) * 2)  # distinct ages, all younger than max_age_s
    kept = sorted(tmp_path.iterdir())
    assert len(kept) <= 4 and made[-1] in kept


@pytest.mark.slow
def test_gradios_temporary_files_are_swept(studio, tmp_path, monkeypatch):
    import app
    from gradio_client import Client, handle_file

    from tests.conftest import free_port

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    demo = app.queue(app.build_demo(studio, delete_cache=(1, 1)))  # the bound, scaled down from (60, 900)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        examples = {f for f in tmp_path.rglob("*") if f.is_file()}  # the examples' files, made at start
        for _ in range(3):
            client.predict(handle_file(str(common.ASSETS / "groove.wav")), "riffusion", False,
                           api_name="/audio_to_spectrogram")
        assert {f for f in tmp_path.rglob("*") if f.is_file()} - examples  # the uploads and the answers
        time.sleep(3.5)  # older than 1 s, swept every 1 s
        assert {f for f in tmp_path.rglob("*") if f.is_file()} <= examples  # none of the calls' files is left
    finally:
        demo.close()


def test_an_upload_over_the_limit_is_refused_while_it_streams(served_app, tmp_path):
    import httpx

    from pipelines.schema import limits

    big = tmp_path / "big.wav"
    with open(big, "wb") as f:
        f.truncate(limits.MAX_UPLOAD_BYTES + 1)  # sparse: nothing to write here
    started = time.time()
    with open(big, "rb") as f:
        answer = httpx.post(f"{served_app}gradio_api/upload", files={"files": ("big.wav", f)}, timeout=60)
    assert answer.status_code == 413 and "larger than the 50 MB an upload may be" in answer.text
    from gradio.route_utils import DEFAULT_TEMP_DIR

    left = [p for p in Path(DEFAULT_TEMP_DIR).rglob("*")
            if p.is_file() and p.stat().st_mtime >= started and p.stat().st_size > limits.MAX_UPLOAD_BYTES // 2]
    assert left == []  # the part received was removed
