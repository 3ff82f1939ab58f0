"""Files other processes read while we write them: atomic replacement and content hashes.

A file written here is first written to a temporary file in the same directory, then renamed
over the target, so a reader (another worker, the API serving a download, a resumed build)
sees the old file or the whole new one, never half a file. Torch-free.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_TEMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20


@contextmanager
def atomic_path(path: Path | str, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path``; renamed onto ``path`` when the block succeeds.

    For writers that want a file name (``safetensors.torch.save_file``, ``torch.save``).
    ``suffix`` keeps the extension those writers may check. On error the temporary file goes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path | str, data: bytes | str) -> None:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically, creating its directory."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def file_sha256(path: Path | str) -> str:
    """SHA-256 hex digest of a file's bytes, read in chunks (block files, references, uploads)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
