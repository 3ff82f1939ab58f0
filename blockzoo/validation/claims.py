"""Claims on trainings: while a process trains one, no other process or thread starts it.

A claim is a file, ``<key>.claim`` beside the training's checkpoint, locked with ``flock`` for as
long as its holder trains. Several workers (threads, processes, containers sharing a volume)
can then share one list of trainings, and a killed worker's training is free again at once.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Optional


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_HOST = socket.gethostname()


class Claim:
    """An exclusive claim on one training: ``<key>.claim``, locked (``flock``) while it trains.

    The kernel drops the lock when its process dies, however it dies, so a killed worker's
    training is free again at once; locks of separate opens conflict between threads of one
    process too, and between containers sharing a volume. The file says who holds it
    (``"<pid> <host>"``); a file that names a live process of this host without being locked is a
    claim of an older version of this code (which wrote the bare pid and locked nothing) and is
    respected too.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def take(cls, path: Path) -> Optional["Claim"]:
        for _ in range(5):
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None  # a live worker trains this one
            try:
                current = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if not current:  # released and removed while we were locking: claim the new file
                os.close(fd)
                continue
            holder = _unlocked_holder(os.read(fd, 256).decode(errors="replace"))
            if holder is not None and holder != os.getpid() and _pid_alive(holder):
                os.close(fd)
                return None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {_HOST}".encode(), 0)
            return cls(path, fd)
        return None

    def release(self) -> None:
        try:
            self.path.unlink(missing_ok=True)  # while still locked: nobody claims a file being removed
        finally:
            os.close(self.fd)


def _unlocked_holder(text: str) -> Optional[int]:
    """The pid a claim file names when only its pid can tell whether it is live: a bare pid
    (older claims) or a pid of this host. None for claims of other hosts (their lock decides)."""
    parts = text.split()
    if not parts or not parts[0].isdigit():
        return None
    if len(parts) > 1 and parts[1] != _HOST:
        return None
    return int(parts[0])
