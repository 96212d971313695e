"""Without network a hub model is reported missing at once, not after the Hub client's retries."""

import socket
import time

import pytest

from core.errors import ModelUnavailableError
from pipelines.models import hub_reach
from pipelines.models.registry import ModelSource, load_or_explain


@pytest.fixture
def unreachable_hub(monkeypatch):
    """The Hub's endpoint is a local port nobody listens on, and the tests' HF_HUB_OFFLINE is off."""
    from huggingface_hub import constants

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_reach, "_last", None)
    yield constants
    hub_reach._last = None


def test_a_load_runs_offline_and_explains_when_the_hub_cannot_be_reached(unreachable_hub):
    seen = []

    def load(location, revision=None):
        seen.append(unreachable_hub.HF_HUB_OFFLINE)  # the Hub client's switch, as it sees it during the load
        raise OSError("not in the cache")

    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="cannot be reached"):
        load_or_explain(ModelSource("blip", "owner/repo", "main", False, "registry"), load)
    assert seen == [True]
    assert unreachable_hub.HF_HUB_OFFLINE is False  # switched back after the load
    assert time.perf_counter() - start < hub_reach.PROBE_TIMEOUT_S + 1


def test_a_cached_hub_model_still_loads_without_network(unreachable_hub):
    source = ModelSource("blip", "owner/repo", "main", False, "registry")
    assert load_or_explain(source, lambda location, revision=None: f"{location}@{revision}") == "owner/repo@main"


def test_local_folders_never_probe_the_hub(unreachable_hub, monkeypatch):
    monkeypatch.setattr(hub_reach, "hub_reachable", lambda: pytest.fail("probed the Hub for a local folder"))
    source = ModelSource("blip", "/models/blip", None, True, "env")
    assert load_or_explain(source, lambda location: location) == "/models/blip"
