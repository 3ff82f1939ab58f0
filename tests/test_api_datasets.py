"""Datasets over real HTTP: built-ins, streamed uploads, the reader's 400s, the 413 cap, isolation."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from service_helpers import LiveServer, assert_error

from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

MAX_UPLOAD = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("data")
    with LiveServer(Settings(data_dir=data, job_backend="local", max_upload_bytes=MAX_UPLOAD)) as live:
        yield live


@pytest.fixture(scope="module")
def key(server: LiveServer) -> str:
    return server.new_key()


def _npz(n: int = 60, size: int = 8, classes: int = 3) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x=rng.integers(0, 256, (n, size, size), dtype=np.uint8), y=np.arange(n) % classes)
    return buf.getvalue()


def _uploads_left(server: LiveServer) -> list[Path]:
    return list(server.runtime.storage.uploads_dir.iterdir())


def test_builtin_digits_import_list_get_delete(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        r = c.post("/v1/datasets/builtin", json={"name": "digits"})
        assert r.status_code == 201, r.text
        ds = r.json()
        assert (ds["source"], ds["num_classes"], ds["image_shape"]) == ("builtin", 10, [8, 8, 1])
        assert ds["num_train"] + ds["num_test"] == 1797 and len(ds["content_hash"]) == 64
        store = server.runtime.storage.datasets_dir / ds["content_hash"]
        assert store.is_dir()
        assert c.get(f"/v1/datasets/{ds['id']}").json() == ds
        assert ds["id"] in [d["id"] for d in c.get("/v1/datasets").json()["items"]]
        assert c.delete(f"/v1/datasets/{ds['id']}").status_code == 204
        assert_error(c.get(f"/v1/datasets/{ds['id']}"), 404, "not_found")
        assert not store.exists()


def test_builtin_catalogue_and_unknown_builtin(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        names = {d["name"] for d in c.get("/v1/datasets/builtin").json()}
        assert names >= {"digits", "fashion-mnist", "synthetic"}
        assert_error(c.post("/v1/datasets/builtin", json={"name": "imagenet"}), 400, "invalid_input",
                     "unknown built-in dataset", "digits")
        assert_error(c.post("/v1/datasets/builtin", json={"name": "digits", "options": {"size": 3}}),
                     400, "invalid_input", "unknown option")


def test_npz_upload_is_streamed_and_imported(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        r = c.post("/v1/datasets", files={"file": ("shapes.npz", _npz(), "application/octet-stream")},
                   data={"name": "my shapes"})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["source"], ds["format"], ds["name"], ds["num_classes"]) == ("upload", "npz", "my shapes", 3)
    assert ds["upload_bytes"] == len(_npz())
    assert _uploads_left(server) == []


def test_raw_octet_stream_upload(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        r = c.post("/v1/datasets", params={"filename": "raw.npz"}, content=_npz(classes=2),
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "raw" and r.json()["num_classes"] == 2


@pytest.mark.parametrize(("filename", "content", "fragment"), [
    ("junk.bin", b"\x00\x01definitely not a dataset" * 10, "accepted"),
    ("data_batch_1", b"\x80\x04\x95" + b"\x00" * 64, "pickle"),
    ("empty.npz", b"", "empty"),
])
def test_bad_upload_is_400_with_the_readers_message(server: LiveServer, key: str, filename: str,
                                                    content: bytes, fragment: str) -> None:
    with server.client(key) as c:
        r = c.post("/v1/datasets", files={"file": (filename, content)})
    err = assert_error(r, 400, "invalid_input", fragment)
    assert err["details"]["filename"] == filename
    assert _uploads_left(server) == []


def test_malformed_requests_are_400(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        assert_error(c.post("/v1/datasets", files={"other": ("a.txt", b"small")}), 400, "invalid_input",
                     "missing field 'file'", "'other'")
        assert_error(c.post("/v1/datasets", json={"file": "x"}), 400, "invalid_input", "multipart/form-data")
    assert _uploads_left(server) == []


def test_oversized_upload_is_413_by_content_length(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        r = c.post("/v1/datasets", files={"file": ("big.npz", b"\x00" * (MAX_UPLOAD * 3))})
    err = assert_error(r, 413, "payload_too_large", str(MAX_UPLOAD), "BLOCKZOO_MAX_UPLOAD_BYTES")
    assert err["details"]["max_upload_bytes"] == MAX_UPLOAD
    assert _uploads_left(server) == []


def test_oversized_chunked_upload_is_cut_off_at_the_cap(server: LiveServer, key: str) -> None:
    boundary = "bzboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.npz\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()

    def body() -> Iterator[bytes]:  # no Content-Length: the cap must hold while streaming
        yield head
        for _ in range(8):
            yield b"\x00" * (MAX_UPLOAD // 4)
        yield f"\r\n--{boundary}--\r\n".encode()

    with server.client(key) as c:
        r = c.post("/v1/datasets", content=body(),
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert_error(r, 413, "payload_too_large")
    assert _uploads_left(server) == []


def test_datasets_are_invisible_to_other_owners(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        ds = c.post("/v1/datasets/builtin", json={"name": "synthetic", "options": {"num_images": 200}}).json()
    with server.client(server.new_key("intruder")) as other:
        assert_error(other.get(f"/v1/datasets/{ds['id']}"), 404, "not_found")
        assert_error(other.delete(f"/v1/datasets/{ds['id']}"), 404, "not_found")
        assert other.get("/v1/datasets").json()["total"] == 0
    with server.client(key) as c:
        assert c.get(f"/v1/datasets/{ds['id']}").status_code == 200


def test_upload_needs_a_key_before_any_byte_is_stored(server: LiveServer) -> None:
    with server.client() as c:
        assert_error(c.post("/v1/datasets", files={"file": ("a.npz", _npz())}), 401, "unauthorized")
    assert _uploads_left(server) == []
