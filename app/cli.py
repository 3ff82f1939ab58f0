"""The ``blockzoo`` command: the core's commands plus ``serve``, ``create-key``, ``worker``, ``demo``.

The core (``blockzoo/cli.py``) owns the parser and its ML commands; this module adds the
service commands to it, so one ``blockzoo`` entry point covers both.
"""

from __future__ import annotations

import argparse
import logging
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
                   help="data directory (default: $BLOCKZOO_DATA_DIR or ./data)")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app
    from app.services import auth
    from infra.runtime import Runtime

    settings = _settings(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin chatter is not news
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
          f"database: {'sqlite' if settings.is_sqlite else 'external'}; jobs: {settings.job_backend})", flush=True)
    uvicorn.run(create_app(settings.model_copy(update={"auto_migrate": False})), host=settings.host,
                port=settings.port, log_level=settings.log_level)
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
    print(f"Created API key {new.api_key.prefix}... for owner {new.owner.id} ({new.owner.name}); "
          "it is shown once, keep it:", file=sys.stderr)
    print(new.plaintext)  # the last line of output, for scripts: KEY=$(blockzoo create-key | tail -1)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.celery_app import QUEUE, app  # here: the other commands start without loading Celery

    argv = ["worker", f"--loglevel={args.loglevel}", "-Q", QUEUE, f"--pool={args.pool}"]
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

    p = sub.add_parser("worker", help="start a Celery worker (JOB_BACKEND=celery)")
    p.add_argument("--pool", default="prefork", help="celery pool: prefork (default), solo, threads")
    p.add_argument("--concurrency", type=int, default=None, help="worker processes (default: CPU count)")
    p.add_argument("--loglevel", default="INFO")
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
