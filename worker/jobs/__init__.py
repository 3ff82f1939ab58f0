"""Built-in job kinds; importing this package registers them."""

from worker.jobs import build_zoo, export, finetune, score, search, selftest  # noqa: F401
