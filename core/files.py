"""Files written for a user get the permissions of every other file the studio writes.

A file made by ``open(path, "w")`` gets mode ``0o666`` less the process's umask (``0o644`` under the
usual ``022``). A writer that goes through a temporary file and a rename gets that temporary file's
``0o600`` instead: safetensors' ``save_file`` does (0.8 here; so do ``save_pretrained`` and diffusers'
``save_lora_weights``, which call it), and ``shutil.copy2`` carries the mode along. A trained style's
``style.safetensors`` was the one file of its folder that only the server's user could read.
:func:`readable` gives such files the usual mode; every writer of that kind calls it on what it wrote
(``tests/test_file_modes.py`` checks that each does).
"""

from __future__ import annotations

import os
import stat

_FALLBACK_UMASK = 0o022


def umask() -> int:
    """The process's umask, read without changing it (Linux's /proc; elsewhere the usual 022):
    ``os.umask`` can only be read by setting it, which would race with other threads creating files."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _FALLBACK_UMASK


def usual_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file in this process (0o644 under umask 022)."""
    return 0o666 & ~umask()


def readable(path: str | os.PathLike) -> None:
    """Give ``path`` (a file, or every regular file under a folder) the usual mode; links are left alone
    and a file that cannot be changed (removed meanwhile, another owner's) is skipped."""
    mode = usual_mode()
    paths = [path] if not os.path.isdir(path) else [
        os.path.join(directory, name) for directory, _, names in os.walk(path) for name in names]
    for file in paths:
        try:
            if stat.S_ISREG(os.lstat(file).st_mode):
                os.chmod(file, mode)
        except OSError:
            pass
