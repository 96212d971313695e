"""The notebooks run as written: executed with nbclient on the tiny profile, without their setup cells
(cloning and installing, tagged ``colab-setup``: this checkout and its venv stand in for them). The
training notebooks also leave out serving the app (``colab-serve``) and train two steps on toy data."""

import copy
import os
from pathlib import Path

import pytest

from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def runnable(path: Path):
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    notebook.cells = [cell for cell in notebook.cells if "colab-setup" not in cell.metadata.get("tags", [])]
    return notebook


@pytest.mark.slow
def test_the_colab_notebook_runs_on_the_tiny_profile_and_runs_again(monkeypatch):
    from nbclient import NotebookClient

    notebook = runnable(ROOT / "notebooks" / "colab.ipynb")
    parameters = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    assert 'PROFILE = "tiny"' in parameters.source and "REPO_URL = " in parameters.source
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    notebook.cells += copy.deepcopy(code)  # "Run all" a second time in the same kernel
    monkeypatch.setenv("GRADIO_SERVER_PORT", str(free_port()))  # the kernel inherits the test's environment
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    for run in (code[-1], notebook.cells[-1]):  # both runs showed the spectrogram and played the music
        kinds = {kind for output in run.outputs if output.output_type == "display_data" for kind in output.data}
        assert "image/png" in kinds and "text/html" in kinds, run.outputs
    printed = "".join(output.text for cell in notebook.cells if "app.start" in cell.source for output in cell.outputs
                      if output.output_type == "stream" and output.name == "stdout")
    assert printed.count("Serving Sound ↔ Picture Studio (profile tiny") == 2, printed


# -- the training notebooks: one per recipe ---------------------------------------------------------------

TRAINING_NOTEBOOKS = sorted((ROOT / "notebooks").glob("train_*.ipynb"))
SKIPPED_TAGS = {"colab-setup", "colab-serve"}  # clone/install, and serving the app: not in CI


def ci_overrides(work: Path) -> str:
    """The cell CI runs after the parameters cell: tiny models, toy data, two steps, all under ``work``."""
    return (f"PROFILE, MAKE_TOY_DATA, MAX_STEPS = 'tiny', True, 2\nWORK = {str(work)!r}\n"
            "for _name in ('DATA', 'STYLES', 'VAE', 'OUTPUT'):\n"
            "    if _name in globals():\n"
            "        globals()[_name] = f'{WORK}/{_name.lower()}'\n"
            "if 'STYLES' in globals():\n"
            "    OUTPUT = f'{STYLES}/toy'\n")


def test_every_recipe_has_a_notebook_and_it_is_current():
    import json
    import sys

    recipes = {"style", "lora", "amuse_vae", "amuse_unet", "riffusion_lora"}
    assert {p.stem.removeprefix("train_") for p in TRAINING_NOTEBOOKS} == recipes
    sys.path.insert(0, str(ROOT / "notebooks"))
    try:
        import make_training_notebooks as make
    finally:
        sys.path.pop(0)
    for name, spec in make.NOTEBOOKS.items():  # the committed files are what the generator writes
        notebook = make.notebook(**spec)
        assert json.loads((ROOT / "notebooks" / name).read_text()) == notebook, name
        for cell in notebook["cells"]:  # shell and magic lines only where CI skips the cell
            tags = set(cell["metadata"].get("tags", []))
            if cell["cell_type"] == "code" and not tags & SKIPPED_TAGS:
                assert not any(line.lstrip().startswith(("!", "%")) for line in cell["source"].splitlines()), name


@pytest.mark.slow
@pytest.mark.parametrize("path", TRAINING_NOTEBOOKS, ids=lambda p: p.stem)
def test_training_notebook_runs_on_the_tiny_profile(path, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    notebook.cells = [cell for cell in notebook.cells if not SKIPPED_TAGS & set(cell.metadata.get("tags", []))]
    where = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    notebook.cells.insert(where + 1, nbformat.v4.new_code_cell(ci_overrides(tmp_path)))
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.outputs if output.output_type == "stream")
    assert "s/step" in printed and "steps, first loss" in printed, printed[-2000:]
