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
def sibling_imports(path: Path, package: str) -> set[str]:
    """The modules of ``package`` that ``path`` (a module of it) imports, at any depth of the file:
    ``from . import x``, ``from .x import y``, ``from package.x import y``, ``import package.x``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                names.add(node.module.split(".")[0])
            elif node.level == 1:
                names.update(alias.name for alias in node.names)
            elif node.level == 0 and node.module and node.module.split(".")[0] == package:
                parts = node.module.split(".")
                names.update([parts[1]] if len(parts) > 1 else [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package and len(parts) > 1:
                    names.add(parts[1])
    return names


def graph(package: str) -> dict[str, set[str]]:
    """module -> the sibling modules it imports, for every top-level module of ``package``."""
    folder = ROOT / package
    modules = {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}
    return {path.stem: sibling_imports(path, package) & modules - {path.stem} for path in sorted(folder.glob("*.py"))}


PIPELINE_SYSTEMS = {"masked_img2img", "differential_img2img", "style_interpolation", "music_to_image", "image_to_music",
                    "song_recommendation", "playlist_to_music", "text_to_music", "prompt_interpolation", "extend",
                    "variations", "train_style"}
MODEL_MACHINERY = {"roles", "models", "loaders", "device", "hub_reach", "model_building", "tiny", "fullsize",
                   "fullsize_specs", "playlist_vae", "lora", "originals", "musicti_checkpoint", "unet_compile"}
# Known arrows from the machinery up to a system, each with its reason (the next session removes them):
MACHINERY_EXCEPTIONS = {
    # import_model_libraries imports these once under its lock: their module-level diffusers imports
    # are not thread-safe on first use
    ("loaders", "differential_img2img"), ("loaders", "playlist_to_music"), ("loaders", "style_interpolation"),
    # the TechJam LoRA loader lives in music_to_image until that file's LoRA fusing work lands
    ("lora", "music_to_image"),
}


def test_only_the_facade_imports_the_host_and_nothing_imports_the_facade():
    imports = graph("pipelines")
    assert {m for m, names in imports.items() if "studio" in names} == set()
    assert {m for m, names in imports.items() if "host" in names} == {"studio"}


def test_no_pipeline_module_imports_a_builder_of_models():
    """tiny and fullsize are found by the registry (models.builder_for) for a built profile."""
    imports = graph("pipelines")
    users = {m for m, names in imports.items() if names & {"tiny", "fullsize"}} - {"tiny", "fullsize"}
    assert users == set()


def test_the_model_machinery_never_reaches_up_into_a_system():
    imports = graph("pipelines")
    arrows = {(m, n) for m in MODEL_MACHINERY for n in imports.get(m, set()) & (PIPELINE_SYSTEMS | {"studio", "host"})}
    assert arrows - MACHINERY_EXCEPTIONS == set()
    # the registry resolves a role to the Hub, an override, a built folder or the originals' GitHub files
    assert imports["roles"] == set() and imports["models"] <= {"roles", "hub_reach", "originals"}


def test_the_history_store_sits_below_the_ui_wiring():
    """ui/history.py (the store) imports no other ui module: common records into it without a circle."""
    imports = graph("ui")
    assert imports["history"] == set()
    assert "history_tab" not in imports["common"]
    cycles = {(a, b) for a, names in imports.items() for b in names if a in imports.get(b, set())}
    assert cycles == set()


def test_the_package_check_sees_relative_and_absolute_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from . import studio\nfrom .host import X\ndef f():\n    from pipelines.tiny import ensure\n"
                      "    import pipelines.fullsize\n    from pipelines import roles\n")
    assert sibling_imports(module, "pipelines") == {"studio", "host", "tiny", "fullsize", "roles"}
