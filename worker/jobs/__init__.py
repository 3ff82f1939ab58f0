"""Built-in job kinds; importing this package registers them."""

from worker.jobs import build_zoo, export, score, search, selftest  # noqa: F401
