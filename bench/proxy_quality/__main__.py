"""``python -m bench.proxy_quality``: see the package docstring."""

from .cli import main

main()
