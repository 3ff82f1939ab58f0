"""Built-in job kinds; importing this package registers them."""

from worker.jobs import selftest  # noqa: F401
