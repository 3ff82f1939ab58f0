"""Business logic, one module per resource, between the routes and the repositories.

The request owns the transaction (``app.api.deps.get_session`` commits when the route returns):
services flush, never commit, except before waiting on a job they submitted.
"""
