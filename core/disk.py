"""Disk use, measured one way for every budget that needs it (upload temp folder, trained models)."""

from __future__ import annotations

import os


def folder_bytes(folder: str | os.PathLike) -> int:
    """Bytes of the regular files under ``folder``, recursively (0 when it does not exist). Links are
    counted as themselves (``lstat``), never followed; a file removed while walking is skipped."""
    total = 0
    for directory, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total
