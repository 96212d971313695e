"""The role table is the one place a model is declared: its readers follow it."""

import dataclasses

from pipelines.models.building import fullsize, fullsize_specs, tiny

from pipelines.models import loaders, roles
from pipelines.models.registry import ModelRegistry
from pipelines.models.roles import ROLES, Role


def test_every_role_names_a_loader_families_and_tabs_that_exist():
    for name, role in ROLES.items():
        assert role.loader is None or role.loader in loaders.LOADERS or role.loader in ("amuse", "keras_classifier"), name
        assert tiny.has(role.family_for("tiny")), name
        assert fullsize.has(role.family_for("fullsize")), name
        assert role.family_for("fullsize") in fullsize_specs.FAMILIES, name  # its source and torch parts
        assert role.tabs, f"{name} names no tab"
    assert fullsize_specs.REAL_SIZES["musicgen_melody"] == ROLES["musicgen_melody"].real_sizes


def test_a_new_role_is_one_entry(monkeypatch):
    """A role added to the table gets a manager entry, its tab listing and a tiny folder, with no other edit."""
    extra = Role("musicgen_large", "facebook/musicgen-large", "main", "musicgen", "a bigger MusicGen",
                 loader="musicgen", tabs=(roles.IMAGE_TO_MUSIC,))
    monkeypatch.setitem(ROLES, extra.name, extra)
    registry = ModelRegistry("tiny", environ={})
    entries = loaders.entry_loaders(registry, dtype=None, device="cpu")
    assert "musicgen_large" in entries and "amuse" in entries and "amuse_unet" not in entries
    assert "musicgen_large" in roles.tab_entries()[roles.IMAGE_TO_MUSIC]
    assert registry.resolve("musicgen_large").location == str(tiny.ensure("musicgen"))
    assert "musicgen_large" in {row["role"] for row in registry.describe()}


def test_the_studio_reads_its_entries_and_tabs_from_the_table(studio):
    from pipelines.studio import SOUND_TO_MUSIC_MODELS, TAB_MODELS, TEXT_TO_MUSIC_MODELS

    assert set(studio.manager.names()) == {role.manager_entry for role in ROLES.values() if role.loader}
    assert SOUND_TO_MUSIC_MODELS == ("mask_model", "riffusion") and TEXT_TO_MUSIC_MODELS == ("riffusion", "mask_model")
    assert TAB_MODELS[roles.PLAYLIST_TO_MUSIC] == ("amuse",)
    assert studio.tabs_needing("sd15") == [roles.MUSIC_TO_IMAGE]
    assert set(studio.tabs_needing("riffusion")) == {roles.SOUND_TO_MUSIC, roles.STYLE_INTERPOLATION, roles.TEXT_TO_MUSIC}


def test_fullsize_families_come_from_the_roles():
    registry = ModelRegistry("fullsize", environ={})
    assert registry.family("mask_model") == "riffusion" and registry.family("sd15") == "sd15"
    assert dataclasses.replace(ROLES["blip"], fullsize_family=None).family_for("fullsize") == "blip"
