"""The ``blockzoo`` command: the core's commands plus ``serve``, ``create-key``, ``worker``, ``demo``.

The core (``blockzoo/cli.py``) owns the parser and its ML commands; this module adds the
service commands to it, so one ``blockzoo`` entry point covers both.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from infra.settings import Settings


def _base_parser() -> tuple[argparse.ArgumentParser, Any]:
    try:
        from blockzoo.cli import build_parser
    except ModuleNotFoundError as exc:
        if exc.name != "blockzoo.cli":
            raise
        parser = argparse.ArgumentParser(prog="blockzoo", description="BlockZoo: on-demand architecture scoring.")
        return parser, parser.add_subparsers(dest="command", metavar="COMMAND")
    return build_parser()


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k in ("host", "port", "data_dir") if (v := getattr(args, k, None)) is not None}
    return Settings(**overrides)


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="data directory (default: $BLOCKZOO_DATA_DIR, else ~/.local/share/blockzoo)")


def _fail(command: str, message: str) -> int:
    print(f"blockzoo {command}: error: {message}", file=sys.stderr)
    return 2


def _listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything else starts (so a busy port fails first)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _older_data_folder_note(settings: Settings) -> str | None:
    """Earlier versions kept their data in ./data: say so when that folder is not the one in use."""
    old = Path("data").resolve()
    if (old / "blockzoo.db").is_file() and old != settings.data_dir:
        return (f"note: {old} holds the data of an earlier BlockZoo run; serve it with "
                f"`blockzoo serve --data-dir {old}` (or BLOCKZOO_DATA_DIR)")
    return None


def _database_text(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


def cmd_serve(args: argparse.Namespace) -> int:
    from infra import data_lock

    settings = _settings(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin chatter is not news
    # Fail fast, before touching the database: another embedded server on this folder (it
    # would run the same jobs), then a port another process listens on. The app starts, and
    # resumes the jobs a previous server left, only once both are ours.
    if settings.job_backend == "local":
        try:
            data_lock.acquire(settings.data_dir, host=settings.host, port=settings.port)
        except data_lock.DataFolderLocked as exc:
            return _fail("serve", str(exc))
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as exc:
        return _fail("serve", f"cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc}); "
                              "is another server using the port? choose another with --port")

    import uvicorn

    from app.main import create_app
    from app.services import auth
    from infra.runtime import Runtime

    runtime = Runtime(settings)
    try:
        if settings.auto_migrate:
            runtime.migrate()
        if settings.embedded:
            with runtime.session_factory.begin() as session:
                new = None if auth.has_any_key(session) else auth.create_owner_with_key(session, runtime.secret_key)
            if new is not None:  # shown once it is committed, so it works
                print("First start: created an API key (shown once; keep it):")
                print(f"  {new.plaintext}")
    finally:
        runtime.close()
    base = f"http://{settings.host}:{settings.port}"
    print(f"BlockZoo API on {base}  (dashboard: {base}/ui/; docs: {base}/docs; data: {settings.data_dir}; "
          f"database: {'sqlite' if settings.is_sqlite else 'external'}; jobs: {settings.job_backend}; "
          f"torch threads per job: {settings.job_threads()})", flush=True)
    note = _older_data_folder_note(settings)
    if note:
        print(note, flush=True)
    app = create_app(settings.model_copy(update={"auto_migrate": False}))
    # Open job event streams (GET /v1/jobs/{id}/events) would hold a graceful shutdown for up to
    # their lifetime; after a few seconds they are closed (clients reconnect or fall back).
    config = uvicorn.Config(app, log_level=settings.log_level, timeout_graceful_shutdown=5,
                            server_header=False)  # no "Server: uvicorn" (docs/reliability.md)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def cmd_create_key(args: argparse.Namespace) -> int:
    from app.services import auth
    from infra.runtime import Runtime

    settings = _settings(args)
    runtime = Runtime(settings)
    try:
        if settings.auto_migrate:
            runtime.migrate()
        with runtime.session_factory.begin() as session:
            new = auth.create_owner_with_key(session, runtime.secret_key, owner_name=args.owner, key_name=args.name)
    finally:
        runtime.close()
    print(f"Created API key {new.api_key.prefix}... for owner {new.owner.id} ({new.owner.name}) "
          f"in the data folder {settings.data_dir} (database {_database_text(settings)}).", file=sys.stderr)
    print(_key_audience(settings), file=sys.stderr)
    print("The key is shown once, keep it:", file=sys.stderr)
    print(new.plaintext)  # the last line of output, for scripts: KEY=$(blockzoo create-key | tail -1)
    return 0


def cmd_list_keys(args: argparse.Namespace) -> int:
    from app.services import keys as keys_service
    from infra.runtime import Runtime

    runtime = Runtime(_settings(args))
    try:
        if runtime.settings.auto_migrate:
            runtime.migrate()
        with runtime.session_factory() as session:
            rows = [(k.id, k.prefix + "...", k.owner_id, k.owner.name, k.name, _when(k.created_at),
                     _when(k.last_used_at), _when(k.revoked_at) if k.revoked_at else "active")
                    for k in keys_service.all_keys(session)]
    finally:
        runtime.close()
    header = ("id", "prefix", "owner", "owner name", "key name", "created", "last used", "revoked")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def cmd_revoke_key(args: argparse.Namespace) -> int:
    from app.services import keys as keys_service
    from infra.runtime import Runtime

    runtime = Runtime(_settings(args))
    try:
        if runtime.settings.auto_migrate:
            runtime.migrate()
        with runtime.session_factory.begin() as session:
            key = keys_service.revoke_any(session, args.key)
            print(f"Revoked API key {key.id} ({key.prefix}..., owner {key.owner_id}): requests with it are "
                  "refused from now on.")
    except keys_service.KeyNotFound as exc:
        return _fail("revoke-key", str(exc))
    finally:
        runtime.close()
    return 0


def _key_audience(settings: Settings) -> str:
    """Which server will accept a key written to this folder's database."""
    from infra import data_lock

    if not settings.is_sqlite:
        return "Every server and worker configured with this database accepts it."
    holder = data_lock.holder_of(settings.data_dir)
    if holder:
        return f"It works now on the server using this folder: {data_lock.describe_holder(holder)}."
    from infra.settings import default_data_dir

    serve = "blockzoo serve" + ("" if settings.data_dir == default_data_dir().resolve()
                                else f" --data-dir {settings.data_dir}")
    return f"No server is using this folder now; `{serve}` will accept it."


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.celery_app import QUEUE, app  # here: the other commands start without loading Celery

    argv = ["worker", f"--loglevel={args.loglevel}", "-Q", args.queues or QUEUE, f"--pool={args.pool}"]
    if args.concurrency:
        argv.append(f"--concurrency={args.concurrency}")
    extra = list(args.celery_args)
    if extra[:1] == ["--"]:  # `blockzoo worker -- --without-gossip ...`
        extra = extra[1:]
    app.worker_main(argv=argv + extra)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    return run_demo(url=args.url, api_key=args.api_key, dataset=args.dataset, count=args.count,
                    max_macs=args.max_macs, seed=args.seed, epochs=args.epochs, kd_batches=args.kd_batches,
                    population=args.population, generations=args.generations)


def cmd_follow(args: argparse.Namespace) -> int:
    import json
    import os

    import httpx

    from app.follow import FollowError, JobProgress, follow_job

    key = args.api_key or os.environ.get("BLOCKZOO_API_KEY")
    if not key:
        return _fail("follow", "no API key: pass --api-key or set BLOCKZOO_API_KEY")
    try:
        with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            with JobProgress(args.job_id, bar=False if args.no_progress else None) as show:
                job = follow_job(client, args.job_id, show, events=not args.poll)
    except FollowError as exc:
        return _fail("follow", str(exc))
    except httpx.HTTPError as exc:
        print(f"blockzoo follow: cannot talk to {args.url}: {exc}; is `blockzoo serve` running?", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        print(f"job {job['id']} ({job['kind']}) {job['state']}: {job.get('error') or job['message']}")
    return 0 if job["state"] == "succeeded" else 1


def add_service_commands(sub: Any) -> None:
    p = sub.add_parser("serve", help="start the HTTP API (and, with the local job backend, its job runner)")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000)")
    _add_data_dir(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("create-key", help="create an owner and print a new API key (last line of output)")
    _add_data_dir(p)
    p.add_argument("--owner", default="default", help="owner name (a new owner is created)")
    p.add_argument("--name", default="default", help="key name")
    p.set_defaults(func=cmd_create_key)

    p = sub.add_parser("list-keys", help="list every API key of this data folder's database (ids, prefixes, owners)")
    _add_data_dir(p)
    p.set_defaults(func=cmd_list_keys)

    p = sub.add_parser("revoke-key", help="revoke an API key at once, by its id (key_...) or prefix (bz_...)")
    _add_data_dir(p)
    p.add_argument("key", help="the key's id or the start of its prefix, as `blockzoo list-keys` shows them")
    p.set_defaults(func=cmd_revoke_key)

    p = sub.add_parser("worker", help="start a Celery worker (JOB_BACKEND=celery)")
    p.add_argument("--pool", default="prefork", help="celery pool: prefork (default), solo, threads")
    p.add_argument("--concurrency", type=int, default=None, help="worker processes (default: CPU count)")
    p.add_argument("--loglevel", default="INFO")
    p.add_argument("--queues", default=None, metavar="Q1,Q2",
                   help="queues to take jobs from (default: blockzoo); e.g. blockzoo,latency-gpu on a worker that "
                        "also measures latency tables for BLOCKZOO_LATENCY_QUEUE=latency-gpu")
    p.add_argument("celery_args", nargs=argparse.REMAINDER, help="extra arguments for `celery worker`, after `--`")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("demo", help="walk through the API of a running server: import, build, score, search")
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--api-key", default=None, help="API key (default: $BLOCKZOO_API_KEY)")
    p.add_argument("--dataset", default=None, help="built-in dataset (default: fashion-mnist, else digits)")
    p.add_argument("--count", type=int, default=5, help="architectures to score")
    p.add_argument("--max-macs", type=int, default=None, help="MACs budget (default: the median of the scored)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=float, default=2, help="reference training epochs (default 2)")
    p.add_argument("--kd-batches", type=int, default=10, help="KD batches T per block (default 10)")
    p.add_argument("--population", type=int, default=8, help="search population (default 8)")
    p.add_argument("--generations", type=int, default=2, help="search generations (default 2)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("follow", help="follow a job of a running server until it ends, with a progress bar",
                       description="Follows GET /v1/jobs/{id}/events (falls back to polling); exits 0 when the "
                                   "job succeeded, 1 otherwise.")
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--api-key", default=None, help="API key (default: $BLOCKZOO_API_KEY)")
    p.add_argument("--json", action="store_true", help="print the final job as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="progress lines instead of a bar")
    p.add_argument("--poll", action="store_true", help="poll GET /v1/jobs/{id} instead of the event stream")
    p.set_defaults(func=cmd_follow)


def main(argv: list[str] | None = None) -> int:
    parser, sub = _base_parser()
    add_service_commands(sub)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
