"""Each kind of studio process keeps numba's on-disk cache apart from the others.

librosa compiles its kernels with numba's ``cache=True``. That cache is not safe for processes that
compile at the same time: each numbers the overloads it adds in a shared index, so two processes
compiling different signatures of one function can leave the index pointing at the other's machine
code, and whichever process loads it next crashes (segfaults in librosa's beat tracker and
``chroma_cens`` were seen here, in the app's test run, after a training subprocess, a server and
evaluation ranks had shared one cache). Processes that run side by side therefore never share one:
the app server, a training it starts, an evaluation or batch command, a benchmark, and each rank a
launcher (``accelerate launch``) starts, each under its own folder; processes of one kind run one at
a time (the Train tab's queue) or are ranks, so a cache is still reused from one run to the next.
"""

from __future__ import annotations

import os
import tempfile


def numba_cache_for(kind: str) -> str:
    """Point ``NUMBA_CACHE_DIR`` at ``<base>/<kind>`` (``/rank<N>`` added under a launcher that sets
    ``LOCAL_RANK``) and return it. ``base``: the caller's ``NUMBA_CACHE_DIR`` (a parent process's own
    folder, so a child nests inside it and never shares it), else ``<temp>/studio-numba``. Call it before
    numba is imported: the first lines of each entry point."""
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "studio-numba")
    folder = os.path.join(base, kind)
    rank = os.environ.get("LOCAL_RANK", "")
    if rank.isdigit():
        folder = os.path.join(folder, f"rank{rank}")
    os.environ["NUMBA_CACHE_DIR"] = folder
    return folder
