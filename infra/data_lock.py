"""One embedded server per data folder: an exclusive ``flock`` on ``<data>/.lock``.

The server with the local job backend runs the folder's jobs in its own process and, when it
starts, resumes whatever jobs were left running. Two such servers on one folder would train
the same job twice; so the first takes the lock and writes who it is (pid, host, port) into
the file, and a second fails at once with a message naming the holder. The kernel drops the
lock when the holder exits, however it exits, so a crash never leaves a stale lock behind.

Within one process the lock is re-entrant (``blockzoo serve`` takes it before anything else;
the app's startup takes it again for servers started another way).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

LOCK_FILE = ".lock"

_guard = threading.Lock()
_held: dict[Path, tuple[int, int]] = {}  # resolved folder -> (file descriptor, holders in this process)


class DataFolderLocked(RuntimeError):
    """Another process serves this data folder."""

    def __init__(self, folder: Path, holder: dict[str, Any]) -> None:
        self.folder, self.holder = folder, holder
        super().__init__(f"the data folder {folder} is in use by {describe_holder(holder)}; stop that server, "
                         "or give this one another folder (--data-dir or BLOCKZOO_DATA_DIR)")


def describe_holder(holder: dict[str, Any]) -> str:
    if not holder.get("pid"):
        return "another BlockZoo server (it has not written its details yet)"
    where = f" on http://{holder['host']}:{holder['port']}" if holder.get("port") else ""
    started = f", started {holder['started_at']}" if holder.get("started_at") else ""
    return f"BlockZoo server pid {holder['pid']} (host {holder.get('hostname', '?')}){where}{started}"


def read_holder(folder: Path) -> dict[str, Any]:
    """What the lock file says about its holder ({} when absent or unreadable)."""
    try:
        data = json.loads((Path(folder) / LOCK_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def holder_of(folder: Path) -> dict[str, Any] | None:
    """The live holder of ``folder``'s lock, or None when no process holds it (non-blocking probe)."""
    folder = Path(folder).expanduser().resolve()
    with _guard:
        if folder in _held:
            return read_holder(folder)
    path = folder / LOCK_FILE
    if not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(folder)
    finally:
        os.close(fd)  # closing drops the probe's own shared lock
    return None


def acquire(folder: Path, *, host: str | None = None, port: int | None = None) -> None:
    """Take ``folder``'s lock for this process (re-entrant), or raise :class:`DataFolderLocked`."""
    folder = Path(folder).expanduser().resolve()
    with _guard:
        if folder in _held:
            fd, count = _held[folder]
            _held[folder] = (fd, count + 1)
            return
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataFolderLocked(folder, read_holder(folder)) from None
        info = {"pid": os.getpid(), "hostname": socket.gethostname(), "host": host, "port": port,
                "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data_dir": str(folder)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _held[folder] = (fd, 1)


def release(folder: Path) -> None:
    """Give back one hold of ``folder``'s lock; the last one unlocks it."""
    folder = Path(folder).expanduser().resolve()
    with _guard:
        if folder not in _held:
            return
        fd, count = _held[folder]
        if count > 1:
            _held[folder] = (fd, count - 1)
            return
        del _held[folder]
        # The file stays (removing it would let a third process lock a new inode while a
        # second still waits on the old one); its content is cleared with the lock.
        os.ftruncate(fd, 0)
        os.close(fd)
