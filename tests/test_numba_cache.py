"""Processes side by side never share numba's cache (core/numba_cache.py): it is not safe for processes
that compile at once, and a corrupted one segfaults librosa."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.numba_cache import numba_cache_for

ROOT = Path(__file__).resolve().parents[1]


def test_a_kind_nests_in_the_callers_cache_and_a_rank_in_its_kind(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert numba_cache_for("app") == str(tmp_path / "app") == os.environ["NUMBA_CACHE_DIR"]
    assert numba_cache_for("training") == str(tmp_path / "app" / "training")  # a training the app starts
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert numba_cache_for("evaluation") == str(tmp_path / "evaluation" / "rank1")


@pytest.mark.parametrize("entry, kind", [("import evaluation", "evaluation"), ("import studio", "batch"),
                                         ("import training", "training"), ("import app", "app")])
def test_every_entry_point_takes_its_own_cache_before_numba_loads(entry, kind, tmp_path):
    env = {**os.environ, "LOCAL_RANK": "3", "NUMBA_CACHE_DIR": str(tmp_path)}
    code = f"{entry}; import os, sys; print(os.environ['NUMBA_CACHE_DIR'], 'numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.stdout.split()[-2:] == [str(tmp_path / kind / "rank3"), "False"], done.stderr[-1000:]
