"""What earlier processes left behind is removed when the app starts: half-built model folders and
gradio temp files past the sweep age."""

import fcntl
import os
import time

import pytest

from pipelines import limits


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
    old = temp / "0123abcd" / "upload.wav"  # an earlier process's upload, past the sweep age
    old.parent.mkdir(parents=True)
    old.write_bytes(b"\0" * 100)
    past = time.time() - limits.CACHE_SWEEP[1] - 60
    os.utime(old, (past, past))
    young = temp / "4567ef01" / "recent.wav"  # may belong to another app sharing the folder
    young.parent.mkdir()
    young.write_bytes(b"\0" * 100)
    with open(profile / ".clap-v1.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield dict(stale=stale, building=building, built=built, old=old, young=young)


@pytest.mark.slow
def test_a_restart_removes_stale_builds_and_old_temp_files(leftovers):
    import app
    from tests.conftest import free_port

    demo = app.start(app.parse_args(["--profile", "tiny", "--device", "cpu", "--port", str(free_port()),
                                     "--no-warm-up"]))
    try:
        assert not leftovers["stale"].exists() and not leftovers["old"].exists()
        assert not leftovers["old"].parent.exists()  # its folder, left empty, too
        assert leftovers["building"].exists() and leftovers["built"].exists() and leftovers["young"].exists()
    finally:
        demo.close()
