"""The import direction the README promises: app -> ui -> pipelines -> classifiers -> core, never back;
evaluation/ and training/ sit on top of pipelines (nothing imports them; they import no UI)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> top-level packages it must never import (at module level or inside a function)
FORBIDDEN = {
    "core": {"pipelines", "classifiers", "ui", "app", "training", "scripts", "evaluation", "gradio", "torch"},
    "classifiers": {"pipelines", "ui", "app", "training", "scripts", "evaluation", "gradio"},
    "pipelines": {"ui", "app", "training", "scripts", "evaluation", "gradio"},
    "ui": {"app", "training", "scripts", "evaluation", "torch", "diffusers", "transformers"},
    "evaluation": {"ui", "app", "training", "scripts", "gradio"},
    # recipes use pipelines' models and codecs; they never reach the UI (no gradio: they run headless)
    "training": {"ui", "app", "gradio", "scripts", "benchmarks", "evaluation"},
}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_packages(path) & FORBIDDEN[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_the_check_sees_a_backward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from ui.common import save\n    import gradio as gr\n")
    assert imported_packages(module) == {"ui", "gradio"}


# -- inside a package: which module may import which ------------------------------------------------------
def sibling_imports(path: Path, package: str, folder: tuple[str, ...] | None = None) -> set[str]:
    """The modules of ``package`` that ``path`` (a module of it) imports, at any depth of the file, named
    relative to the package (``systems.masked_img2img``): ``from . import x``, ``from .x import y``,
    ``from package.x import y``, ``from package.x import submodule``, ``import package.x``. A relative
    import is resolved from ``folder`` (the module's folder inside the package; default: where ``path`` is)."""
    root = ROOT / package
    here = folder if folder is not None else path.resolve().parent.relative_to(root.resolve()).parts

    def known(dotted: str) -> bool:
        target = root.joinpath(*dotted.split("."))
        return target.with_suffix(".py").exists() or (target / "__init__.py").exists()

    def add(base: list[str], node: ast.ImportFrom) -> None:
        for alias in node.names:
            full = ".".join([*base, alias.name])
            names.add(full if known(full) or not base else ".".join(base))

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(here[: len(here) - (node.level - 1)]) + (node.module.split(".") if node.module else [])
                add(base, node)
            elif node.module and node.module.split(".")[0] == package:
                add(node.module.split(".")[1:], node)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package and len(parts) > 1:
                    names.add(".".join(parts[1:]))
    return names


def graph(package: str) -> dict[str, set[str]]:
    """module -> the modules of ``package`` it imports, for every module of it (``host``, ``systems.extend``,
    ``signal.audio.loading``; a package's ``__init__`` is named as the package)."""
    folder = ROOT / package
    imports = {}
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name:
            imports[name] = sibling_imports(path, package) - {name}
    return imports


def kind(module: str) -> str:
    """The folder a module of pipelines/ sits in (``systems``, ``models``, ``signal``, ``schema``), or the
    module itself at the top (``studio``, ``host``)."""
    return module.split(".")[0]


# Known arrows from the model machinery up to a system, each with its reason:
MACHINERY_EXCEPTIONS = {
    # MusicGen-melody's bundle carries the melody system's chroma parameters, read from the repo's config
    ("models.loaders", "systems.melody"),
}


def test_the_folders_of_pipelines_are_its_four_kinds():
    """A newcomer sees the kinds from the tree: the facade and its host at the top, then the systems, the
    model machinery, signal code and the settings/results shape (docs/ARCHITECTURE.md)."""
    imports = graph("pipelines")
    assert {kind(m) for m in imports} == {"studio", "host", "systems", "models", "signal", "schema"}


def test_only_the_facade_imports_the_host_and_nothing_imports_the_facade():
    imports = graph("pipelines")
    assert {m for m, names in imports.items() if "studio" in names} == set()
    assert {m for m, names in imports.items() if "host" in names} == {"studio"}


def test_no_pipeline_module_imports_a_builder_of_models():
    """tiny and fullsize are found by the registry (models.registry.builder_for) for a built profile."""
    imports = graph("pipelines")
    builders = {"models.building.tiny", "models.building.fullsize"}
    users = {m for m, names in imports.items() if names & builders} - builders
    assert users == set()


def test_the_model_machinery_never_reaches_up_into_a_system():
    imports = graph("pipelines")
    arrows = {(m, n) for m, names in imports.items() if kind(m) == "models"
              for n in names if kind(n) in {"systems", "studio", "host"}}
    assert arrows - MACHINERY_EXCEPTIONS == set()
    # the registry resolves a role to the Hub, an override, a built folder or the originals' GitHub files
    assert imports["models.roles"] == set()
    assert imports["models.registry"] <= {"models.roles", "models.hub_reach", "models.originals"}


def test_signal_and_schema_code_use_no_model_machinery_and_no_system():
    """Signal code (audio, spectrograms, images, windows, metrics) and the settings/results shape run
    without models: they sit below everything that loads one."""
    imports = graph("pipelines")
    arrows = {(m, n) for m, names in imports.items() if kind(m) in {"signal", "schema"}
              for n in names if kind(n) in {"models", "systems", "studio", "host"}}
    assert arrows == set()


def test_the_history_store_sits_below_the_ui_wiring():
    """ui/history.py (the store) imports no other ui module: common records into it without a circle."""
    imports = graph("ui")
    assert imports["history"] == set()
    assert "history_tab" not in imports["common"]
    cycles = {(a, b) for a, names in imports.items() for b in names if a in imports.get(b, set())}
    assert cycles == set()


def test_the_package_check_sees_relative_and_absolute_imports(tmp_path):
    """Every import form names its module, a relative one resolved from the module's folder (here
    pipelines/systems/)."""
    module = tmp_path / "m.py"
    module.write_text("from . import extend\nfrom ..host import X\ndef f():\n"
                      "    from pipelines.models.building.tiny import ensure\n    import pipelines.models.building.fullsize\n"
                      "    from pipelines.models import roles\n    from pipelines.signal.audio.loading import load\n")
    assert sibling_imports(module, "pipelines", folder=("systems",)) == {
        "systems.extend", "host", "models.building.tiny", "models.building.fullsize", "models.roles",
        "signal.audio.loading"}


# -- the model libraries' lazy names ------------------------------------------------------------------------
def library_names(path: Path) -> dict[str, set[str]]:
    """The names ``path`` imports from the top of diffusers and of transformers (``from diffusers import X``)."""
    names: dict[str, set[str]] = {"diffusers": set(), "transformers": set()}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in names:
            names[node.module].update(alias.name for alias in node.names)
    return names


def test_every_lazy_library_name_the_pipelines_import_is_resolved_under_the_lock():
    """diffusers and transformers resolve top-level names lazily, not thread-safely: overlapping runs
    are safe only if every such name is resolved first by ``loaders.import_model_libraries``."""
    from pipelines.models import loaders
    from pipelines.systems.masked_img2img import SCHEDULERS

    used = {"diffusers": {name for name in SCHEDULERS.values() if name}, "transformers": set()}
    for path in (ROOT / "pipelines").rglob("*.py"):
        if "building" not in path.parts:  # the builders run once, before the app serves anyone
            for library, names in library_names(path).items():
                used[library] |= names
    assert used["diffusers"] - set(loaders.DIFFUSERS_NAMES) == set()
    assert used["transformers"] - set(loaders.TRANSFORMERS_NAMES) == set()


def test_the_library_name_check_sees_a_missing_name(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from diffusers import FluxPipeline\n    from transformers.x import Y\n")
    assert library_names(module) == {"diffusers": {"FluxPipeline"}, "transformers": set()}
