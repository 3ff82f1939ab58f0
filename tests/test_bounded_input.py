"""Uploads within the caps decode with bounded memory; uploads past them are refused before any
large allocation. Peak memory is measured in a fresh subprocess (its peak RSS), per format."""

from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from blockzoo.data import DatasetError, import_builtin, import_file

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
DECODED = 16 * MiB  # pixels of each "big" upload below
MARGIN = 32 * MiB   # interpreter, zip/gzip buffers, counting scratch

# Runs one import in a fresh interpreter and reports how far its peak RSS rose past what it had
# after its imports. VmHWM, not getrusage: after fork + exec, ru_maxrss starts at the parent's peak.
_MEASURE = """
import json, sys
import PIL.Image, numpy
from blockzoo.data import import_file

def peak_rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

before = peak_rss()
try:
    import_file(sys.argv[1], sys.argv[2], max_expanded_bytes=int(sys.argv[3]))
    outcome = "imported"
except ValueError as error:
    outcome = str(error)
print(json.dumps({"grew": peak_rss() - before, "outcome": outcome}))
"""


def measure_import(upload: Path, root: Path, cap: int = 8 << 30) -> tuple[int, str]:
    """(bytes the peak RSS grew by while importing `upload`, "imported" or the refusal)."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(upload), str(root), str(cap)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["grew"], report["outcome"]


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _pixels(count: int, height: int, width: int, channels: int | None = None) -> np.ndarray:
    shape = (count, height, width) if channels is None else (count, height, width, channels)
    images = np.zeros(shape, np.uint8)
    images[:, ::5, ::3] = (np.arange(count) % 251)[:, None, None, *(() if channels is None else (None,))]
    return images


def big_npz(path: Path, with_test: bool) -> Path:
    x = _pixels(DECODED // (28 * 28), 28, 28)
    y = np.arange(len(x)) % 10
    if with_test:
        cut = len(x) * 5 // 6
        np.savez_compressed(path, x=x[:cut], y=y[:cut], x_test=x[cut:], y_test=y[cut:])
    else:
        np.savez_compressed(path, x=x, y=y)
    return path


def big_idx(path: Path) -> Path:
    x = _pixels(DECODED // (28 * 28), 28, 28)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("train-images-idx3-ubyte.gz", gzip.compress(idx_bytes(x), 1))
        archive.writestr("train-labels-idx1-ubyte.gz", gzip.compress(idx_bytes((np.arange(len(x)) % 10).astype(np.uint8)), 1))
    return path


def big_cifar(path: Path) -> Path:
    per_batch = DECODED // 3072 // 5
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for batch in range(1, 6):
            records = np.zeros((per_batch, 3073), np.uint8)
            records[:, 0] = np.arange(per_batch) % 10
            records[:, 1::97] = batch
            data = records.tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/data_batch_{batch}.bin")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def big_imagefolder(path: Path) -> Path:
    from PIL import Image

    images = _pixels(DECODED // (64 * 64 * 3), 64, 64, 3)
    with zipfile.ZipFile(path, "w") as archive:
        for index, image in enumerate(images):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
            archive.writestr(f"class_{index % 4}/{index:05d}.png", buffer.getvalue())
    return path


BIG_UPLOADS = {"npz": lambda d: big_npz(d / "x.npz", False), "npz-with-test": lambda d: big_npz(d / "x.npz", True),
               "idx-gz": lambda d: big_idx(d / "idx.zip"), "cifar-10": lambda d: big_cifar(d / "c.tar.gz"),
               "imagefolder": lambda d: big_imagefolder(d / "images.zip")}


@pytest.mark.parametrize("kind", sorted(BIG_UPLOADS))
def test_upload_within_the_caps_peaks_under_twice_its_decoded_size(kind: str, tmp_path: Path) -> None:
    upload = BIG_UPLOADS[kind](tmp_path)
    assert upload.stat().st_size < DECODED // 4  # a small file that decodes to much more
    grew, outcome = measure_import(upload, tmp_path / "stores")
    assert outcome == "imported"
    assert grew <= 2 * DECODED + MARGIN, f"{kind}: peak memory grew by {grew / MiB:.0f} MiB for {DECODED / MiB:.0f} MiB"


def test_idx_header_past_the_cap_is_refused_before_allocating(tmp_path: Path) -> None:
    # 1.5 GiB of images declared by the header, a few bytes of gzip on disk, a 1 GiB cap.
    header = struct.pack(">IIII", 0x0803, 6 * 256 * 1024, 32, 32)
    upload = tmp_path / "bomb.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr("train-images-idx3-ubyte.gz", gzip.compress(header + bytes(1 << 20)))
        archive.writestr("train-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(np.zeros(4, np.uint8))))
    grew, outcome = measure_import(upload, tmp_path / "stores", cap=1 << 30)
    assert "train-images-idx3-ubyte.gz: the upload expands past max_expanded_bytes=1073741824" in outcome
    assert grew < 32 * MiB


def sparse_tar(path: Path, real_size: int) -> Path:
    """A PAX (GNU 1.0) sparse member: 1 KiB in the archive, `real_size` bytes once its holes fill."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        data = b"1\n0\n512\n".ljust(512, b"\0") + b"\x89PNG".ljust(512, b"\0")
        info = tarfile.TarInfo("cats/1.png")
        info.size = len(data)
        info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "cats/1.png",
                            "GNU.sparse.realsize": str(real_size)}
        archive.addfile(info, io.BytesIO(data))
    return path


def test_sparse_tar_member_under_the_cap_is_refused_at_once(tmp_path: Path) -> None:
    grew, outcome = measure_import(sparse_tar(tmp_path / "sparse.tar", 3 << 30), tmp_path / "stores")
    assert "'cats/1.png' is a sparse file" in outcome and "regular files" in outcome
    assert grew < 32 * MiB


def test_label_past_int64_is_refused_not_wrapped(tmp_path: Path) -> None:
    upload = tmp_path / "labels.npz"
    y = np.array([0, 1, 2**64 - 1, 1], dtype=np.uint64)
    np.savez(upload, x=np.zeros((4, 4, 4), np.uint8), y=y)
    with pytest.raises(DatasetError, match=r"label 18446744073709551615 at position 2 is too large"):
        import_file(upload, tmp_path / "stores")


@pytest.mark.parametrize("options, seed, fragment", [
    ({"num_images": 1_000_000, "image_size": 512}, 0, "bytes of pixels; accepted are at most"),
    ({}, -1, "seed=-1 is invalid"),
    ({}, 2**64, "accepted is an integer from 0 to 4294967295"),
])
def test_builtin_synthetic_refuses_sizes_and_seeds_out_of_range(options: dict, seed: int, fragment: str,
                                                                 tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=fragment):
        import_builtin("synthetic", tmp_path, seed=seed, **options)


def test_synthetic_generated_in_chunks_equals_one_draw_of_it_all() -> None:
    from blockzoo.data import load_builtin

    # 800 RGB images of 64×64: three chunks. The reference below draws everything at once.
    count, size = 800, 64
    _, decoded = load_builtin("synthetic", 3, {"num_images": count, "image_size": size, "channels": 3})
    rng = np.random.default_rng(3)
    coarse = rng.uniform(0.0, 1.0, size=(10, 4, 4, 3))
    upsample = np.arange(size) * 4 // size
    prototypes = coarse[:, upsample][:, :, upsample]
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    shifts = rng.integers(-1, 2, size=(count, 2))
    rows = np.clip(np.arange(size)[None, :] + shifts[:, :1], 0, size - 1)
    cols = np.clip(np.arange(size)[None, :] + shifts[:, 1:], 0, size - 1)
    images = prototypes[labels[:, None, None], rows[:, :, None], cols[:, None, :]]
    contrast = rng.uniform(0.7, 1.0, size=(count, 1, 1, 1))
    images = images * contrast + rng.normal(0.0, 0.15, size=images.shape)
    expected = np.clip(np.round(images * 255), 0, 255).astype(np.uint8)
    assert np.array_equal(decoded.train.images, expected) and np.array_equal(decoded.train.labels, labels)
