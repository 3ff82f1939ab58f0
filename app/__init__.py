"""BlockZoo HTTP service: the FastAPI app, its services and job backends, and the ``blockzoo`` CLI.

Persistence, storage and settings are shared with the worker and live in ``infra``.
"""
