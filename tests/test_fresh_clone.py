"""A fresh clone with nothing beside it: the original projects' files are found in one place
(scripts/real_data.py), fetched with checksums, and a test that needs them skips with one line."""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts import real_data

ROOT = Path(__file__).resolve().parents[1]
FOLDER = real_data.SHARED.name  # the shared folder's name, taken from its one home


def _names_the_shared_folder(path: Path) -> list[int]:
    """Line numbers of code (not docstrings or comments) in ``path`` that spell a path into the shared folder."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    # a bare "shared" is a path into the shared folder only when joined onto a parent of somewhere
    # (``ROOT.parent / "shared"``); elsewhere it is an ordinary word (the trained store's "shared" mode)
    beside_a_parent = {id(node.right) for node in ast.walk(tree)
                       if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and "parent" in ast.unparse(node.left)}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
            if f"../{FOLDER}" in text or text.startswith(f"{FOLDER}/") or \
                    (text.strip("/") == FOLDER and id(node) in beside_a_parent):
                lines.append(node.lineno)
    return sorted(lines)


def test_only_one_module_names_the_shared_folder():
    offenders = {}
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in {".venv", ".cache"} or relative == Path("scripts/real_data.py"):
            continue
        if lines := _names_the_shared_folder(path):
            offenders[str(relative)] = lines
    assert offenders == {}, f"only scripts/real_data.py may name the shared folder: {offenders}"


def test_the_check_sees_a_path_into_the_shared_folder(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(f'"""Docs may cite ../{FOLDER}/reference."""\nA = ROOT.parent / "{FOLDER}" / "x"\n'
                      f'B = "../{FOLDER}/data"\nC = Path(__file__).parents[2] / "{FOLDER}"\n'
                      f'D = store.root / "{FOLDER}" / "loras"\nsetattr(store, "{FOLDER}", True)\n')
    assert _names_the_shared_folder(module) == [2, 3, 4]  # D and the attribute name are ordinary words


def test_nothing_found_means_none(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_REAL_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(real_data, "SHARED", tmp_path / "no-shared")
    monkeypatch.setattr(real_data, "CACHE", tmp_path / "no-cache")
    assert real_data.find_real_data() is None
    assert real_data.find_real_data("mask-paper") is None


def test_a_partial_folder_serves_only_the_parts_it_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(real_data, "SHARED", tmp_path / "no-shared")
    monkeypatch.setattr(real_data, "CACHE", tmp_path / "cache")
    for item in real_data.MANIFEST:
        if item.path.startswith("techjam/"):
            (tmp_path / "cache" / item.path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "cache" / item.path).write_bytes(b"x")
    monkeypatch.delenv("STUDIO_REAL_DATA", raising=False)
    assert real_data.find_real_data("techjam") == tmp_path / "cache"
    assert real_data.find_real_data("mask-paper") is None and real_data.find_real_data() is None


def test_the_fixture_skips_with_one_line_saying_how_to_get_them(tmp_path):
    """Run a test needing ``real_data`` in a child pytest with nothing to find: one skip line naming `make real-data`."""
    test = tmp_path / "test_needs_real.py"
    test.write_text("def test_x(real_data):\n    assert False\n")
    env = {"STUDIO_REAL_DATA": str(tmp_path / "empty"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    code = ("import sys; from pathlib import Path; from scripts import real_data as r; "
            f"r.SHARED = Path({str(tmp_path / 'none')!r}); r.CACHE = Path({str(tmp_path / 'none')!r}); "
            "import pytest; sys.exit(pytest.main(['-q', '-rs', '-p', 'no:cacheprovider', '--rootdir', "
            f"{str(ROOT)!r}, '--confcutdir', {str(ROOT / 'tests')!r}, '-c', {str(ROOT / 'pyproject.toml')!r}, "
            f"{str(test)!r}, '-o', 'testpaths=']))")
    conftest = tmp_path / "conftest.py"
    conftest.write_text((ROOT / "tests" / "conftest.py").read_text())
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(skipped) == 1 and "make real-data" in skipped[0], result.stdout
    env["STUDIO_REQUIRE_REAL_DATA"] = "1"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "STUDIO_REQUIRE_REAL_DATA=1" in result.stdout, result.stdout


@dataclass(frozen=True)
class LocalFile(real_data.RealFile):
    """A manifest entry served from a local file:// URL (the test has no network)."""

    origin: str = ""

    @property
    def url(self) -> str:
        return self.origin


def _entry(tmp_path: Path, payload: bytes, sha: str | None = None) -> LocalFile:
    source = tmp_path / "origin.bin"
    source.write_bytes(payload)
    return LocalFile("techjam/file.bin", "o/r", "0" * 40, "file.bin", sha or hashlib.sha256(payload).hexdigest(),
                     len(payload), origin=source.as_uri())


def test_fetch_keeps_a_file_whose_checksum_matches_and_skips_it_next_time(tmp_path):
    item = _entry(tmp_path, b"published bytes")
    assert real_data.fetch(tmp_path / "cache", (item,)) == [tmp_path / "cache" / "techjam" / "file.bin"]
    assert (tmp_path / "cache" / "techjam" / "file.bin").read_bytes() == b"published bytes"
    assert real_data.fetch(tmp_path / "cache", (item,)) == []


def test_fetch_refuses_a_mismatching_file_and_keeps_nothing(tmp_path):
    item = _entry(tmp_path, b"version https://git-lfs.github.com/spec/v1\n", sha="0" * 64)
    with pytest.raises(RuntimeError, match=r"techjam/file.bin: file://.* expected"):
        real_data.fetch(tmp_path / "cache", (item,))
    assert list((tmp_path / "cache" / "techjam").iterdir()) == []


def test_the_manifest_matches_the_shared_copies_where_they_are_here():
    folder = real_data.find_real_data()
    if folder is None:
        pytest.skip(real_data.HOW_TO_GET)
    for item in real_data.MANIFEST:
        data = (folder / item.path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (item.size, item.sha256), item.path
