# syntax=docker/dockerfile:1
#
# BlockZoo images: one file, two targets (docker-compose.yml builds both).
#
#   api     the HTTP API, the migrations and the `blockzoo` CLI; no torch: the API process never
#           imports it (model work runs in jobs, on workers)
#   worker  the same code plus torch and torchvision; by default the CUDA-enabled wheels from PyPI
#           (they carry the CUDA runtime; the host needs only the NVIDIA driver and the NVIDIA
#           Container Toolkit). CPU-only and much smaller:
#             --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
#
#   docker build --target api    -t blockzoo-api .
#   docker build --target worker -t blockzoo-worker .
#
# Layers from the least to the most often changing: the Python base and the user, the pinned
# dependencies (their own layers, rebuilt only when the dependency list in pyproject.toml
# changes; torch in a layer of its own), then the source. Both images run as the unprivileged
# user `blockzoo` (uid and gid 10001, numeric in USER so that runtimes can check it is not root)
# and keep all state in /data (a volume).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# base: Python, an empty virtual environment, the user and the data directory.
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    BLOCKZOO_DATA_DIR=/data
# /data is created here, owned by the user, so that a named volume mounted there starts out
# writable by it (Docker copies the mount point's ownership into a new, empty named volume).
RUN python -m venv /opt/venv \
    && groupadd --system --gid 10001 blockzoo \
    && useradd --system --uid 10001 --gid blockzoo --create-home --shell /usr/sbin/nologin blockzoo \
    && mkdir /data \
    && chown blockzoo:blockzoo /data
WORKDIR /app

# ---------------------------------------------------------------------------------------------
# requirements: pyproject.toml's [project].dependencies split in two files, so that each image
# installs exactly what it needs without a second, hand-kept dependency list:
#   torch.txt  the torch and torchvision pins (worker only)
#   api.txt    everything else (both images)
# A later COPY of a file whose content did not change keeps the install layer after it cached,
# so editing pyproject.toml does not reinstall torch unless its pin changed.
FROM base AS requirements
WORKDIR /requirements
COPY pyproject.toml ./
RUN python - <<'EOF'
import re
import tomllib

WORKER_ONLY = {"torch", "torchvision"}
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
name = lambda spec: re.match(r"[A-Za-z0-9._-]+", spec).group(0).lower()
torch = [d for d in deps if name(d) in WORKER_ONLY]
assert len(torch) == len(WORKER_ONLY), f"pyproject.toml must pin {sorted(WORKER_ONLY)}: {torch}"
open("torch.txt", "w").write("\n".join(torch) + "\n")
open("api.txt", "w").write("\n".join(d for d in deps if name(d) not in WORKER_ONLY) + "\n")
EOF

# ---------------------------------------------------------------------------------------------
# api: no torch.
FROM base AS api
COPY --from=requirements /requirements/api.txt /tmp/requirements/api.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -r /tmp/requirements/api.txt
# The source, then the project itself without dependencies. Editable, so that the code runs
# from /app, where alembic.ini and migrations/ are (the migrate service and `blockzoo serve`
# find them relative to the code). Owned by root: the runtime user cannot change it.
COPY . /app
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps -e /app
USER 10001:10001
EXPOSE 8000
CMD ["blockzoo", "serve", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------------------------
# worker: torch first (the big, rarely changing layer), then the rest, then the source.
FROM base AS worker
# PyPI's Linux x86_64 wheels of torch are the CUDA-enabled build; override for CPU-only wheels.
ARG TORCH_INDEX_URL=https://pypi.org/simple
COPY --from=requirements /requirements/torch.txt /tmp/requirements/torch.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --index-url "${TORCH_INDEX_URL}" -r /tmp/requirements/torch.txt
COPY --from=requirements /requirements/api.txt /tmp/requirements/api.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -r /tmp/requirements/api.txt
COPY . /app
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps -e /app
USER 10001:10001
# One prefork child at a time (one GPU); BLOCKZOO_WORKER_MAX_TASKS_PER_CHILD=1 recycles it
# after every job, which hands its GPU memory back.
CMD ["blockzoo", "worker", "--concurrency", "1"]
