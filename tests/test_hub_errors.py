"""What a failed Hub load says (pipelines/hub_reach.hub_error_reason through models.explain_missing), for the
errors huggingface_hub raises and the ones diffusers/transformers wrap them in. The same cases against a
served Hub: tests/test_hub_path.py (slow)."""

from __future__ import annotations

import httpx
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from pipelines.models.registry import ModelSource, explain_missing

SOURCE = ModelSource("blip", "Salesforce/blip-image-captioning-large", "0" * 40, False, "env")


def _response(path: str) -> httpx.Response:
    return httpx.Response(404, request=httpx.Request("GET", f"https://huggingface.co/{path}"))


def _wrapped(error: Exception) -> OSError:
    try:
        raise error
    except Exception as inner:  # noqa: BLE001
        try:
            raise OSError("Can't load the model: see above") from inner
        except OSError as outer:
            return outer


def test_wrong_revision():
    error = _wrapped(RevisionNotFoundError("404 Invalid rev id", response=_response("api/models/x/revision/0")))
    message = explain_missing(SOURCE, error)
    assert f"the revision '{'0' * 40}' does not exist in Salesforce/blip-image-captioning-large on the Hub" in message
    assert "STUDIO_MODEL_BLIP=owner/repo@revision" in message and "not in the local cache" not in message


def test_missing_file_from_the_hub_and_from_transformers_words():
    path = f"Salesforce/blip-image-captioning-large/resolve/{'0' * 40}/preprocessor_config.json"
    error = _wrapped(RemoteEntryNotFoundError("404 Entry not found", response=_response(path)))
    assert "on the Hub has no preprocessor_config.json, which the loader needs" in explain_missing(SOURCE, error)
    said = OSError("x does not appear to have a file named pytorch_model.bin or model.safetensors. Checkout ...")
    assert "has no pytorch_model.bin or model.safetensors, which the loader needs" in explain_missing(SOURCE, said)


def test_unknown_repository_and_other_errors():
    error = _wrapped(RepositoryNotFoundError("401", response=_response("api/models/nobody/nothing")))
    assert "the Hub has no repository Salesforce/blip-image-captioning-large" in explain_missing(SOURCE, error)
    assert "Download it on a machine with network" in explain_missing(SOURCE, RuntimeError("boom"))  # the general one


def test_studio_offline_switches_the_hub_off_without_asking_it(monkeypatch):
    from huggingface_hub import constants

    from pipelines.models import hub_reach

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("STUDIO_OFFLINE", "1")
    monkeypatch.setattr(hub_reach, "hub_reachable", lambda: (_ for _ in ()).throw(AssertionError("probed")))
    with hub_reach.offline_if_unreachable() as offline:
        assert offline and constants.HF_HUB_OFFLINE  # every Hub request in the block reads the cache only
    assert constants.HF_HUB_OFFLINE is False
