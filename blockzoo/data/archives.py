"""Safe, size-capped reading of uploaded archives (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz).

An upload is untrusted. This module never extracts anything to disk: it validates every member
first and then hands the bytes of the wanted members to the caller, in memory.

Refused, each with a `DatasetError` that says what is wrong and what is accepted:

- member names that are absolute (`/etc/x`, `C:/x`), climb out (`../x`), contain a backslash or
  a NUL byte, or appear twice;
- members that are not regular files or directories: symbolic links, hard links, device files,
  FIFOs, sockets;
- encrypted zip members;
- sparse tar members (GNU or PAX sparse: their holes expand without passing through the stream);
- archives whose members declare more than `max_expanded_bytes` in total (checked before any
  member is read), and archives that produce more than that while being read (a zip member that
  expands past its declared size, a compressed tar stream that inflates past the cap);
- more than `MAX_ARCHIVE_MEMBERS` members;
- truncated or corrupt archives.

Operating-system clutter (`__MACOSX/`, `.DS_Store`, `._*` AppleDouble files, `Thumbs.db`,
`desktop.ini`) is validated like any member but then ignored.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

DEFAULT_MAX_EXPANDED_BYTES = 4 * 1024**3
MAX_ARCHIVE_MEMBERS = 1_000_000
_READ_CHUNK = 1 << 20

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_CLUTTER_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}

ACCEPTED_ARCHIVES = ".zip, .tar, .tar.gz/.tgz, .tar.bz2 or .tar.xz"


class DatasetError(ValueError):
    """A dataset or upload was refused; the message says what is wrong and what is accepted."""


class ExpansionBudget:
    """Counts every byte produced by decompression or decoding against one cap.

    One budget is shared by everything an import expands (archive members, gzip members,
    decoded pixels), so nesting compressions cannot multiply the cap.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_expanded_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.used = 0

    def take(self, num_bytes: int, what: str) -> None:
        self.check_room(num_bytes, what)
        self.used += num_bytes

    def check_room(self, num_bytes: int, what: str) -> None:
        """Refuse before allocating: `num_bytes` more would pass the cap."""
        if self.used + num_bytes > self.max_bytes:
            raise DatasetError(
                f"{what}: the upload expands past max_expanded_bytes={self.max_bytes} bytes; "
                "accepted are uploads whose unpacked content fits under that cap "
                "(ask for a larger cap, or upload a smaller dataset)"
            )


def _past_declared_size(what: str, limit: int) -> DatasetError:
    return DatasetError(
        f"{what}: expands past its declared size of {limit} bytes (corrupt or a "
        "decompression bomb); accepted are archives whose members match their declared sizes"
    )


def read_limited(
    stream: BinaryIO, budget: ExpansionBudget | None, what: str, limit: int | None = None
) -> bytearray:
    """Read `stream` to its end in chunks, charging `budget`; refuse more than `limit` bytes."""
    # One growing buffer, not a list of chunks joined at the end: the join would hold the data twice.
    data = bytearray()
    while True:
        chunk = stream.read(_READ_CHUNK)
        if not chunk:
            return data
        if limit is not None and len(data) + len(chunk) > limit:
            raise _past_declared_size(what, limit)
        if budget is not None:
            budget.take(len(chunk), what)
        data += chunk


def read_into(stream: BinaryIO, array: np.ndarray) -> int:
    """Fill `array`'s bytes from `stream`; returns how many bytes came (fewer: the stream ended)."""
    view = memoryview(array.reshape(-1).view(np.uint8))
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled:filled + _READ_CHUNK])  # type: ignore[attr-defined]
        if not count:
            break
        filled += count
    return filled


def at_end(stream: BinaryIO) -> bool:
    """True if `stream` has nothing left (one byte is read to find out)."""
    return not stream.read(1)


def normalise_member_name(raw_name: str) -> str:
    """Return the '/'-separated relative path of an archive member, refusing unsafe names."""
    accepted = "accepted are relative paths inside the archive, such as 'cats/001.png'"
    if "\x00" in raw_name:
        raise DatasetError(f"archive member {raw_name!r} has a NUL byte in its name; {accepted}")
    if "\\" in raw_name:
        raise DatasetError(
            f"archive member {raw_name!r} has a backslash in its name; {accepted} with '/' separators"
        )
    if raw_name.startswith("/") or (len(raw_name) >= 2 and raw_name[1] == ":" and raw_name[0].isalpha()):
        raise DatasetError(f"archive member {raw_name!r} has an absolute path; {accepted}")
    parts = [part for part in raw_name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise DatasetError(f"archive member {raw_name!r} climbs out of the archive with '..'; {accepted}")
    return "/".join(parts)


def is_clutter(name: str) -> bool:
    """Files that operating systems add to archives; they carry no data."""
    parts = name.split("/")
    return parts[0] == "__MACOSX" or parts[-1] in _CLUTTER_NAMES or parts[-1].startswith("._")


ArchiveKind = Literal["zip", "tar"]


def sniff_archive(path: Path) -> ArchiveKind | None:
    """Tell a zip or (optionally compressed) tar archive from other files by its first bytes."""
    with open(path, "rb") as file:
        head = file.read(6)
        if head.startswith(_ZIP_MAGICS):
            return "zip"
        file.seek(0)
        try:
            with _decompressed(file) as stream:
                block = stream.read(512)
        except (EOFError, OSError, lzma.LZMAError, zlib.error):
            return None
    return "tar" if len(block) >= 262 and block[257:262] == b"ustar" else None


@dataclass
class Archive:
    """A validated archive: `names` lists its regular files (clutter excluded), `sizes` their sizes."""

    path: Path
    kind: ArchiveKind
    names: tuple[str, ...]
    sizes: dict[str, int]
    budget: ExpansionBudget

    def read(self, wanted: Callable[[str], bool]) -> Iterator[tuple[str, bytearray]]:
        """Yield `(name, bytes)` of the members for which `wanted(name)` is true, in archive order."""
        for name, stream in self.streams(wanted):
            yield name, read_limited(stream, None, f"archive member {name!r}")

    def streams(self, wanted: Callable[[str], bool]) -> Iterator[tuple[str, BinaryIO]]:
        """Yield `(name, stream)` of the wanted members, in archive order, each read before the next.

        A stream yields at most the member's declared size (more is refused as corrupt) and is
        charged to the budget as it is read; readers that know a member's decoded size from its
        header allocate once and read into it.
        """
        if self.kind == "zip":
            yield from self._zip_streams(wanted)
        else:
            yield from self._tar_streams(wanted)

    def reread(self) -> Archive:
        """The same archive with a fresh budget of the same cap, for a second pass over members
        whose decoded size the first pass has already charged."""
        return Archive(self.path, self.kind, self.names, self.sizes, ExpansionBudget(self.budget.max_bytes))

    def _zip_streams(self, wanted: Callable[[str], bool]) -> Iterator[tuple[str, BinaryIO]]:
        with _archive_errors(self.path), zipfile.ZipFile(self.path) as archive:
            for info in archive.infolist():
                name = normalise_member_name(info.filename)
                if name not in self.sizes or not wanted(name):
                    continue
                with archive.open(info) as inner:
                    yield name, _MemberStream(inner, self.path, name, info.file_size, self.budget)

    def _tar_streams(self, wanted: Callable[[str], bool]) -> Iterator[tuple[str, BinaryIO]]:
        with _tar_stream(self.path, self.budget) as archive:
            for member in archive:
                if not member.isfile():
                    continue
                name = normalise_member_name(member.name)
                if name not in self.sizes or not wanted(name):
                    continue
                inner = archive.extractfile(member)
                assert inner is not None  # regular files always have a stream
                # The inflated tar stream is already charged to the budget, so the member is not.
                yield name, _MemberStream(inner, self.path, name, member.size, None)


def open_archive(path: Path, kind: ArchiveKind, budget: ExpansionBudget) -> Archive:
    """List and validate every member of an archive before anything is read from it."""
    members = _list_zip(path) if kind == "zip" else _list_tar(path, budget)
    sizes: dict[str, int] = {}
    seen: set[str] = set()
    declared_total = 0
    for name, size in members:
        if name in seen:
            raise DatasetError(
                f"archive member {name!r} appears twice; accepted are archives with unique member names"
            )
        seen.add(name)
        declared_total += size
        if declared_total > budget.max_bytes:
            raise DatasetError(
                f"archive members declare more than max_expanded_bytes={budget.max_bytes} bytes "
                f"(reached at {name!r}); accepted are archives whose unpacked content fits under that cap"
            )
        if not is_clutter(name):
            sizes[name] = size
    return Archive(path=path, kind=kind, names=tuple(sizes), sizes=sizes, budget=budget)


def _check_member_count(count: int) -> None:
    if count > MAX_ARCHIVE_MEMBERS:
        raise DatasetError(
            f"the archive has more than {MAX_ARCHIVE_MEMBERS} members; accepted are archives with at "
            f"most {MAX_ARCHIVE_MEMBERS} members"
        )


def _list_zip(path: Path) -> list[tuple[str, int]]:
    """Regular files of a zip as (name, declared size); directories are skipped, others refused."""
    members = []
    with _archive_errors(path), zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        _check_member_count(len(infos))
        for info in infos:
            name = normalise_member_name(info.filename)
            if info.flag_bits & 0x1:
                raise DatasetError(f"archive member {name!r} is encrypted; accepted are unencrypted archives")
            # Unix zips may keep the file type in the high 16 bits of external_attr; many writers
            # (np.savez among them) store permission bits only, which means a regular file.
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise DatasetError(_special_member_message(name, _describe_mode(mode)))
            if info.is_dir() or stat.S_ISDIR(mode):
                continue
            members.append((name, info.file_size))
    return members


def _list_tar(path: Path, budget: ExpansionBudget) -> list[tuple[str, int]]:
    """Regular files of a tar as (name, size); directories are skipped, links and devices refused."""
    members = []
    # A separate budget: listing inflates the stream once more, which must not count twice.
    listing_budget = ExpansionBudget(budget.max_bytes)
    with _tar_stream(path, listing_budget) as archive:
        for count, member in enumerate(archive, start=1):
            _check_member_count(count)
            name = normalise_member_name(member.name)
            if member.isdir():
                continue
            if member.issparse():
                # Holes are not in the stream, so they would expand past every byte counted.
                raise DatasetError(
                    f"archive member {name!r} is a sparse file; accepted are regular files "
                    "(create the archive without --sparse)"
                )
            if not member.isfile():
                raise DatasetError(_special_member_message(name, _describe_tar_type(member)))
            members.append((name, member.size))
    return members


def _special_member_message(name: str, what: str) -> str:
    return f"archive member {name!r} is a {what}; accepted are regular files and directories only"


def _describe_mode(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _describe_tar_type(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "FIFO"
    return "special file"


class _CappedStream(io.RawIOBase):
    """A read-only stream that charges everything it yields to a budget."""

    def __init__(self, inner: BinaryIO, budget: ExpansionBudget, what: str) -> None:
        self._inner = inner
        self._budget = budget
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        self._budget.take(len(data), self._what)
        buffer[: len(data)] = data
        return len(data)


class _MemberStream(io.RawIOBase):
    """One archive member as a stream: at most `size` bytes, charged to `budget` (if any) as read.

    Errors of the archive libraries raised while reading become a `DatasetError`, since they
    surface in the reader's code rather than where the member was opened.
    """

    def __init__(self, inner: BinaryIO, path: Path, name: str, size: int,
                 budget: ExpansionBudget | None) -> None:
        self._inner = inner
        self._path = path
        self._what = f"archive member {name!r}"
        self.size = size
        self.position = 0
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        # One byte past the declared size is asked for, so that a lie is seen, not cut off.
        wanted = min(len(buffer), self.size - self.position + 1)
        with _archive_errors(self._path):
            data = self._inner.read(wanted)
        if self.position + len(data) > self.size:
            raise _past_declared_size(self._what, self.size)
        if self._budget is not None:
            self._budget.take(len(data), self._what)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def _decompressed(file: BinaryIO) -> BinaryIO:
    """Wrap `file` in the decompressor its magic bytes call for; a plain tar is returned as is."""
    head = file.read(6)
    file.seek(0)
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=file, mode="rb")  # type: ignore[return-value]
    if head.startswith(_BZIP2_MAGIC):
        return bz2.BZ2File(file)  # type: ignore[return-value]
    if head.startswith(_XZ_MAGIC):
        return lzma.LZMAFile(file)  # type: ignore[return-value]
    return file


@contextmanager
def _tar_stream(path: Path, budget: ExpansionBudget) -> Iterator[tarfile.TarFile]:
    """Open a tar for one sequential pass (no seeking); the inflated stream is charged to `budget`."""
    with open(path, "rb") as file, _archive_errors(path):
        stream = _CappedStream(_decompressed(file), budget, f"tar archive {path.name!r}")
        with tarfile.open(fileobj=io.BufferedReader(stream), mode="r|") as archive:
            yield archive


_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError,
                   NotImplementedError, RuntimeError)


@contextmanager
def _archive_errors(path: Path) -> Iterator[None]:
    """Turn the exceptions of zipfile, tarfile and the decompressors into a DatasetError."""
    try:
        yield
    except DatasetError:
        raise
    except _ARCHIVE_ERRORS as error:
        raise DatasetError(
            f"the archive {path.name!r} is truncated or corrupt ({type(error).__name__}: {error}); "
            f"accepted are complete {ACCEPTED_ARCHIVES} files"
        ) from None
