"""The page on the hub profile says where the originals' files come from (About) and, at once, that the
playlist tab has no published VAE and how to train one. Builds the page only: nothing loads or downloads."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def hub_page():
    import app
    from pipelines.studio import Studio

    demo = app.build_demo(Studio(profile="hub", device="cpu"))
    return demo.config["components"]


def _values(components, kind):
    return [c.get("props", {}).get("value") for c in components if c.get("type") == kind]


def test_about_lists_each_original_file_with_source_commit_and_licence(hub_page):
    table = next(c["props"] for c in hub_page if c.get("type") == "dataframe"
                 and c["props"].get("label") == "Original files fetched from GitHub")
    headers, rows = table["value"]["headers"], table["value"]["data"]
    assert headers == ["role", "file", "source", "commit", "licence", "checksum", "state"]
    by_file = {row[1]: dict(zip(headers, row)) for row in rows}
    assert set(by_file) == {"Genre_classifier_model.h5", "emotion_model.h5", "pytorch_lora_weights.safetensors",
                            "accordion", "chime"}
    genre = by_file["Genre_classifier_model.h5"]
    assert genre["source"] == ("https://github.com/Derek327783/TechJam/blob/7929cc115c85061225c008ed4ae785db2205a7ae/"
                               "flask/Genre_classifier_model.h5")
    assert genre["commit"] == "7929cc1" and genre["licence"].startswith("none") and genre["checksum"].startswith("sha256 6572829f")
    assert by_file["chime"]["commit"] == "cf77424" and by_file["chime"]["licence"] == "MIT"
    assert by_file["chime"]["checksum"] == "git blob a6ae22879344e370308c931033270f52741ca777"
    assert all(row["state"] == "not fetched: offline" for row in by_file.values())  # the tests run offline
    assert any("TechJam publishes no licence" in (text or "") and "never ships or re-hosts" in text
               for text in _values(hub_page, "markdown"))


def test_playlist_tab_says_at_once_that_no_vae_is_published(hub_page):
    notice = next(c["props"]["value"] for c in hub_page if c.get("props", {}).get("elem_id") == "playlist-vae-missing")
    assert notice.startswith("**This tab cannot run here yet.**")
    assert "published nowhere" in notice and "python -m training.amuse_vae" in notice and "STUDIO_" not in notice


def test_no_notice_once_a_vae_folder_is_named(monkeypatch, tmp_path):
    from pipelines.studio import Studio
    from ui.playlist_to_music import vae_missing

    assert "published nowhere" in vae_missing(Studio(profile="hub", device="cpu"))
    monkeypatch.setenv("STUDIO_MODEL_AMUSE_VAE", str(tmp_path))
    assert vae_missing(Studio(profile="hub", device="cpu")) is None
    assert vae_missing(Studio(profile="tiny", device="cpu")) is None
