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
