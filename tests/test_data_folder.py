"""One embedded server per data folder, one default folder for every command, keys that say where they went."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from service_helpers import ROOT, LiveServer, free_port, service_env

from infra import data_lock
from infra.settings import Settings, default_data_dir

pytest_plugins = ["service_fixtures"]


def _cli(args: list[str], cwd: Path, timeout: float = 120, **settings: str) -> subprocess.CompletedProcess[str]:
    env = service_env(**settings)
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("data")
    with LiveServer(Settings(data_dir=data, job_backend="local", port=8123)) as live:
        yield live


def test_the_lock_is_exclusive_between_processes_and_reentrant_within_one(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    data_lock.acquire(folder, host="127.0.0.1", port=9)
    try:
        data_lock.acquire(folder)  # the same process again (serve, then its app's startup)
        data_lock.release(folder)
        probe = ("import sys; from infra import data_lock; "
                 "data_lock.acquire(sys.argv[1])")
        out = subprocess.run([sys.executable, "-c", probe, str(folder)], cwd=ROOT, env=service_env(),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and "DataFolderLocked" in out.stderr
        assert f"pid {os.getpid()}" in out.stderr and "http://127.0.0.1:9" in out.stderr
    finally:
        data_lock.release(folder)
    assert data_lock.holder_of(folder) is None  # released: the next server may take it


def test_a_second_server_on_the_same_folder_fails_fast_naming_the_first(server: LiveServer, tmp_path: Path) -> None:
    started = time.monotonic()
    out = _cli(["serve", "--port", str(free_port()), "--data-dir", str(server.settings.data_dir)], cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert time.monotonic() - started < 60
    message = out.stderr
    assert "blockzoo serve: error:" in message and str(server.settings.data_dir) in message
    assert f"BlockZoo server pid {os.getpid()}" in message and "http://127.0.0.1:8123" in message
    assert "Traceback" not in message
    with server.client(server.new_key()) as c:  # the first one still serves
        assert c.get("/v1/spaces").status_code == 200


def test_a_busy_port_fails_before_the_folder_is_touched(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        folder = tmp_path / "data"
        out = _cli(["serve", "--port", str(port), "--data-dir", str(folder)], cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    # Nothing started: no database, so no job of this folder was resumed, and the lock is free.
    assert not (folder / "blockzoo.db").exists()
    assert data_lock.holder_of(folder) is None


def test_every_command_finds_the_same_default_folder_from_any_directory(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("BLOCKZOO_DATA_DIR", raising=False)
    assert default_data_dir() == tmp_path / "xdg" / "blockzoo"
    for cwd in (tmp_path, ROOT):
        monkeypatch.chdir(cwd)
        assert Settings().data_dir == (tmp_path / "xdg" / "blockzoo").resolve()


def test_create_key_says_which_folder_and_database_and_which_server_takes_the_key(server: LiveServer,
                                                                                   tmp_path: Path) -> None:
    # Run elsewhere, into the live server's folder: the key works there, and the output says so.
    out = _cli(["create-key", "--data-dir", str(server.settings.data_dir)], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"in the data folder {server.settings.data_dir} (database sqlite:///" in out.stderr
    assert f"It works now on the server using this folder: BlockZoo server pid {os.getpid()}" in out.stderr
    key = out.stdout.strip().splitlines()[-1]
    with server.client(key) as c:
        assert c.get("/v1/spaces").status_code == 200
    assert not (tmp_path / "data").exists()  # nothing made in the working directory

    # The default folder, from another directory and with no server: it says where the key went.
    xdg = tmp_path / "xdg"
    env_home = {"XDG_DATA_HOME": str(xdg)}
    out = subprocess.run([sys.executable, "-m", "app.cli", "create-key"], cwd=tmp_path,
                         env={**service_env(), **env_home}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"in the data folder {xdg / 'blockzoo'} (database sqlite:///{xdg / 'blockzoo' / 'blockzoo.db'})" in out.stderr
    assert "No server is using this folder now; `blockzoo serve` will accept it." in out.stderr
    assert (xdg / "blockzoo" / "blockzoo.db").is_file() and not (tmp_path / "data").exists()
