"""The fullsize profile and the registry's pins, checked cheaply: configs, layouts, parameter counts
on the meta device. Nothing here builds a full-size model (``benchmarks/fullsize.py`` does)."""

from __future__ import annotations

import re

from pipelines.models import ROLES, UNPINNED_ROLES, ModelRegistry

SHA = re.compile(r"^[0-9a-f]{40}$")


def test_every_hub_role_is_pinned_to_a_full_sha_except_the_documented_ones():
    hub_roles = {name for name, role in ROLES.items() if role.repo_id}
    unpinned = {name for name in hub_roles if not SHA.match(ROLES[name].revision)}
    assert unpinned == set(UNPINNED_ROLES) == {"mask_model"}
    assert all(ROLES[name].revision == "main" for name in unpinned)  # never a short sha or a typo
    for name in hub_roles - unpinned:
        source = ModelRegistry("hub", environ={}).resolve(name)
        assert SHA.match(source.revision) and source.revision == ROLES[name].revision
