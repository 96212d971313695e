"""Every file written for a user is readable like the others (core/files.py): safetensors' writers leave
their temporary file's 0600, and shutil.copy2 carries it along."""

import ast
import os
import stat
from pathlib import Path

from core import files

ROOT = Path(__file__).resolve().parents[1]
# calls that write through a 0600 temporary file (safetensors, mkstemp) or copy a file's mode along
WRITERS = {"save_file", "save_pretrained", "save_lora_weights", "copy2", "mkstemp"}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def opened_mode(folder: Path) -> int:
    """The mode of a file made by open(): what every other output of the studio has."""
    plain = folder / "plain.txt"
    plain.write_text("x")
    return mode(plain)


def test_the_usual_mode_is_what_open_gives(tmp_path):
    assert files.usual_mode() == opened_mode(tmp_path)


def test_readable_fixes_a_0600_file_and_every_file_of_a_folder_but_not_links(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    inner = tmp_path / "a" / "b" / "w.safetensors"
    inner.write_bytes(b"x")
    os.chmod(inner, 0o600)
    target = tmp_path / "elsewhere"
    target.write_text("y")
    os.chmod(target, 0o600)
    (tmp_path / "a" / "link").symlink_to(target)
    files.readable(tmp_path / "a")
    assert mode(inner) == opened_mode(tmp_path)
    assert mode(target) == 0o600  # a link is not followed out of the folder


def test_a_saved_style_is_readable_like_its_json(tmp_path):
    from pipelines.models.style_embedding import STYLE_CONFIG_FILE, STYLE_WEIGHTS_FILE, StyleEmbedding, save_style

    folder = save_style(StyleEmbedding(), tmp_path / "style", "toy")
    assert mode(folder / STYLE_WEIGHTS_FILE) == mode(folder / STYLE_CONFIG_FILE) == opened_mode(tmp_path)


def test_installing_a_trained_model_gives_its_files_the_usual_mode(tmp_path):
    from pipelines.models.trained import STYLES, TrainedStore

    output = tmp_path / "output"
    output.mkdir()
    (output / "style.safetensors").write_bytes(b"\0" * 10)
    os.chmod(output / "style.safetensors", 0o600)  # what safetensors' save_file leaves
    store = TrainedStore(tmp_path / "trained", shared=False)
    target = store.destination("s", STYLES, "mine", tmp_path / "styles")
    store.install(output, ("style.safetensors",), target, "s")
    assert mode(target / "style.safetensors") == opened_mode(tmp_path)


def writers_called(path: Path) -> set[str]:
    """The calls of ``path`` that are writers above, plus ``readable`` if it calls it."""
    calls = {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
             for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)}
    return calls & (WRITERS | {"readable"})


def test_every_module_that_writes_through_a_private_temporary_file_makes_what_it_wrote_readable():
    # pipelines/, training/ and ui/; the model builders' cache (models/building) holds no user's file
    modules = {str(path.relative_to(ROOT)): writers_called(path)
               for path in sorted([*(ROOT / "pipelines").rglob("*.py"), *(ROOT / "training").rglob("*.py"),
                                   *(ROOT / "ui").rglob("*.py")])
               if "building" not in path.parts and writers_called(path) & WRITERS}
    assert {"pipelines/models/style_embedding.py", "pipelines/models/trained.py", "training/lora.py",
            "training/checkpoints.py", "training/amuse_vae.py", "training/amuse_unet.py", "ui/file_urls.py"} <= set(modules)
    assert [name for name, calls in modules.items() if "readable" not in calls] == []


def test_the_scan_sees_a_writer_and_its_fix(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f(s, p):\n    from safetensors.torch import save_file\n    save_file(s, p)\n")
    assert writers_called(module) == {"save_file"}
    module.write_text("import shutil\nfrom core import files\nshutil.copy2('a', 'b')\nfiles.readable('b')\n")
    assert writers_called(module) == {"copy2", "readable"}
