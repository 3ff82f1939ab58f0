"""Benchmarks of BlockZoo's own code; each writes ``bench/results/<name>.{md,json}``.

Run them from the repository root as modules, e.g. ``.venv/bin/python -m bench.search``.
"""
