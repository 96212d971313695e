"""Two small local servers for the tests: a Hugging Face Hub and a GitHub (raw and LFS media hosts).

No maintained package serves the Hub API offline at chosen commit shas: mirrors such as olah proxy
huggingface.co, and a git-backed server cannot make the pinned commit ids the registry asks for.
So this is our own, as small as the client needs (huggingface_hub 2.4 ``hf_hub_download`` /
``snapshot_download`` / ``model_info``, which diffusers and transformers call):

- ``GET /api/models/{repo}/revision/{rev}``: ``{"id", "sha", "siblings": [{"rfilename"}]}``;
- ``GET /api/models/{repo}/tree/{rev}[/{folder}][?recursive=true]``: ``list_repo_tree``'s entries;
- ``HEAD|GET /{repo}/resolve/{rev}/{file}``: the bytes, with ``X-Repo-Commit`` (the commit the
  revision names), ``ETag`` (the file's sha256) and ``Content-Length``, as the client reads them;
- errors as the Hub sends them: 404 with ``X-Error-Code`` ``RepoNotFound``, ``RevisionNotFound`` or
  ``EntryNotFound`` (huggingface_hub turns each into its own exception).

A revision is ``main`` or the repo's full commit sha. The GitHub server answers
``/raw/{owner}/{repo}/{commit}/{path}`` and ``/media/{owner}/{repo}/{commit}/{path}`` (point
``STUDIO_GITHUB_RAW_URL`` / ``STUDIO_GITHUB_MEDIA_URL`` at ``url + "/raw"`` and ``url + "/media"``).
Both log every request (``requests``) so a test can tell what was downloaded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass
class Repo:
    commit: str
    files: dict[str, bytes] = field(default_factory=dict)


class _Server:
    """A ThreadingHTTPServer on a free localhost port, in a daemon thread; ``handle(method, path)``
    returns (status, headers, body)."""

    def __init__(self):
        self.requests: list[tuple[str, str]] = []
        self.query = ""  # the query string of the request being answered
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                path = unquote(parts.path)
                owner.requests.append((method, path))
                owner.query = parts.query
                status, headers, body = owner.handle(method, path)
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if method == "GET":
                    self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                self._answer("GET")

            def do_HEAD(self):  # noqa: N802
                self._answer("HEAD")

            def log_message(self, *args):  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def downloads(self) -> list[str]:
        """Paths fetched with GET (what the client downloaded), in order."""
        return [path for method, path in self.requests if method == "GET"]


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}, \
        json.dumps({"error": message}).encode()


class FakeHub(_Server):
    """The Hub API subset above, over ``repos`` ({repo_id: Repo})."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        super().__init__()

    def add(self, repo_id: str, commit: str, folder: Path | None = None, files: dict[str, bytes] | None = None,
            skip=lambda name: False) -> Repo:
        """Serve ``folder``'s files (relative paths, minus those ``skip`` names) and ``files`` as ``repo_id``."""
        repo = Repo(commit)
        if folder is not None:
            for path in sorted(Path(folder).rglob("*")):
                name = path.relative_to(folder).as_posix()
                if path.is_file() and not name.startswith(".") and "/." not in name and not skip(name):
                    repo.files[name] = path.read_bytes()
        repo.files.update(files or {})
        self.repos[repo_id] = repo
        return repo

    def _repo_and_rest(self, parts: list[str]) -> tuple[str | None, list[str]]:
        for cut in (2, 1):  # "owner/name" first, then a bare name
            if "/".join(parts[:cut]) in self.repos:
                return "/".join(parts[:cut]), parts[cut:]
        return None, parts

    @staticmethod
    def _tree(repo: Repo, folder: str, recursive: bool) -> list[dict]:
        """``list_repo_tree``'s entries under ``folder``: files (path, size, oid) and folders."""
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        entries: dict[str, dict] = {}
        for name, data in sorted(repo.files.items()):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):].split("/")
            for depth in range(1, len(rest)):
                if not recursive and depth > 1:
                    break
                path = prefix + "/".join(rest[:depth])
                entries.setdefault(path, {"type": "directory", "path": path, "oid": "0" * 40})
            if recursive or len(rest) == 1:
                entries[name] = {"type": "file", "path": name, "size": len(data),
                                 "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
        return list(entries.values())

    def _commit(self, repo: Repo, revision: str) -> str | None:
        return repo.commit if revision in ("main", repo.commit) else None

    def handle(self, method: str, path: str):
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "models"]:
            repo_id, rest = self._repo_and_rest(parts[2:])
            if repo_id is None:
                return _error(404, "RepoNotFound", "Repository not found")
            repo = self.repos[repo_id]
            revision = rest[1] if len(rest) >= 2 and rest[0] in ("revision", "tree") else "main"
            commit = self._commit(repo, revision)
            if commit is None:
                return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            if rest and rest[0] == "tree":
                return 200, {"Content-Type": "application/json"}, json.dumps(
                    self._tree(repo, "/".join(rest[2:]), "recursive=true" in self.query.lower())).encode()
            body = {"id": repo_id, "modelId": repo_id, "sha": commit, "private": False, "disabled": False,
                    "gated": False, "tags": [], "siblings": [{"rfilename": name} for name in sorted(repo.files)]}
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        repo_id, rest = self._repo_and_rest(parts)
        if repo_id is None:
            return _error(404, "RepoNotFound", "Repository not found")
        if len(rest) < 3 or rest[0] != "resolve":
            return _error(404, "EntryNotFound", f"Not served here: {path}")
        repo, revision, name = self.repos[repo_id], rest[1], "/".join(rest[2:])
        commit = self._commit(repo, revision)
        if commit is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if name not in repo.files:
            return _error(404, "EntryNotFound", f"{name} does not exist on {revision}")
        data = repo.files[name]
        return 200, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                     "Content-Type": "application/octet-stream"}, data


class FakeGitHub(_Server):
    """``/raw/...`` and ``/media/...`` over ``files`` ({"raw/owner/repo/commit/path": bytes, ...})."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        super().__init__()

    def add(self, host: str, repo: str, commit: str, path: str, data: bytes) -> str:
        """Serve ``data`` on ``host`` ("raw" or "media") at the repo's commit and path; returns its URL."""
        key = f"{host}/{repo}/{commit}/{path}"
        self.files[key] = data
        return f"{self.url}/{key}"

    def environ(self) -> dict[str, str]:
        return {"STUDIO_GITHUB_RAW_URL": f"{self.url}/raw", "STUDIO_GITHUB_MEDIA_URL": f"{self.url}/media"}

    def handle(self, method: str, path: str):
        data = self.files.get(path.lstrip("/"))
        if data is None:
            return 404, {"Content-Type": "text/plain"}, b"404: Not Found"
        return 200, {"Content-Type": "application/octet-stream"}, data


def lfs_pointer(data: bytes) -> bytes:
    """The Git LFS pointer text git stores in place of ``data`` (what the raw host serves for an LFS file)."""
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
            f"size {len(data)}\n").encode()
