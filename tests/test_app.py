"""The app shell: starts without loading models, serves its endpoints, reports its state."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_building_the_app_loads_no_model():
    import app
    from pipelines.studio import Studio

    fresh = Studio(profile="tiny", device="cpu")
    app.build_demo(fresh)
    assert fresh.manager.events == []
    assert {row["where"] for row in fresh.manager.status()} == {"not loaded"}


def test_status_endpoint_reports_profile_and_models(client):
    summary, table = client.predict(api_name="/status")
    assert "`tiny`" in summary and "`cpu`" in summary
    names = [row[0] for row in table["data"]]
    assert "riffusion" in names


def test_flags_are_parsed():
    import app

    args = app.parse_args(["--profile", "tiny", "--device", "cpu", "--port", "9999", "--share"])
    assert (args.profile, args.device, args.port, args.share) == ("tiny", "cpu", 9999, True)
    with pytest.raises(SystemExit):
        app.parse_args(["--profile", "huge"])


@pytest.mark.slow
def test_command_line_start_serves_quickly_with_no_model_loaded(tmp_path):
    """`python app.py --profile tiny` prints its start-up time and loads nothing."""
    from tests.conftest import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--profile", "tiny", "--device", "cpu", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 120
        lines = []
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Serving"):
                break
        text = "".join(lines)
        assert "Serving" in text, text
        seconds = float(text.split("after ")[1].split(" s")[0])
        assert seconds < 60
        assert "loaded " not in text, "a model was loaded at start"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_readme_documents_every_endpoint_and_only_those(client):
    """Docs match the code: the README and docs/ (API calls, tab table) name exactly the served endpoints."""
    import re

    every_doc = "\n".join(path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    # the tab table (docs/TABS.md) and the API page list endpoints as `/name`; other pages may name paths (`/tmp`)
    listing = "\n".join((ROOT / "docs" / name).read_text() for name in ("TABS.md", "API.md"))
    documented = set(re.findall(r'api_name="(/[a-z0-9_]+)"', every_doc)) | set(re.findall(r"`(/[a-z0-9_]+)`", listing))
    served = set(client.view_api(return_format="dict")["named_endpoints"])
    assert documented == served


@pytest.mark.slow
def test_the_readmes_api_examples_run_as_written(served_app, monkeypatch):
    """The "Using the API" code block of docs/API.md, executed as a user pastes it (only the URL is the test
    server's): every call's argument order and every unpacking of its outputs are right."""
    import re

    readme = (ROOT / "docs" / "API.md").read_text()
    section = readme[readme.index("## Using the API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert code.count("client.predict(") >= 15
    code = code.replace('Client("http://127.0.0.1:7860/")', f"Client({served_app!r}, verbose=False)")
    monkeypatch.chdir(ROOT)  # the examples name files under assets/
    names: dict = {}
    exec(compile(code, "docs/API.md (Using the API)", "exec"), names)
    assert names["metrics"]["headers"] == ["metric", "value"] and Path(names["zip_path"]).is_file()


def test_every_endpoint_says_what_it_does_in_the_api_docs(studio):
    import app

    endpoints = app.build_demo(studio).get_api_info()["named_endpoints"]
    assert len(endpoints) >= 14
    missing = [name for name, info in endpoints.items() if len(info.get("description") or "") < 30]
    assert missing == []  # view_api() and the page's "Use via API" show each one's sentence


def test_memory_budget_comes_from_the_environment(monkeypatch):
    from pipelines.studio import Studio

    monkeypatch.setenv("STUDIO_MEMORY_BUDGET_GB", "0.5")
    assert Studio(profile="tiny", device="cpu").manager.budget_bytes == 2**29
    monkeypatch.delenv("STUDIO_MEMORY_BUDGET_GB")
    # CPU: 75% of the host memory available at start (a CPU Space drops models instead of running out)
    import pipelines.models.memory as memory  # the budget: models/memory.py
    from core.errors import StudioError

    assert 2**20 < memory.available_memory_bytes() < 2**50  # the real reading is a plausible number
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 16 * 2**30)
    assert Studio(profile="tiny", device="cpu").manager.budget_bytes == 12 * 2**30
    for bad in ("0", "-2", "lots"):
        monkeypatch.setenv("STUDIO_MEMORY_BUDGET_GB", bad)
        with pytest.raises(StudioError, match="STUDIO_MEMORY_BUDGET_GB must be a positive number"):
            Studio(profile="tiny", device="cpu")


@pytest.mark.slow
def test_warming_up_imports_the_model_libraries_and_builds_every_tiny_model_without_loading_one(tmp_path):
    script = (
        "import sys\n"
        "from pipelines.studio import Studio\n"
        "from pipelines.models.registry import ROLES\n"
        "studio = Studio(profile='tiny', device='cpu')\n"
        "before = {m for m in ('diffusers', 'keras', 'librosa.beat') if m in sys.modules}\n"
        "studio.warm_up()\n"
        "after = {m for m in ('diffusers', 'keras', 'librosa.beat') if m in sys.modules}\n"
        "families = {studio.registry.family(r) for r in ROLES} & set(studio.registry.builder.BUILDERS)\n"
        "built = len(families) >= 10 and all(studio.registry.builder.FAMILIES.is_built(f) for f in families)\n"
        "print(sorted(before), sorted(after), built, studio.manager.resident_bytes())\n"
    )
    env = {**os.environ, "STUDIO_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[] ['diffusers', 'keras', 'librosa.beat'] True 0"


def test_every_original_work_is_linked_from_the_about_tab_and_the_readme():
    from ui import about

    readme = (ROOT / "README.md").read_text()
    page = about.sources_markdown()
    urls = [url for _, _, links in about.SYSTEMS for _, url in links]
    assert len(urls) >= 10 and all(url.startswith("https://") for url in urls)
    for url in urls:
        assert f"({url})" in page and f"({url})" in readme, url


def test_no_environment_variable_names_in_the_pages_help_text(studio):
    """Operators' settings belong in the README; the page speaks to the user."""
    import app

    demo = app.build_demo(studio)
    texts = []
    for block in demo.blocks.values():
        for attribute in ("value", "label", "info", "placeholder"):
            value = getattr(block, attribute, None)
            if isinstance(value, str):
                texts.append(value)
    assert len(texts) > 50
    leaks = [text for text in texts if "STUDIO_" in text or "HF_HUB" in text]
    assert not leaks, leaks
