"""The notebooks run as written: executed with nbclient on the tiny profile, without their setup cells
(cloning and installing, tagged ``colab-setup``: this checkout and its venv stand in for them)."""

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
