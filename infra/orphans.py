"""Files an interrupted process left behind, removed when the API starts.

A process killed mid-way leaves what it was writing: an upload in ``uploads/``, a temporary
file of an atomic write (``.tmp-*``: blocks, references, exports, tables) next to its target,
or a dataset store being written (``datasets/.import-*``). None of them is ever read; each is
removed once it is older than ``max_age_s`` (files still being written are younger: their
writers touch them as they go).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("blockzoo.storage")

TEMP_FILE_PREFIX = ".tmp-"           # blockzoo.files.atomic_path
TEMP_STORE_PREFIX = ".import-"       # blockzoo.data.store, a store before its rename
_TEMP_ROOTS = ("zoos", "datasets", "latency_tables")


@dataclass
class Removed:
    uploads: int = 0
    temp_files: int = 0
    temp_stores: int = 0

    @property
    def total(self) -> int:
        return self.uploads + self.temp_files + self.temp_stores


def remove_orphans(root: Path, max_age_s: float, now: float | None = None) -> Removed:
    """Remove the leftovers under the data directory ``root`` older than ``max_age_s``."""
    cutoff = (time.time() if now is None else now) - max_age_s
    removed = Removed()

    def old(path: Path) -> bool:
        try:
            return path.lstat().st_mtime < cutoff
        except FileNotFoundError:
            return False

    uploads = root / "uploads"
    if uploads.is_dir():
        for path in uploads.iterdir():
            if path.is_file() and old(path):
                path.unlink(missing_ok=True)
                removed.uploads += 1
    for top in _TEMP_ROOTS:
        for directory, subdirs, files in os.walk(root / top):
            here = Path(directory)
            for name in files:
                if name.startswith(TEMP_FILE_PREFIX) and old(here / name):
                    (here / name).unlink(missing_ok=True)
                    removed.temp_files += 1
            for name in list(subdirs):
                if name.startswith(TEMP_STORE_PREFIX) and old(here / name):
                    shutil.rmtree(here / name, ignore_errors=True)
                    subdirs.remove(name)
                    removed.temp_stores += 1
    if removed.total:
        log.info("removed files left by interrupted work: %d upload(s), %d temporary file(s), %d unfinished "
                 "dataset store(s)", removed.uploads, removed.temp_files, removed.temp_stores)
    return removed
