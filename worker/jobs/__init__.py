"""Built-in job kinds; importing this package registers them."""

from worker.jobs import build_zoo, export, finetune, measure_latency, score, search, selftest, validate  # noqa: F401
