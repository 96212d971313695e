"""Untrusted files are decoded here: in a worker process with a time limit and a memory limit.

A decoder library can loop forever on a crafted file (libsndfile 1.2.2 re-reads a LIST/INFO
sub-chunk of declared size 0xFFFFFFF8 without end, libsndfile issue #1118) or allocate without
bound. In the server's own process such a call cannot be stopped, and python-soundfile holds one
class-wide lock around every ``sf_open``, so every later audio read and WAV write of every user
would wait on it. So every upload (sound and picture) is decoded by :func:`run` in a small pool of
worker processes:

* each worker is a fresh interpreter (``python -c``, not ``multiprocessing``: its 'spawn' and
  'forkserver' modes re-import the app's ``__main__``, gradio and all) that imports the decoders
  once, limits its own address space with ``resource.setrlimit(RLIMIT_AS, ...)``
  (``limits.DECODE_MEMORY_BYTES``) and then serves calls, so a normal file costs one round trip
  through a pipe (milliseconds), not a process start;
* a call that passes ``limits.DECODE_SECONDS``, or whose run is cancelled (``core.runs``), has its
  worker's whole process group killed (audioread's ffmpeg with it) and a fresh worker started in
  the background; the caller gets :class:`~core.errors.InputError` "... could not be decoded within
  N s" (or :class:`~core.errors.Cancelled`) and every other request carries on;
* a worker that dies (the memory limit hit inside C code, a crash) is replaced the same way;
* at most ``limits.DECODE_WORKERS`` decode at once; more callers wait for a free worker (the wait
  does not count against the time limit); 0 decodes in the calling process, unprotected (scripts
  over trusted files, and tests that patch a decoder).

The function must be importable by name (module level) and its arguments and result picklable.
Exceptions raised in the worker come back as they are (an ``InputError`` keeps its message).
Lives in ``pipelines`` (not ``pipelines.signal.audio``) because sounds and pictures both use it; it imports
no gradio and no torch, and its limits are ``pipelines.schema.limits``'s.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

from core import runs
from core.errors import Cancelled, InputError

from pipelines.schema import limits

log = logging.getLogger("studio.sandbox")

ROOT = Path(__file__).resolve().parents[2]  # the repository: the worker imports from here
# Imported by each worker before it says it is ready, so no call pays for them.
PRELOAD = ("pipelines.signal.audio.loading", "pipelines.signal.images")
_START_SECONDS = 120.0  # a fresh worker imports numpy, soundfile and PIL: seconds on a loaded machine
_POLL_SECONDS = 0.05  # how often a waiting caller looks at its run's stop flag


def _limits() -> tuple[float, int, int]:
    # read at call time: app flags and tests may change them
    return float(limits.DECODE_SECONDS), int(limits.DECODE_MEMORY_BYTES), int(limits.DECODE_WORKERS)


class _Worker:
    """One worker process and the two pipes to it."""

    def __init__(self, memory: int):
        self.memory = memory
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        _widen(from_child_w)  # a decoded sound or picture comes back in fewer, larger writes
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = "1"  # one decode, one thread: and no per-thread arenas eating the address space
        code = f"from pipelines.signal.sandbox import serve; serve({to_child_r}, {from_child_w}, {memory})"
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code], pass_fds=(to_child_r, from_child_w), cwd=str(ROOT), env=env,
                stdin=subprocess.DEVNULL, start_new_session=True)  # its own group: killed with its children
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.calls = Connection(to_child_w, readable=False)
        self.answers = Connection(from_child_r, writable=False)
        self.ready = False

    def wait_ready(self) -> bool:
        """Wait for the worker's first message (its imports done); False if it died or took too long."""
        if self.ready:
            return True
        try:
            if self.answers.poll(_START_SECONDS) and self.answers.recv() == "ready":
                self.ready = True
        except (EOFError, OSError):
            pass
        return self.ready

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the worker and whatever it started (ffmpeg)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.warning("decode worker %d did not exit after SIGKILL", self.process.pid)
        for conn in (self.calls, self.answers):
            conn.close()


def _widen(fd: int, size: int = 2**20) -> None:
    """Grow a pipe's buffer (Linux ``F_SETPIPE_SZ``; 1 MB is the default most a user may ask for)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (OSError, ImportError):  # another system, or a lower limit: the default buffer works too
        pass


class _Overrun(Exception):
    """The worker passed its time limit, died, or its run was cancelled."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind  # "time", "died" or "cancelled"


class Pool:
    """At most ``limits.DECODE_WORKERS`` workers; idle ones are kept warm for the next call."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._idle: list[_Worker] = []
        self._busy = 0
        self._starting = 0
        self.replaced = 0  # workers killed and replaced (tests and the soak read this)

    def warm(self) -> None:
        """Start one worker in the background if none is idle (at app start, and after a kill)."""
        with self._lock:
            if self._idle or self._starting:
                return
            self._starting += 1
        threading.Thread(target=self._start_idle, name="decode-worker-start", daemon=True).start()

    def _start_idle(self) -> None:
        try:
            worker = _Worker(_limits()[1])
            if worker.wait_ready():
                with self._lock:
                    self._idle.append(worker)
                    self._lock.notify_all()
                return
            worker.kill()
        except Exception:  # noqa: BLE001  (the next call starts one itself and reports the failure)
            log.exception("starting a decode worker failed")
        finally:
            with self._lock:
                self._starting -= 1
                self._lock.notify_all()

    def _take(self, memory: int, workers: int) -> _Worker:
        with self._lock:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive() and worker.memory == memory:
                        self._busy += 1
                        return worker
                    threading.Thread(target=worker.kill, daemon=True).start()
                if self._busy + self._starting < workers:
                    self._busy += 1
                    break
                runs.raise_if_stopped()
                self._lock.wait(_POLL_SECONDS * 4)
        try:
            worker = _Worker(memory)
            if not worker.wait_ready():
                worker.kill()
                raise RuntimeError("a decode worker did not start")
            return worker
        except BaseException:
            with self._lock:
                self._busy -= 1
                self._lock.notify_all()
            raise

    def _give_back(self, worker: _Worker | None) -> None:
        with self._lock:
            self._busy -= 1
            if worker is not None:
                self._idle.append(worker)
            self._lock.notify_all()

    def call(self, fn: Callable, *args: Any) -> Any:
        """``fn(*args)`` in a worker; raises ``_Overrun`` (the worker is then killed and replaced)."""
        seconds, memory, workers = _limits()
        args = tuple(_absolute(arg) for arg in args)  # the worker runs in the repository, not the caller's folder
        worker = self._take(memory, workers)
        try:
            worker.calls.send((fn, args))
            deadline = time.monotonic() + seconds
            while not worker.answers.poll(_POLL_SECONDS):
                if runs.stop_requested():
                    raise _Overrun("cancelled")
                if time.monotonic() > deadline:
                    raise _Overrun("time")
                if not worker.alive() and not worker.answers.poll(0):
                    raise _Overrun("died")
            ok, value = worker.answers.recv()
        except (EOFError, OSError, _Overrun) as error:
            worker.kill()
            self.replaced += 1
            self._give_back(None)
            self.warm()
            if isinstance(error, _Overrun):
                raise
            raise _Overrun("died") from None
        self._give_back(worker)
        if ok:
            return value
        raise value

    def close(self) -> None:
        """Kill every idle worker (busy ones are killed by their callers' limits)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


def _absolute(arg: Any) -> Any:
    """A relative path to an existing file as an absolute one (the caller's working folder is not the worker's)."""
    if isinstance(arg, os.PathLike) or (isinstance(arg, str) and arg and not os.path.isabs(arg)):
        path = os.fspath(arg)
        if not os.path.isabs(path) and os.path.exists(path):
            return type(arg)(os.path.abspath(path)) if isinstance(arg, os.PathLike) else os.path.abspath(path)
    return arg


POOL = Pool()


def run(fn: Callable, *args: Any, name: str) -> Any:
    """``fn(*args)`` in a decode worker; ``name`` says what is decoded in messages ("The audio file 'a.wav'").

    Raises what ``fn`` raises; :class:`~core.errors.InputError` when the worker passes
    ``limits.DECODE_SECONDS`` or dies (the memory limit), :class:`~core.errors.Cancelled` when the
    run in progress is cancelled meanwhile.
    """
    if limits.DECODE_WORKERS <= 0:  # the operator's choice: no workers, no protection (trusted files only)
        return fn(*args)
    seconds, memory, _ = _limits()
    too_big = (f"{name} could not be decoded: decoding it needed more than the {memory / 2**20:.0f} MB this app "
               "allows, or crashed. Export it again, or use another file.")
    try:
        return POOL.call(fn, *args)
    except MemoryError:  # the worker's address-space limit, met in Python code
        raise InputError(too_big) from None
    except _Overrun as overrun:
        if overrun.kind == "cancelled":
            raise Cancelled() from None
        if overrun.kind == "time":
            log.warning("decode worker killed: %s took over %g s", name, seconds)
            raise InputError(f"{name} could not be decoded within {seconds:g} s, so it was stopped; the file is "
                             "probably damaged or crafted. Export it again, or use another file.") from None
        log.warning("decode worker died decoding %s", name)
        raise InputError(too_big) from None


# -- the worker's side ---------------------------------------------------------------------------------------
def serve(calls_fd: int, answers_fd: int, memory: int) -> None:
    """The worker's loop: limit the address space, import the decoders, then answer calls until the
    parent closes the pipe. Each answer is ``(True, result)`` or ``(False, exception)``."""
    import importlib
    import resource
    import traceback

    calls, answers = Connection(calls_fd, writable=False), Connection(answers_fd, readable=False)
    parent = os.getppid()

    def orphaned() -> None:  # the server died (kill -9) while this worker was stuck in a decoder: go too
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=orphaned, name="decode-worker-watchdog", daemon=True).start()
    for module in PRELOAD:
        importlib.import_module(module)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    answers.send("ready")
    while True:
        try:
            fn, args = calls.recv()
        except (EOFError, OSError):
            return
        try:
            answer = (True, fn(*args))
        except BaseException as error:  # noqa: BLE001  (sent back to the caller, who raises it)
            if not isinstance(error, InputError):  # a bug, not the user's file: keep where it happened
                error.add_note("in the decode worker:\n" + "".join(traceback.format_exception(error)))
            answer = (False, error)
        try:
            answers.send(answer)
        except Exception as error:  # noqa: BLE001  (an unpicklable result or exception, or no memory)
            answers.send((False, RuntimeError(f"decoding failed: {type(error).__name__}: {str(error)[:200]}")))
        del answer
        _give_memory_back()


def _give_memory_back() -> None:
    """Return freed heap pages to the system, so an idle worker does not keep a big file's memory."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
