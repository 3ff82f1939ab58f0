"""Upload readers: format detection and the NPZ, IDX, CIFAR binary and image-folder readers.

``read_upload`` turns an uploaded file into a decoded dataset (``blockzoo.data.decoded``), which
``blockzoo.data.import_file`` then writes as a store. The format is detected from the content;
``format=`` forces one of ``npz``, ``idx``, ``imagefolder``, ``cifar-10``, ``cifar-100``.
Archives may be .zip, .tar, .tar.gz/.tgz, .tar.bz2 or .tar.xz.

``npz`` — a NumPy ``.npz`` (``np.savez`` or ``np.savez_compressed``) with arrays
    ``x`` uint8 N×H×W or N×H×W×C (C = 1 or 3) and ``y`` integer N (or N×1);
    optionally ``x_test`` and ``y_test`` (both or neither) and ``class_names`` (strings, one per
    class; then labels must be 0..len(class_names)-1). Pickled (object) arrays are refused.
``idx`` — the MNIST family (MNIST, Fashion-MNIST, KMNIST, EMNIST). Images and labels are two
    files, so upload them packed in one archive: ``train-images-idx3-ubyte[.gz]`` and
    ``train-labels-idx1-ubyte[.gz]``, optionally ``t10k-images-idx3-ubyte[.gz]`` and
    ``t10k-labels-idx1-ubyte[.gz]``. Any name prefix works (``emnist-letters-train-…``), as do
    ``.`` or ``_`` instead of ``-`` (``train-images.idx3-ubyte``); a prefix containing ``t10k`` or
    ``test`` marks the test split. Images must be uint8 N×H×W (magic 0x00000803), labels uint8 N
    (magic 0x00000801); each file may be gzip-compressed or raw.
``imagefolder`` — a .zip or tar archive of PNG/JPEG images, one folder per class
    (``cats/001.png``), optionally below top-level ``train/`` and ``test/`` folders
    (``train/cats/001.png``, ``test/cats/900.png``). One enclosing folder around all of it is
    fine. Class names are the folder names, sorted. All images must have the same width and
    height (they are not resized). If every image is grey (L, LA, 1, I) the store is grey;
    otherwise every image is converted to RGB. Alpha is dropped.
``cifar-10`` — the CIFAR-10 *binary version* archive as distributed (``cifar-10-binary.tar.gz``):
    ``data_batch_1.bin`` … ``data_batch_5.bin``, ``test_batch.bin`` and, optionally,
    ``batches.meta.txt`` (class names, one per line). Records are 1 label byte + 3072 bytes.
``cifar-100`` — the CIFAR-100 binary version (``cifar-100-binary.tar.gz``): ``train.bin``,
    ``test.bin`` and, optionally, ``fine_label_names.txt``. Records are coarse label, fine label,
    3072 bytes; the 100 fine labels are used.

The CIFAR *python version* (pickle files) is refused: user data is never unpickled.

Readers keep the raw label values and the source's own test split, if any; turning labels into
class indices, the checks on classes and holding out a test split are the store's
(``blockzoo.data``).

Safety: archives are read in memory, never extracted; unsafe member names, links, device files,
encrypted members and anything expanding past ``max_expanded_bytes`` are refused (see
``blockzoo.data.archives``). Decoded pixels count against the same cap. Every refusal is a
``DatasetError`` (a ``ValueError``) that says what is wrong and what is accepted.
"""

from __future__ import annotations

import gzip
import io
import math
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal, NoReturn

import numpy as np

from .archives import (
    Archive,
    DatasetError,
    ExpansionBudget,
    at_end,
    open_archive,
    read_into,
    read_limited,
    sniff_archive,
)
from .decoded import Decoded, Labelled

__all__ = ["UPLOAD_FORMATS", "UploadFormat", "pair_idx", "parse_idx", "read_upload"]

UploadFormat = Literal["npz", "idx", "imagefolder", "cifar-10", "cifar-100"]
UPLOAD_FORMATS: tuple[str, ...] = ("npz", "idx", "imagefolder", "cifar-10", "cifar-100")

_ACCEPTED_UPLOADS = (
    "accepted are an .npz with x (uint8 N×H×W[×C]) and y (integers); an archive of IDX files "
    "(train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz], optional t10k-*); an archive "
    "of PNG/JPEG images with one folder per class; or the CIFAR-10/100 binary version (.tar.gz)"
)


# ---------------------------------------------------------------------------------------------
# Detection and refusals


def read_upload(path: Path, filename: str, format: str | None, max_expanded_bytes: int
                ) -> tuple[str, Decoded]:
    """Check and decode the upload at `path`: (its format, its decoded dataset).

    `filename` is the name the user gave the upload (used in messages); `format` forces a
    reader instead of detection; `max_expanded_bytes` caps what archives and pixels expand to.
    """
    if format is not None and format not in UPLOAD_FORMATS:
        raise DatasetError(f"unknown format {format!r}; accepted are {', '.join(UPLOAD_FORMATS)}")
    if not path.is_file():
        raise DatasetError(f"upload {filename!r} is not a file; accepted is a path to an uploaded file")
    if path.stat().st_size == 0:
        raise DatasetError(f"upload {filename!r} is empty; {_ACCEPTED_UPLOADS}")
    budget = ExpansionBudget(max_expanded_bytes)
    kind = sniff_archive(path)
    if kind is None:
        _refuse_single_file(path, filename)
    archive = open_archive(path, kind, budget)
    _refuse_pickles(archive)
    detected = format or _detect_format(archive, filename)
    decoded = _READERS[detected](archive)
    return detected, decoded


def _refuse_single_file(path: Path, filename: str) -> NoReturn:
    """A lone file is never a dataset; say what it looks like and how to upload it instead."""
    with open(path, "rb") as file:
        head = file.read(4096)
    if _looks_pickled(head):
        raise DatasetError(_pickle_message(filename))
    if head.startswith(b"\x93NUMPY"):
        raise DatasetError(
            f"{filename!r} is a single .npy array; accepted is an .npz holding x and y "
            "(np.savez('data.npz', x=images, y=labels))"
        )
    if head.startswith(b"\x1f\x8b"):
        try:
            # Only the first bytes matter, and `head` may be a cut-off prefix of the stream.
            head = zlib.decompressobj(wbits=31).decompress(head, 64)
        except zlib.error:
            head = b""
    if len(head) >= 4 and head[:2] == b"\x00\x00" and head[2] == 0x08 and head[3] in (1, 3):
        raise DatasetError(
            f"{filename!r} is a single IDX file; an IDX dataset needs images and labels, so upload "
            "one .zip or .tar.gz holding train-images-idx3-ubyte[.gz] and "
            "train-labels-idx1-ubyte[.gz] (optionally t10k-images/t10k-labels too)"
        )
    raise DatasetError(f"{filename!r} is not a recognised dataset file; {_ACCEPTED_UPLOADS}")


def _looks_pickled(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _pickle_message(what: str) -> str:
    return (
        f"{what} is a Python pickle (such as the CIFAR 'python version'); pickles are never loaded "
        "because they can run code. Accepted instead: the CIFAR-10/100 binary version "
        "(cifar-10-binary.tar.gz with data_batch_*.bin, or cifar-100-binary.tar.gz with train.bin), "
        "or an .npz of plain arrays"
    )


_IDX_NAME = re.compile(
    r"^(?P<prefix>.*?)[-_.]?(?P<kind>images|labels)[-_.]idx(?P<ndim>[13])[-_.]ubyte(?:\.gz)?$",
    re.IGNORECASE,
)
_CIFAR10_TRAIN = re.compile(r"^data_batch_(\d+)\.bin$")
_CIFAR_PICKLE_DIRS = {"cifar-10-batches-py", "cifar-100-python"}
_CIFAR_PICKLE_FILES = re.compile(r"^(data_batch_\d+|test_batch|batches\.meta)$|\.(pkl|pickle|p)$")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def _refuse_pickles(archive: Archive) -> None:
    for name in archive.names:
        if _CIFAR_PICKLE_DIRS & set(name.split("/")) or _CIFAR_PICKLE_FILES.search(PurePosixPath(name).name):
            raise DatasetError(_pickle_message(f"archive member {name!r}"))


def _detect_format(archive: Archive, filename: str) -> str:
    basenames = [PurePosixPath(name).name for name in archive.names]
    if any(name.endswith(".npy") and "/" not in name for name in archive.names):
        return "npz"
    if any(_CIFAR10_TRAIN.match(base) or base == "test_batch.bin" for base in basenames):
        return "cifar-10"
    if "train.bin" in basenames or "test.bin" in basenames:
        return "cifar-100"
    if any(_IDX_NAME.match(base) for base in basenames):
        return "idx"
    if any(PurePosixPath(base).suffix.lower() in _IMAGE_SUFFIXES for base in basenames):
        return "imagefolder"
    if not archive.names:
        raise DatasetError(f"the archive {filename!r} holds no files; {_ACCEPTED_UPLOADS}")
    raise DatasetError(
        f"could not recognise a dataset in {filename!r} (first member {archive.names[0]!r}); "
        f"{_ACCEPTED_UPLOADS}"
    )


# --- NPZ


def _read_npz(archive: Archive) -> Decoded:
    keys = {"x", "y", "x_test", "y_test", "class_names"}
    present = {name[:-4] for name in archive.names if name.endswith(".npy")} & keys
    if not {"x", "y"} <= present:
        raise DatasetError(
            "the .npz lacks " + " and ".join(sorted({"x", "y"} - present)) + "; accepted is an .npz "
            "with x (uint8 N×H×W or N×H×W×C) and y (integer labels, length N), optionally x_test, "
            "y_test and class_names"
        )
    if ("x_test" in present) != ("y_test" in present):
        raise DatasetError("the .npz has only one of x_test and y_test; accepted is both or neither")
    arrays = {
        name[:-4]: read_npy(stream, name, archive.sizes[name], archive.budget)
        for name, stream in archive.streams(lambda name: name.endswith(".npy") and name[:-4] in present)
    }
    train = _npz_split(arrays["x"], arrays["y"], "x", "y")
    test = _npz_split(arrays["x_test"], arrays["y_test"], "x_test", "y_test") if "x_test" in arrays else None
    if test is not None and test.images.shape[1:] != train.images.shape[1:]:
        raise DatasetError(
            f"x_test images are {_shape_text(test.images.shape[1:])} but x images are "
            f"{_shape_text(train.images.shape[1:])}; accepted are test images of the training size"
        )
    class_names = None
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DatasetError(
                f"class_names has dtype {names.dtype} and shape {names.shape}; accepted is a 1-D array "
                "of strings, one per class (np.array(['cat', 'dog']))"
            )
        class_names = [
            item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)
            for item in names.tolist()
        ]
    return Decoded(train, test, class_names)


def read_npy(stream: BinaryIO, member: str, size: int, budget: ExpansionBudget) -> np.ndarray:
    """Read a .npy member without pickle: its header first, then its data into one allocation.

    The header's shape and dtype give the decoded size, which must match the member's declared
    `size` and fit the budget before anything is allocated.
    """
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as error:
        raise DatasetError(
            f"{member} is not a readable .npy array ({error}); accepted are arrays written by "
            "np.savez / np.savez_compressed"
        ) from None
    if dtype.hasobject:
        raise DatasetError(
            f"{member} holds Python objects, which need pickle and are never loaded; accepted are "
            "plain numeric arrays (uint8 images, integer labels) and string class names"
        )
    count = math.prod(shape)
    offset = stream.position  # type: ignore[attr-defined]
    needed = count * dtype.itemsize
    if size - offset != needed:
        problem = "is truncated" if size - offset < needed else "has extra bytes"
        raise DatasetError(
            f"{member} {problem}: its header declares {shape} {dtype} ({needed} bytes) but "
            f"{size - offset} bytes follow; accepted are complete arrays written by np.savez"
        )
    budget.check_room(needed, member)
    array = np.empty(count, dtype=dtype)
    if read_into(stream, array) != needed or not at_end(stream):
        raise DatasetError(
            f"{member} is truncated: its header declares {shape} {dtype} ({needed} bytes) but fewer "
            "follow; accepted are complete arrays written by np.savez"
        )
    return array.reshape(shape, order="F" if fortran_order else "C")


def _npz_split(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str) -> Labelled:
    if x.dtype != np.uint8:
        raise DatasetError(
            f"{x_name} has dtype {x.dtype}; accepted are uint8 images with values 0–255 "
            f"(convert with {x_name}.astype(np.uint8) after scaling)"
        )
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim != 4 or x.shape[-1] not in (1, 3):
        hint = ""
        if x.ndim == 4 and x.shape[1] in (1, 3):
            hint = f" (channels-first? use {x_name}.transpose(0, 2, 3, 1))"
        raise DatasetError(
            f"{x_name} has shape {x.shape}; accepted are N×H×W or N×H×W×C with C = 1 or 3{hint}"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # Keras-style N×1 labels
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise DatasetError(
            f"{y_name} has dtype {y.dtype} and shape {y.shape}; accepted are integer labels of shape N"
        )
    if len(x) != len(y):
        raise DatasetError(
            f"{x_name} has {len(x)} images but {y_name} has {len(y)} labels; accepted is one label per image"
        )
    return Labelled(np.ascontiguousarray(x), y)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(size) for size in shape)


# --- IDX


def _read_idx(archive: Archive) -> Decoded:
    groups: dict[str, dict[str, str]] = {}
    for name in archive.names:
        match = _IDX_NAME.match(PurePosixPath(name).name)
        if match:
            prefix = str(PurePosixPath(name).parent / match["prefix"])
            groups.setdefault(prefix, {})[match["kind"].lower()] = name
    if not groups:
        raise DatasetError(
            "no IDX files found; accepted is an archive holding train-images-idx3-ubyte[.gz] and "
            "train-labels-idx1-ubyte[.gz], optionally t10k-images-idx3-ubyte[.gz] and "
            "t10k-labels-idx1-ubyte[.gz]"
        )
    for prefix, files in groups.items():
        if set(files) != {"images", "labels"}:
            have = next(iter(files.values()))
            lacking = "labels" if "images" in files else "images"
            raise DatasetError(
                f"{have!r} has no matching {lacking} file; accepted are pairs such as "
                "train-images-idx3-ubyte.gz + train-labels-idx1-ubyte.gz"
            )
    by_split: dict[str, list[str]] = {"train": [], "test": []}
    for prefix in groups:
        is_test = re.search(r"t10k|test", PurePosixPath(prefix).name, re.IGNORECASE)
        by_split["test" if is_test else "train"].append(prefix)
    for split, prefixes in by_split.items():
        if len(prefixes) > 1:
            raise DatasetError(
                f"several {split} IDX pairs ({', '.join(sorted(prefixes))}); accepted is one train pair "
                "and at most one test (t10k) pair per archive"
            )
    if not by_split["train"]:
        raise DatasetError(
            "only a test (t10k) IDX pair was found; accepted is a train pair "
            "(train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz]), with or without a test pair"
        )
    wanted = {name: kind for files in groups.values() for kind, name in files.items()}
    arrays = {
        name: read_idx(stream, name, wanted[name], archive.sizes[name], archive.budget)
        for name, stream in archive.streams(lambda name: name in wanted)
    }
    splits: dict[str, Labelled] = {}
    for split, prefixes in by_split.items():
        if prefixes:
            files = groups[prefixes[0]]
            splits[split] = pair_idx(arrays[files["images"]], arrays[files["labels"]],
                                     files["images"], files["labels"])
    return Decoded(splits["train"], splits.get("test"), None)


_IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
_IDX_EXPECTED = {"images": "uint8 images N×H×W", "labels": "uint8 labels N"}


def parse_idx(data: bytes, member: str, kind: str, budget: ExpansionBudget) -> np.ndarray:
    """Parse one IDX file held in memory (gzip-compressed or raw): see `read_idx`."""
    return read_idx(io.BytesIO(data), member, kind, len(data), budget)


def read_idx(stream: BinaryIO, member: str, kind: str, size: int, budget: ExpansionBudget) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw, `size` bytes as stored): uint8 images N×H×W or
    uint8 labels N. The header's shape is checked against the budget before the data is allocated."""
    buffered = io.BufferedReader(stream)  # type: ignore[arg-type]
    compressed = buffered.peek(2)[:2] == b"\x1f\x8b"
    source: BinaryIO = gzip.GzipFile(fileobj=buffered, mode="rb") if compressed else buffered  # type: ignore[assignment]
    try:
        return _read_idx_data(source, member, kind, None if compressed else size, budget)
    except (EOFError, OSError, zlib.error) as error:
        if not compressed:
            raise
        raise DatasetError(
            f"{member}: truncated or corrupt gzip data ({error}); accepted are complete .gz files"
        ) from None


def _read_idx_data(source: BinaryIO, member: str, kind: str, size: int | None,
                   budget: ExpansionBudget) -> np.ndarray:
    """`size`: bytes stored (raw members, already charged as read); None: inflated from gzip."""
    expected = _IDX_MAGIC[kind]
    article = "an" if kind == "images" else "a"
    accepted = f"accepted is magic 0x{expected:08x} ({_IDX_EXPECTED[kind]}) for {article} {kind} file"
    head = source.read(4)
    if len(head) < 4:
        raise DatasetError(f"{member} is truncated ({len(head)} bytes, no IDX header); {accepted}")
    magic = struct.unpack(">I", head)[0]
    if magic != expected:
        raise DatasetError(f"{member} has wrong IDX magic 0x{magic:08x}; {accepted}")
    ndim = head[3]
    dims = source.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DatasetError(f"{member} is truncated inside its IDX header; {accepted}")
    shape = struct.unpack(f">{ndim}I", dims)
    needed = math.prod(shape)

    def mismatch(following: int | str, problem: str) -> DatasetError:
        return DatasetError(
            f"{member} {problem}: its header declares {_shape_text(shape)} = {needed} bytes but "
            f"{following} follow; accepted are complete IDX files ({_IDX_EXPECTED[kind]})"
        )

    if size is not None:
        following = size - 4 - 4 * ndim
        if following != needed:
            raise mismatch(following, "is truncated" if following < needed else "has extra bytes")
        budget.check_room(needed, member)
    else:
        budget.take(needed, member)  # inflated data: charged here, before it is allocated
    array = np.empty(shape, dtype=np.uint8)
    filled = read_into(source, array)
    if filled < needed:
        raise mismatch(filled, "is truncated")
    if not at_end(source):
        raise mismatch("more", "has extra bytes")
    return array


def pair_idx(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str) -> Labelled:
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_name} has {len(images)} images but {labels_name} has {len(labels)} labels; "
            "accepted are images and labels files of the same split, one label per image"
        )
    return Labelled(images[..., None], labels)


# --- CIFAR binary


@dataclass(frozen=True)
class _CifarLayout:
    format: str
    label_byte: int  # position of the label used in each record
    record_bytes: int
    num_classes: int
    names_file: str


_CIFAR = {
    "cifar-10": _CifarLayout("cifar-10", 0, 1 + 3072, 10, "batches.meta.txt"),
    "cifar-100": _CifarLayout("cifar-100", 1, 2 + 3072, 100, "fine_label_names.txt"),
}


def _read_cifar(archive: Archive, layout: _CifarLayout) -> Decoded:
    by_base: dict[str, str] = {}
    for name in archive.names:
        base = PurePosixPath(name).name
        if base in by_base:
            raise DatasetError(
                f"{base} appears twice ({by_base[base]!r} and {name!r}); accepted is one "
                f"{layout.format} binary dataset per archive"
            )
        by_base[base] = name
    if layout.format == "cifar-10":
        train_bases = sorted((base for base in by_base if _CIFAR10_TRAIN.match(base)),
                             key=lambda base: int(_CIFAR10_TRAIN.match(base)[1]))  # type: ignore[index]
        test_base = "test_batch.bin"
        accepted = "data_batch_1.bin … data_batch_5.bin and test_batch.bin (+ batches.meta.txt)"
    else:
        train_bases = ["train.bin"] if "train.bin" in by_base else []
        test_base = "test.bin"
        accepted = "train.bin and test.bin (+ fine_label_names.txt)"
    if not train_bases:
        raise DatasetError(
            f"no training batches found for {layout.format}; accepted is the binary version with {accepted}"
        )
    for base in [*train_bases, test_base]:
        if base in by_base:
            _check_cifar_size(archive.sizes[by_base[base]], base, layout)
    # Each split is allocated once, from the members' declared sizes, and read into record by
    # record: the decoded dataset is held once, never beside a copy of the raw bytes.
    train = _cifar_split([by_base[base] for base in train_bases], archive, layout)
    test = _cifar_split([by_base[test_base]], archive, layout) if test_base in by_base else None
    slots = {name: (split, offset) for split in (train, test) if split is not None
             for name, offset in split.offsets.items()}
    names_text = b""
    wanted = {*slots, by_base.get(layout.names_file)}
    for name, stream in archive.streams(lambda name: name in wanted):
        if name in slots:
            split, offset = slots[name]
            _read_cifar_records(stream, name, split.labelled, offset, layout)
        else:
            names_text = bytes(read_limited(stream, None, f"archive member {name!r}"))
    class_names = [str(label) for label in range(layout.num_classes)]
    if layout.names_file in by_base:
        text = names_text.decode("utf-8", errors="replace")
        listed = [line.strip() for line in text.splitlines() if line.strip()]
        if len(listed) != layout.num_classes:
            raise DatasetError(
                f"{layout.names_file} lists {len(listed)} class names; accepted are exactly "
                f"{layout.num_classes}, one per line"
            )
        class_names = listed
    return Decoded(train.labelled, test.labelled if test else None, class_names)


def _check_cifar_size(size: int, member: str, layout: _CifarLayout) -> None:
    label_bytes = layout.record_bytes - 3072
    if not size or size % layout.record_bytes:
        raise DatasetError(
            f"{member} has {size} bytes, not a whole number of {layout.record_bytes}-byte "
            f"records ({label_bytes} label byte{'s' if label_bytes > 1 else ''} + 3072 pixel bytes): "
            "it is truncated or not "
            f"{layout.format} binary; accepted are the files of the {layout.format} binary version"
        )


@dataclass
class _CifarSplit:
    labelled: Labelled
    offsets: dict[str, int]  # member -> its first record's position in the split


def _cifar_split(members: list[str], archive: Archive, layout: _CifarLayout) -> _CifarSplit:
    offsets, total = {}, 0
    for name in members:
        offsets[name] = total
        total += archive.sizes[name] // layout.record_bytes
    archive.budget.check_room(total * 3072, f"{layout.format} images")
    images = np.empty((total, 32, 32, 3), dtype=np.uint8)
    return _CifarSplit(Labelled(images, np.empty(total, dtype=np.uint8)), offsets)


_CIFAR_RECORDS_PER_READ = 1024


def _read_cifar_records(stream: BinaryIO, member: str, split: Labelled, offset: int,
                        layout: _CifarLayout) -> None:
    """Read a member's records into `split` from `offset` on, a block of records at a time."""
    label_bytes = layout.record_bytes - 3072
    count = stream.size // layout.record_bytes  # type: ignore[attr-defined]
    block = np.empty((_CIFAR_RECORDS_PER_READ, layout.record_bytes), dtype=np.uint8)
    for start in range(0, count, _CIFAR_RECORDS_PER_READ):
        records = block[:min(_CIFAR_RECORDS_PER_READ, count - start)]
        if read_into(stream, records) != records.nbytes:
            raise DatasetError(
                f"{member} ends before its declared {count} records; it is truncated; accepted are "
                f"the files of the {layout.format} binary version"
            )
        # Pixels are stored as three 32×32 planes (R, G, B); the store wants H×W×C.
        target = slice(offset + start, offset + start + len(records))
        split.images[target] = records[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        split.labels[target] = records[:, layout.label_byte]


# --- ImageFolder


def _read_imagefolder(archive: Archive) -> Decoded:
    from PIL import Image

    for name in archive.names:
        if PurePosixPath(name).suffix.lower() not in _IMAGE_SUFFIXES:
            raise DatasetError(
                f"archive member {name!r} is not a PNG or JPEG image; accepted in an image-folder "
                "archive are .png, .jpg and .jpeg files in class folders (class/image.png or "
                "train|test/class/image.png)"
            )
    placement = _imagefolder_placement(archive.names)
    # Two passes, so that the pixels are held once: the first reads only the image headers
    # (size, mode) and charges the decoded size; the second decodes each image into its slot.
    expected_size: tuple[int, int] | None = None
    first_name = ""
    grey: dict[str, bool] = {}
    with _image_errors() as current:
        for name, data in archive.read(lambda name: True):
            current[0] = name
            with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as image:
                if expected_size is None:
                    expected_size, first_name = image.size, name
                elif image.size != expected_size:
                    raise DatasetError(
                        f"image {name!r} is {image.size[0]}×{image.size[1]} (width×height) but the "
                        f"first image, {first_name!r}, is {expected_size[0]}×{expected_size[1]}; "
                        "accepted are images that all share one size (resize them before uploading)"
                    )
                # Charge the decoded pixels before decoding them: a tiny PNG can hold a huge image.
                archive.budget.take(image.size[0] * image.size[1] * 3, f"image {name!r}")
                grey[name] = image.mode in ("1", "L", "LA", "I", "I;16", "F")
    if expected_size is None:
        raise DatasetError(f"the archive holds no images; {_ACCEPTED_UPLOADS}")
    any_colour = not all(grey.values())
    class_names = sorted({class_name for _, class_name in placement.values()})
    class_index = {class_name: index for index, class_name in enumerate(class_names)}
    width, height = expected_size
    channels = 3 if any_colour else 1
    splits: dict[str, Labelled] = {}
    slots: dict[str, tuple[np.ndarray, int]] = {}
    for split in ("train", "test"):
        # Sorted member names make the store independent of the order inside the archive.
        names = sorted(name for name, (member_split, _) in placement.items() if member_split == split)
        if not names:
            continue
        images = np.empty((len(names), height, width, channels), dtype=np.uint8)
        labels = np.array([class_index[placement[name][1]] for name in names], dtype=np.int64)
        splits[split] = Labelled(images, labels)
        slots.update((name, (images, index)) for index, name in enumerate(names))
    if "train" not in splits:
        raise DatasetError(
            "the archive has a test/ folder but no train/ folder; accepted are class folders, "
            "optionally below train/ and test/"
        )
    with _image_errors() as current:
        for name, data in archive.reread().read(lambda name: True):
            current[0] = name
            with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as image:
                pixels = np.asarray(image.convert("L" if grey[name] else "RGB"))
            images, index = slots[name]
            images[index] = pixels[..., None] if pixels.ndim == 2 else pixels  # grey repeats into RGB
    return Decoded(splits["train"], splits.get("test"), class_names)


@contextmanager
def _image_errors() -> Iterator[list[str]]:
    """Turn a decoding error of the image being read (its name set in the yielded list) into a
    DatasetError that names it."""
    from PIL import Image, UnidentifiedImageError

    current = [""]
    try:
        yield current
    except DatasetError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = "not PNG or JPEG data" if isinstance(error, UnidentifiedImageError) else str(error)
        raise DatasetError(
            f"image {current[0]!r} could not be decoded ({reason}); accepted are valid PNG and JPEG files"
        ) from None


def _imagefolder_placement(names: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """Map each member to its (split, class folder); the split is "train" without train/ test/."""
    parts = {name: name.split("/") for name in names}

    def is_split_folder(part: str) -> bool:
        return part.lower() in ("train", "test")

    # Drop enclosing folders shared by every member (a zipped "my-dataset/" directory).
    depth = 0
    while (
        all(len(path) - depth >= 3 for path in parts.values())
        and len({path[depth] for path in parts.values()}) == 1
        and not is_split_folder(next(iter(parts.values()))[depth])
    ):
        depth += 1
    placement = {}
    with_split = any(len(path) - depth == 3 and is_split_folder(path[depth]) for path in parts.values())
    for name, path in parts.items():
        relative = path[depth:]
        if with_split and len(relative) == 3 and is_split_folder(relative[0]):
            placement[name] = (relative[0].lower(), relative[1])
        elif not with_split and len(relative) == 2:
            placement[name] = ("train", relative[0])
        else:
            raise DatasetError(
                f"image {name!r} is not where an image folder expects it; accepted are "
                "class/image.png for every image, or train/class/image.png and test/class/image.png "
                "for every image"
            )
    return placement


_READERS: dict[str, Callable[[Archive], Decoded]] = {
    "npz": _read_npz,
    "idx": _read_idx,
    "imagefolder": _read_imagefolder,
    "cifar-10": lambda archive: _read_cifar(archive, _CIFAR["cifar-10"]),
    "cifar-100": lambda archive: _read_cifar(archive, _CIFAR["cifar-100"]),
}
