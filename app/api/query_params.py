"""Unknown query parameters are a 422 on every API route, naming the ones the route accepts.

FastAPI ignores query parameters a route does not declare, so a misspelt or unsupported filter
(``GET /v1/jobs?state=running``) silently answers as if it were absent. This app-wide
dependency compares the request's query parameters with those the route (and its
dependencies) declare, for every route of the OpenAPI document; a route that reads a query
parameter must declare it (which also documents it). Pages outside the API (the dashboard,
``/docs`` and its OAuth redirect) are left alone.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

_declared_by_route: dict[int, frozenset[str]] = {}


def _declared(dependant: Dependant) -> frozenset[str]:
    names: set[str] = set()
    todo = [dependant]
    while todo:
        current = todo.pop()
        names.update(field.alias for field in current.query_params)
        todo.extend(current.dependencies)
    return frozenset(names)


def reject_unknown_query_params(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema:
        return
    accepted = _declared_by_route.get(id(route))
    if accepted is None:
        accepted = _declared_by_route.setdefault(id(route), _declared(route.dependant))
    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in accepted]
    if unknown:
        hint = f"accepted: {', '.join(sorted(accepted))}" if accepted else "this route takes no query parameters"
        raise RequestValidationError([
            {"type": "extra_forbidden", "loc": ("query", name), "msg": f"unknown query parameter; {hint}",
             "input": request.query_params.get(name)} for name in unknown
        ])
