"""Dataset layer: built-ins, every upload reader, the store, refusals, and the torch helpers.

Every upload here is a small real file built by the test with numpy, PIL, zipfile, tarfile,
gzip and struct; nothing of blockzoo is mocked.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blockzoo.data import (
    BUILTIN_DATASETS,
    FASHION_MNIST_DIR,
    DatasetError,
    DatasetInfo,
    augment,
    channel_stats,
    content_hash,
    import_builtin,
    import_file,
    open_store,
    shuffled_batches,
    to_tensor_split,
)

# ---------------------------------------------------------------------------------------------
# Builders of small, real upload files


def labelled_images(count: int = 30, classes: int = 3, height: int = 6, width: int = 5,
                    channels: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images N×H×W (or N×H×W×C) and labels cycling through every class."""
    shape = (count, height, width) if channels is None else (count, height, width, channels)
    images = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    return images, np.arange(count) % classes


def npz_bytes(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def png_bytes(array: np.ndarray, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format)
    return buffer.getvalue()


def cifar_bytes(images: np.ndarray, labels: np.ndarray, coarse: np.ndarray | None = None) -> bytes:
    """CIFAR binary records: [coarse label,] label, then the R, G and B 32×32 planes."""
    records = []
    for index, (image, label) in enumerate(zip(images, labels)):
        prefix = bytes([int(label)]) if coarse is None else bytes([int(coarse[index]), int(label)])
        records.append(prefix + image.transpose(2, 0, 1).tobytes())
    return b"".join(records)


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def write_tar_entries(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in entries:
            archive.addfile(info, None if data is None else io.BytesIO(data))
    return path


def tar_entry(name: str, type: bytes = tarfile.REGTYPE, data: bytes | None = None, **fields) -> tuple:
    info = tarfile.TarInfo(name)
    info.type = type
    if data is not None:
        info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def png_members(prefix: str = "", count: int = 4, size: tuple[int, int] = (5, 6)) -> dict[str, bytes]:
    """Grey PNGs in two class folders, cats and dogs."""
    rng = np.random.default_rng(1)
    return {
        f"{prefix}{'cats' if index % 2 else 'dogs'}/{index:03d}.png":
            png_bytes(rng.integers(0, 256, size=size, dtype=np.uint8))
        for index in range(count)
    }


def idx_members(train: int = 24, test: int = 12, classes: int = 3, gz: bool = True) -> dict[str, bytes]:
    def pack(array: np.ndarray) -> bytes:
        return gzip.compress(idx_bytes(array)) if gz else idx_bytes(array)

    suffix = ".gz" if gz else ""
    x, y = labelled_images(train + test, classes, 7, 7)
    return {
        f"train-images-idx3-ubyte{suffix}": pack(x[:train]),
        f"train-labels-idx1-ubyte{suffix}": pack(y[:train]),
        f"t10k-images-idx3-ubyte{suffix}": pack(x[train:]),
        f"t10k-labels-idx1-ubyte{suffix}": pack(y[train:]),
    }


# ---------------------------------------------------------------------------------------------
# Fixtures and checks


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "stores"


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    directory = tmp_path / "uploads"
    directory.mkdir()
    return directory


def listing(directory: Path) -> set[tuple[str, int]]:
    """Every path below `directory` with its size (directories count 0)."""
    return {
        (str(path.relative_to(directory)), path.stat().st_size if path.is_file() else 0)
        for path in directory.rglob("*")
    }


def assert_refused(upload: Path, root: Path, fragments: tuple[str, ...], **kwargs) -> str:
    """The import fails with a DatasetError whose message holds `fragments`, and leaves nothing."""
    workspace = root.parent
    before = listing(workspace)
    with pytest.raises(DatasetError) as caught:
        import_file(upload, root, **kwargs)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert listing(workspace) == before, "the refused import left files behind"
    assert not root.exists() or not any(root.iterdir())
    return message


def store_dirs(root: Path) -> list[str]:
    return sorted(path.name for path in root.iterdir())


# ---------------------------------------------------------------------------------------------
# Built-in datasets


def test_digits_is_1797_uint8_images_with_a_stratified_seeded_split(root: Path) -> None:
    info = import_builtin("digits", root, seed=0)
    store = open_store(info.path, verify=True)
    assert store.images.shape == (1797, 8, 8, 1) and store.images.dtype == np.uint8
    assert store.images.max() == 255 and store.images.min() == 0
    assert info.num_classes == 10 and info.class_names == tuple("0123456789")
    assert info.num_train + info.num_test == 1797 and 290 <= info.num_test <= 310
    test_counts = np.bincount(store.labels[store.is_test], minlength=10)
    assert test_counts.min() >= 28 and test_counts.max() <= 32  # about 1/6 of each class
    assert info.format == "builtin" and info.name == "digits"


def test_synthetic_is_deterministic_per_seed_and_shaped_by_its_options(root: Path) -> None:
    options = {"num_classes": 3, "num_images": 60, "image_size": 12, "channels": 3}
    first = import_builtin("synthetic", root, seed=5, **options)
    again = import_builtin("synthetic", root, seed=5, **options)
    other = import_builtin("synthetic", root, seed=6, **options)
    assert first == again and first.content_hash != other.content_hash
    assert first.image_shape == (12, 12, 3) and first.num_classes == 3
    assert first.num_train + first.num_test == 60
    assert store_dirs(root) == sorted([first.content_hash, other.content_hash])


def test_synthetic_is_learnable_by_a_nearest_centroid_classifier(root: Path) -> None:
    store = open_store(import_builtin("synthetic", root, seed=0).path)
    (train_x, train_y), (test_x, test_y) = store.train(), store.test()
    train_x = train_x.reshape(len(train_x), -1).astype(np.float32)
    test_x = test_x.reshape(len(test_x), -1).astype(np.float32)
    centroids = np.stack([train_x[train_y == label].mean(0) for label in range(store.num_classes)])
    distances = ((test_x[:, None, :] - centroids[None]) ** 2).sum(-1)
    assert (distances.argmin(1) == test_y).mean() > 0.9


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_keeps_the_official_test_split_and_a_stratified_train_limit(root: Path) -> None:
    info = import_builtin("fashion-mnist", root, seed=0, train_limit=500)
    store = open_store(info.path)
    assert info.num_train == 500 and info.num_test == 10_000 and info.image_shape == (28, 28, 1)
    assert np.bincount(store.labels[~store.is_test]).tolist() == [50] * 10
    assert info.class_names[0] == "T-shirt/top" and info.class_names[9] == "Ankle boot"
    assert import_builtin("fashion-mnist", root, seed=0, train_limit=500) == info


def test_fashion_mnist_absent_says_how_to_install_it(root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BLOCKZOO_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        import_builtin("fashion-mnist", root)
    assert not root.exists()


def test_unknown_builtins_and_options_are_refused_with_the_accepted_ones(root: Path) -> None:
    with pytest.raises(DatasetError, match="accepted are digits, fashion-mnist, synthetic"):
        import_builtin("mnist", root)
    with pytest.raises(DatasetError, match="accepted options: channels, image_size"):
        import_builtin("synthetic", root, colour=True)
    with pytest.raises(DatasetError, match="accepted are 1 and 3"):
        import_builtin("synthetic", root, channels=2)
    with pytest.raises(DatasetError, match="accepted are None or an integer from 10 to 60000"):
        import_builtin("fashion-mnist", root, train_limit=3)
    assert not root.exists()
    assert set(BUILTIN_DATASETS) == {"digits", "fashion-mnist", "synthetic"}


# ---------------------------------------------------------------------------------------------
# Upload readers


def test_npz_without_test_split_gets_a_seeded_stratified_split(root: Path, uploads: Path) -> None:
    x, y = labelled_images(60, classes=3)
    upload = uploads / "blob"
    upload.write_bytes(npz_bytes(x=x, y=y.astype(np.int16)))
    info = import_file(upload, root, filename="shapes.npz")
    store = open_store(info.path)
    assert (info.name, info.format, info.image_shape) == ("shapes", "npz", (6, 5, 1))
    assert info.num_test == 10 and np.bincount(store.labels[store.is_test]).tolist() == [4, 3, 3]
    assert np.array_equal(store.images[..., 0], x) and np.array_equal(store.labels, y)


def test_npz_with_test_split_class_names_and_rgb_keeps_them(root: Path, uploads: Path) -> None:
    x, y = labelled_images(20, classes=2, channels=3)
    xt, yt = labelled_images(6, classes=2, channels=3, seed=1)
    upload = uploads / "rgb.npz"
    upload.write_bytes(npz_bytes(compressed=True, x=x, y=y[:, None], x_test=xt, y_test=yt,
                                 class_names=np.array(["ant", "bee"])))
    info = import_file(upload, root)
    store = open_store(info.path)
    assert info.class_names == ("ant", "bee") and (info.num_train, info.num_test) == (20, 6)
    assert np.array_equal(store.images[store.is_test], xt)
    assert np.array_equal(store.labels[~store.is_test], y)


@pytest.mark.parametrize("mode", ["zip", "w:gz", "w:bz2", "w:xz", "w:"])
def test_idx_pairs_are_read_from_any_archive_kind_gz_or_raw(root: Path, uploads: Path, mode: str) -> None:
    members = idx_members(gz=mode != "w:")
    upload = uploads / "mnist"
    write_zip(upload, members) if mode == "zip" else write_tar(upload, members, mode)
    info = import_file(upload, root)
    store = open_store(info.path)
    x, y = labelled_images(36, 3, 7, 7)
    assert info.format == "idx" and (info.num_train, info.num_test) == (24, 12)
    assert np.array_equal(store.images[..., 0], x) and np.array_equal(store.labels, y)
    assert info.class_names == ("0", "1", "2")


def test_idx_labels_without_zero_become_classes_named_by_value(root: Path, uploads: Path) -> None:
    x, y = labelled_images(20, classes=2, height=4, width=4)
    members = {
        "emnist/emnist-letters-train-images.idx3-ubyte": idx_bytes(x),
        "emnist/emnist-letters-train-labels.idx1-ubyte": idx_bytes(y + 5),  # values 5 and 6
    }
    info = import_file(write_zip(uploads / "letters.zip", members), root)
    store = open_store(info.path)
    assert info.class_names == ("5", "6") and np.array_equal(store.labels, y)
    assert info.num_test > 0  # no t10k pair: a seeded split


def test_imagefolder_zip_with_enclosing_folder_is_grey_sorted_and_order_independent(
        root: Path, uploads: Path) -> None:
    members = png_members("my-pets/", count=6)
    members["__MACOSX/my-pets/._001.png"] = b"resource fork"  # clutter, ignored
    members["my-pets/.DS_Store"] = b"clutter"
    forward = import_file(write_zip(uploads / "pets.zip", members), root)
    backward = import_file(write_zip(uploads / "pets-reversed.zip", dict(reversed(members.items()))), root)
    assert forward.content_hash == backward.content_hash and store_dirs(root) == [forward.content_hash]
    store = open_store(forward.path)
    assert forward.class_names == ("cats", "dogs") and forward.image_shape == (5, 6, 1)
    assert forward.format == "imagefolder" and forward.name == "pets"
    expected = np.asarray(Image.open(io.BytesIO(members["my-pets/cats/001.png"])))
    assert np.array_equal(store.images[0, ..., 0], expected) and store.labels[0] == 0


def test_imagefolder_tar_with_train_test_and_mixed_modes_becomes_rgb(root: Path, uploads: Path) -> None:
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
    colour = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    members = {
        "train/cat/a.png": png_bytes(grey),
        "train/cat/b.jpg": png_bytes(colour, "JPEG"),
        "train/dog/c.png": png_bytes(colour),
        "train/dog/d.PNG": png_bytes(np.dstack([colour, np.full((8, 8), 255, np.uint8)])),  # RGBA
        "test/cat/e.png": png_bytes(grey),
        "test/dog/f.jpeg": png_bytes(grey, "JPEG"),
    }
    info = import_file(write_tar(uploads / "pets.tar.gz", members), root)
    store = open_store(info.path)
    assert info.image_shape == (8, 8, 3) and (info.num_train, info.num_test) == (4, 2)
    assert np.array_equal(store.images[0], np.repeat(grey[..., None], 3, axis=2))
    assert np.array_equal(store.images[2], colour) and np.array_equal(store.images[3], colour)
    assert store.labels.tolist() == [0, 0, 1, 1, 0, 1]


def test_cifar10_binary_keeps_pixel_order_class_names_and_split(root: Path, uploads: Path) -> None:
    x, y = labelled_images(24, classes=10, height=32, width=32, channels=3)
    names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"
    members = {
        "cifar-10-batches-bin/data_batch_2.bin": cifar_bytes(x[10:20], y[10:20]),
        "cifar-10-batches-bin/data_batch_1.bin": cifar_bytes(x[:10], y[:10]),
        "cifar-10-batches-bin/test_batch.bin": cifar_bytes(x[20:], y[20:]),
        "cifar-10-batches-bin/batches.meta.txt": names.encode(),
        "cifar-10-batches-bin/readme.html": b"<html></html>",
    }
    info = import_file(write_tar(uploads / "cifar-10-binary.tar.gz", members), root)
    store = open_store(info.path)
    assert info.format == "cifar-10" and (info.num_train, info.num_test) == (20, 4)
    assert info.class_names[0] == "airplane" and info.num_classes == 10
    assert np.array_equal(store.images, x) and np.array_equal(store.labels, y)


def test_cifar100_binary_uses_the_fine_labels(root: Path, uploads: Path) -> None:
    x, _ = labelled_images(6, height=32, width=32, channels=3)
    fine, coarse = np.array([0, 99, 5, 0, 99, 5]), np.array([19, 18, 17, 16, 15, 14])
    fine_train = np.arange(100)
    x_train = np.random.default_rng(3).integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)
    members = {
        "cifar-100-binary/train.bin": cifar_bytes(x_train, fine_train, coarse=fine_train // 5),
        "cifar-100-binary/test.bin": cifar_bytes(x, fine, coarse=coarse),
        "cifar-100-binary/fine_label_names.txt": "\n".join(f"fine{i}" for i in range(100)).encode(),
    }
    info = import_file(write_tar(uploads / "cifar-100-binary.tar.gz", members), root)
    store = open_store(info.path)
    assert info.format == "cifar-100" and info.num_classes == 100 and info.class_names[99] == "fine99"
    assert store.labels[store.is_test].tolist() == fine.tolist()
    assert np.array_equal(store.images[store.is_test], x)


def test_explicit_format_overrides_detection_and_is_checked(root: Path, uploads: Path) -> None:
    upload = write_zip(uploads / "pets.zip", png_members())
    assert import_file(upload, root, format="imagefolder").format == "imagefolder"
    assert_refused(upload, root / "other", ("no training batches found for cifar-10",), format="cifar-10")
    assert_refused(upload, root / "other", ("unknown format 'jpeg'", "npz, idx, imagefolder"), format="jpeg")


# ---------------------------------------------------------------------------------------------
# The store


def test_store_files_meta_and_hash_round_trip(root: Path, uploads: Path) -> None:
    x, y = labelled_images(30)
    upload = uploads / "d.npz"
    upload.write_bytes(npz_bytes(x=x, y=y))
    info = import_file(upload, root)
    assert info.path == root / info.content_hash
    assert sorted(os.listdir(info.path)) == ["images.npy", "is_test.npy", "labels.npy", "meta.json"]
    store = open_store(info.path, verify=True)
    assert store.images.dtype == np.uint8 and store.labels.dtype == np.int64 and store.is_test.dtype == bool
    assert not store.images.flags.writeable
    assert content_hash(store.images, store.labels, store.is_test, store.class_names) == info.content_hash
    for key in ("name", "format", "class_names", "image_shape", "num_train", "num_test", "num_classes",
                "content_hash", "source"):
        assert key in store.meta
    assert store.info == info and isinstance(info, DatasetInfo)
    train_x, train_y = store.train()
    assert len(train_x) == info.num_train and np.array_equal(train_y, store.labels[~store.is_test])


def test_importing_the_same_content_twice_returns_the_existing_store(root: Path, uploads: Path) -> None:
    x, y = labelled_images(30)
    plain, packed = uploads / "a.npz", uploads / "b.npz"
    plain.write_bytes(npz_bytes(x=x, y=y))
    packed.write_bytes(npz_bytes(compressed=True, x=x, y=y.astype(np.uint8)))
    first = import_file(plain, root)
    stamp = (first.path / "meta.json").stat().st_mtime_ns
    second = import_file(packed, root, name="renamed")
    assert (second.content_hash, second.path, second.name) == (first.content_hash, first.path, "renamed")
    assert (first.path / "meta.json").stat().st_mtime_ns == stamp  # the store is not rewritten
    assert open_store(first.path).meta["name"] == "a"
    assert store_dirs(root) == [first.content_hash]
    assert import_file(plain, root, seed=1).content_hash != first.content_hash  # another split


def test_a_failed_write_leaves_no_temporary_directory(root: Path, uploads: Path, tmp_path: Path) -> None:
    x, y = labelled_images(30)
    upload = uploads / "d.npz"
    upload.write_bytes(npz_bytes(x=x, y=y))
    digest = import_file(upload, tmp_path / "elsewhere").content_hash
    root.mkdir()
    (root / digest).write_text("a file where the store directory should go")
    with pytest.raises(OSError):
        import_file(upload, root)
    assert store_dirs(root) == [digest]


def test_open_store_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a readable dataset store"):
        open_store(tmp_path)


# ---------------------------------------------------------------------------------------------
# Refusals: message says what is wrong and what is accepted; nothing is left behind

Builder = Callable[[Path], Path]


def npz_upload(**arrays) -> Builder:
    def build(directory: Path) -> Path:
        path = directory / "upload.npz"
        path.write_bytes(npz_bytes(**arrays))
        return path
    return build


def zip_upload(members: dict[str, bytes]) -> Builder:
    return lambda directory: write_zip(directory / "upload.zip", members)


def tar_upload(members: dict[str, bytes]) -> Builder:
    return lambda directory: write_tar(directory / "upload.tar.gz", members)


def tar_entries_upload(*entries: tuple) -> Builder:
    return lambda directory: write_tar_entries(directory / "upload.tar.gz", list(entries))


def raw_upload(data: bytes) -> Builder:
    def build(directory: Path) -> Path:
        path = directory / "upload.bin"
        path.write_bytes(data)
        return path
    return build


def zip_symlink_upload(directory: Path) -> Path:
    path = directory / "upload.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in png_members().items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("cats/link.png")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return path


def zip_lying_about_size_upload(directory: Path) -> Path:
    """A member whose headers declare 10 bytes but whose data inflates to 200 000."""
    path = write_zip(directory / "upload.zip", {"x.npy": bytes(200_000), "y.npy": b"0"})
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, 10)
    struct.pack_into("<I", data, central + 24, 10)
    path.write_bytes(bytes(data))
    return path


def truncated(builder: Builder, keep: float) -> Builder:
    def build(directory: Path) -> Path:
        path = builder(directory)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
        return path
    return build


def npz_member(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz_with_object_array(directory: Path) -> Path:
    path = directory / "objects.npz"
    path.write_bytes(npz_bytes(x=_x, y=np.array([object()] * 12)))
    return path


def zip_with_duplicate(directory: Path) -> Path:
    path = directory / "dup.zip"
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "w") as archive:
        for name, data in png_members().items():
            archive.writestr(name, data)
        archive.writestr("cats/001.png", png_members()["cats/001.png"])
    return path


_x, _y = labelled_images(12, classes=3)
_idx = idx_members(gz=False)
_idx_gz = idx_members()
_cifar_x = np.zeros((2, 32, 32, 3), np.uint8)
_pickle = b"\x80\x04\x95" + bytes(64)
_cap = {"max_expanded_bytes": 1_000_000}
_big_png = png_bytes(np.zeros((2000, 2000), np.uint8))  # 12 MB decoded from a few kB

# name: (builder of the upload, fragments the message must hold, import_file options)
REFUSALS: dict[str, tuple[Builder, tuple[str, ...], dict]] = {
    # NPZ content
    "npz-count-mismatch": (
        npz_upload(x=_x, y=_y[:-1]), ("x has 12 images but y has 11 labels",), {}),
    "npz-negative-label": (
        npz_upload(x=_x, y=_y - 1), ("label -1", "negative", "accepted are integer labels ≥ 0"), {}),
    "npz-label-out-of-range": (
        npz_upload(x=_x, y=_y + 1, class_names=np.array(["a", "b", "c"])),
        ("label 3", "out of range", "accepted are labels 0..2"), {}),
    "npz-object-array": (
        npz_with_object_array, ("Python objects", "never loaded", "plain numeric"), {}),
    "npz-float-images": (
        npz_upload(x=_x.astype(np.float32), y=_y), ("x has dtype float32", "uint8"), {}),
    "npz-channels-first": (
        npz_upload(x=np.zeros((4, 3, 8, 8), np.uint8), y=np.arange(4) % 2),
        ("N×H×W×C", "transpose(0, 2, 3, 1)"), {}),
    "npz-missing-y": (
        npz_upload(x=_x), ("lacks y", "accepted is an .npz with x"), {}),
    "npz-empty": (
        npz_upload(x=np.zeros((0, 4, 4), np.uint8), y=np.zeros(0, np.int64)),
        ("no training images", "at least two classes"), {}),
    "npz-single-class": (
        npz_upload(x=_x, y=np.zeros(12, np.int64)), ("single class ('0')", "at least two classes"), {}),
    "npz-truncated-member": (
        lambda directory: write_zip(directory / "u.npz", {
            "x.npy": npz_member(_x)[:-7], "y.npy": npz_member(_y)}),
        ("x.npy is truncated", "complete arrays"), {}),
    # IDX
    "idx-truncated-raw": (
        zip_upload({**_idx, "train-images-idx3-ubyte": _idx["train-images-idx3-ubyte"][:-5]}),
        ("train-images-idx3-ubyte is truncated", "24×7×7", "complete IDX files"), {}),
    "idx-truncated-gzip": (
        zip_upload({**_idx_gz, "train-images-idx3-ubyte.gz": _idx_gz["train-images-idx3-ubyte.gz"][:40]}),
        ("truncated or corrupt gzip", "complete .gz"), {}),
    "idx-wrong-magic": (
        zip_upload({**_idx, "train-images-idx3-ubyte": _idx["train-labels-idx1-ubyte"]}),
        ("wrong IDX magic 0x00000801", "accepted is magic 0x00000803", "an images file"), {}),
    "idx-count-mismatch": (
        zip_upload({**_idx, "t10k-labels-idx1-ubyte": _idx["train-labels-idx1-ubyte"]}),
        ("has 12 images but", "has 24 labels"), {}),
    "idx-images-without-labels": (
        zip_upload({"train-images-idx3-ubyte": _idx["train-images-idx3-ubyte"]}),
        ("no matching labels file", "train-labels-idx1-ubyte"), {}),
    "idx-single-file": (
        raw_upload(gzip.compress(_idx["train-images-idx3-ubyte"])),
        ("single IDX file", "images and labels"), {}),
    # ImageFolder
    "imagefolder-non-image": (
        zip_upload({**png_members(), "cats/readme.txt": b"hi"}),
        ("'cats/readme.txt' is not a PNG or JPEG", ".png, .jpg and .jpeg"), {}),
    "imagefolder-size-mismatch": (
        zip_upload({**png_members(), "dogs/999.png": png_bytes(np.zeros((7, 5), np.uint8))}),
        ("'dogs/999.png' is 5×7", "first image, 'dogs/000.png', is 6×5", "share one size"), {}),
    "imagefolder-corrupt-png": (
        zip_upload({**png_members(), "dogs/999.png": b"\x89PNG\r\n\x1a\nnope"}),
        ("'dogs/999.png' could not be decoded (not PNG or JPEG data)", "valid PNG and JPEG"), {}),
    "imagefolder-loose-image": (
        zip_upload({**png_members(), "top.png": png_bytes(np.zeros((6, 5), np.uint8))}),
        ("'top.png' is not where", "class/image.png"), {}),
    "imagefolder-pixel-bomb": (
        zip_upload({"a/1.png": _big_png, "b/1.png": _big_png}), ("max_expanded_bytes=1000000",), _cap),
    # Archive safety
    "zip-path-traversal": (
        zip_upload({**png_members(), "../evil.png": b"x"}), ("climbs out", "relative paths"), {}),
    "zip-absolute-path": (
        zip_upload({**png_members(), "/etc/evil.png": b"x"}), ("absolute path",), {}),
    "zip-backslash": (
        zip_upload({**png_members(), "..\\evil.png": b"x"}), ("backslash",), {}),
    "zip-symlink": (
        zip_symlink_upload, ("'cats/link.png' is a symbolic link", "regular files"), {}),
    "zip-duplicate": (
        zip_with_duplicate, ("'cats/001.png' appears twice", "unique member names"), {}),
    "tar-path-traversal": (
        tar_upload({**png_members(), "cats/../../evil.png": b"x"}), ("climbs out",), {}),
    "tar-absolute-path": (
        tar_upload({**png_members(), "/tmp/evil.png": b"x"}), ("absolute path",), {}),
    "tar-symlink": (
        tar_entries_upload(tar_entry("cats/link.png", tarfile.SYMTYPE, linkname="/etc/passwd")),
        ("'cats/link.png' is a symbolic link", "regular files and directories only"), {}),
    "tar-hardlink": (
        tar_entries_upload(tar_entry("cats/link.png", tarfile.LNKTYPE, linkname="/etc/passwd")),
        ("is a hard link",), {}),
    "tar-device": (
        tar_entries_upload(tar_entry("cats/dev.png", tarfile.CHRTYPE, devmajor=1, devminor=3)),
        ("is a device file",), {}),
    "tar-fifo": (
        tar_entries_upload(tar_entry("cats/pipe.png", tarfile.FIFOTYPE)), ("is a FIFO",), {}),
    "zip-bomb-declared": (
        zip_upload({"a/1.png": bytes(3_000_000)}),
        ("declare more than max_expanded_bytes=1000000",), _cap),
    "tar-bomb-stream": (
        tar_upload({"a/1.png": bytes(3_000_000)}), ("max_expanded_bytes=1000000",), _cap),
    "gzip-bomb-inside-zip": (  # refused by its header, before 3 MB is inflated or allocated
        zip_upload({"train-images-idx3-ubyte.gz": gzip.compress(idx_bytes(np.zeros((3000, 1000, 1), np.uint8))),
                    "train-labels-idx1-ubyte.gz": gzip.compress(bytes(16))}),
        ("train-images-idx3-ubyte.gz: the upload expands past max_expanded_bytes=1000000",), _cap),
    "zip-member-lying-about-size": (
        zip_lying_about_size_upload, ("corrupt",), {}),
    "zip-truncated": (
        truncated(zip_upload(png_members()), 0.5), ("truncated or corrupt", ".zip"), {}),
    "tar-gz-truncated": (
        truncated(tar_upload(png_members(count=8)), 0.6), ("truncated or corrupt",), {}),
    # CIFAR
    "cifar-python-version": (
        tar_upload({"cifar-10-batches-py/data_batch_1": _pickle,
                    "cifar-10-batches-py/batches.meta": _pickle}),
        ("pickle", "never loaded", "binary version", "data_batch_*.bin"), {}),
    "raw-pickle": (
        raw_upload(_pickle), ("pickle", "cifar-10-binary.tar.gz"), {}),
    "cifar-truncated-batch": (
        tar_upload({"b/data_batch_1.bin": cifar_bytes(_cifar_x, [0, 1])[:-1],
                    "b/test_batch.bin": cifar_bytes(_cifar_x, [0, 1])}),
        ("data_batch_1.bin has 6145 bytes", "3073-byte records"), {}),
    "cifar-label-out-of-range": (
        tar_upload({"b/data_batch_1.bin": cifar_bytes(_cifar_x, [0, 10])}),
        ("label 10", "out of range", "0..9"), {}),
    # Not a dataset at all
    "unrecognised-file": (
        raw_upload(b"hello, this is text"), ("not a recognised dataset file", "accepted are"), {}),
    "empty-file": (
        raw_upload(b""), ("is empty",), {}),
    "archive-without-dataset": (
        zip_upload({"notes/readme.md": b"# hi"}), ("could not recognise a dataset",), {}),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_bad_upload_is_refused_with_reason_and_leaves_nothing(case: str, root: Path, uploads: Path) -> None:
    build, fragments, options = REFUSALS[case]
    assert_refused(build(uploads), root, fragments, **options)


def test_refusals_keep_existing_stores_intact(root: Path, uploads: Path) -> None:
    good = uploads / "good.npz"
    good.write_bytes(npz_bytes(x=_x, y=_y))
    info = import_file(good, root)
    bad = npz_upload(x=_x, y=_y[:-1])(uploads)
    with pytest.raises(DatasetError):
        import_file(bad, root)
    assert store_dirs(root) == [info.content_hash]
    open_store(info.path, verify=True)


# ---------------------------------------------------------------------------------------------
# Torch helpers


@pytest.fixture
def rgb_store(root: Path):
    info = import_builtin("synthetic", root, num_classes=4, num_images=200, image_size=10, channels=3)
    return open_store(info.path)


def test_to_tensor_split_normalises_with_training_statistics(rgb_store) -> None:
    import torch

    x, y = to_tensor_split(rgb_store, "train")
    assert x.shape == (rgb_store.info.num_train, 3, 10, 10) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and torch.equal(y, torch.from_numpy(rgb_store.labels[~rgb_store.is_test]))
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
    mean, std = channel_stats(rgb_store)
    test_x, test_y = to_tensor_split(rgb_store, "test", image_size=10)
    raw = torch.from_numpy(rgb_store.test()[0]).permute(0, 3, 1, 2).float() / 255
    expected = (raw - torch.from_numpy(mean).view(1, 3, 1, 1)) / torch.from_numpy(std).view(1, 3, 1, 1)
    assert torch.allclose(test_x, expected, atol=1e-5) and len(test_y) == rgb_store.info.num_test


def test_to_tensor_split_resizes_once_with_antialiasing(rgb_store, root: Path, uploads: Path) -> None:
    assert to_tensor_split(rgb_store, "all", image_size=5)[0].shape[1:] == (3, 5, 5)
    assert to_tensor_split(rgb_store, "all", image_size=16)[0].shape[1:] == (3, 16, 16)
    # A 0/255 checkerboard halved: antialiasing averages it to flat grey (the mean, so 0 after
    # normalisation) where plain bilinear sampling would keep picking black and white pixels.
    board = (np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)
    upload = uploads / "boards.npz"
    upload.write_bytes(npz_bytes(x=np.stack([board] * 12), y=np.arange(12) % 2))
    small, _ = to_tensor_split(open_store(import_file(upload, root).path), "all", image_size=4)
    assert small[:, :, 1:-1, 1:-1].abs().max() < 1e-5


def test_shuffled_batches_are_seeded_and_cover_every_item_once() -> None:
    import torch

    def batches(seed: int, **options) -> list[list[int]]:
        generator = torch.Generator().manual_seed(seed)
        return [batch.tolist() for batch in shuffled_batches(10, 4, generator, **options)]

    first = batches(0)
    assert first == batches(0) and first != batches(1)
    assert [len(batch) for batch in first] == [4, 4, 2]
    assert sorted(sum(first, [])) == list(range(10))
    assert [len(batch) for batch in batches(0, drop_last=True)] == [4, 4]


def test_augment_crops_within_the_padding_flips_and_is_seeded() -> None:
    import torch

    x = torch.arange(2 * 8 * 3 * 5 * 6, dtype=torch.float32).view(16, 3, 5, 6)
    assert torch.equal(augment(x, torch.Generator().manual_seed(0), pad=0, flip=False), x)
    first = augment(x, torch.Generator().manual_seed(3), pad=2)
    assert torch.equal(first, augment(x, torch.Generator().manual_seed(3), pad=2))
    assert not torch.equal(first, augment(x, torch.Generator().manual_seed(4), pad=2))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for sample, out in zip(padded, first):
        windows = [sample[:, top:top + 5, left:left + 6] for top in range(5) for left in range(5)]
        assert any(torch.equal(out, w) or torch.equal(out, w.flip(2)) for w in windows)
    flipped = augment(x, torch.Generator().manual_seed(0), pad=0)
    mirrored = [torch.equal(out, sample.flip(2)) for sample, out in zip(x, flipped)]
    assert all(torch.equal(out, sample) or m for sample, out, m in zip(x, flipped, mirrored))
    assert 0 < sum(mirrored) < len(x)
