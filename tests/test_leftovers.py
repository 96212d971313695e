"""What earlier processes left behind is removed when the app starts: half-built model folders and
the gradio temp files of studio processes that are gone."""

import fcntl
import os
import subprocess
import sys

import pytest


@pytest.fixture
def leftovers(tmp_path, monkeypatch):
    cache, temp = tmp_path / "cache", tmp_path / "gradio"
    monkeypatch.setenv("STUDIO_CACHE", str(cache))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(temp))
    profile = cache / "tiny"
    stale = profile / ".sd-v3-k2j4h5"  # a build killed halfway (kill -9)
    (stale / "unet").mkdir(parents=True)
    (stale / "unet" / "weights.bin").write_bytes(b"\0" * 1000)
    building = profile / ".clap-v1-a8d7f6"  # a build in progress in another process: holds its lock
    building.mkdir()
    built = profile / "sd-v3"
    built.mkdir()
    (built / ".complete").write_text("ok\n")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    old = temp / f"studio-{int(gone.stdout)}" / "0123abcd" / "upload.wav"  # a process that is gone (a restart)
    old.parent.mkdir(parents=True)
    old.write_bytes(b"\0" * 100)
    running = temp / f"studio-{os.getppid()}" / "4567ef01" / "recent.wav"  # a studio process still running
    running.parent.mkdir(parents=True)
    running.write_bytes(b"\0" * 100)
    other = temp / "89ab" / "another-app.wav"  # another app's file in the shared folder
    other.parent.mkdir()
    other.write_bytes(b"\0" * 100)
    with open(profile / ".clap-v1.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield dict(stale=stale, building=building, built=built, old=old, running=running, other=other, temp=temp)


@pytest.mark.slow
def test_a_restart_removes_stale_builds_and_the_temp_files_of_gone_processes(leftovers):
    import app
    from tests.conftest import free_port

    demo = app.start(app.parse_args(["--profile", "tiny", "--device", "cpu", "--port", str(free_port()),
                                     "--no-warm-up"]))
    try:
        assert not leftovers["stale"].exists() and not leftovers["old"].parents[1].exists()
        assert leftovers["building"].exists() and leftovers["built"].exists()
        assert leftovers["running"].exists() and leftovers["other"].exists()
        mine = leftovers["temp"] / f"studio-{os.getpid()}"  # this process's own folder, where its files go
        assert os.environ["GRADIO_TEMP_DIR"] == str(mine) and demo.GRADIO_CACHE == str(mine)
    finally:
        demo.close()
