"""Shared infrastructure of the service: settings, database, repositories, storage, runtime.

Used by the worker and by the HTTP API; imports the ML core (``blockzoo``) and neither of them.
"""
