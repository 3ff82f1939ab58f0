"""Search spaces and architectures as the API sees them (pure: ``blockzoo.space``, no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blockzoo.space import Architecture, ArchitectureError, SearchSpace, get_space, list_spaces

from app.errors import InvalidArchitecture, InvalidSpace, NotFound


def names() -> list[str]:
    return list_spaces()


def by_name(name: str) -> SearchSpace:
    if name not in list_spaces():
        raise NotFound(f"no search space {name!r}; known spaces: {list_spaces()}")
    return get_space(name)


def resolve(space: str | dict[str, Any]) -> SearchSpace:
    """A preset by name, or a custom space definition (the fields of GET /v1/spaces/{name})."""
    try:
        return get_space(space) if isinstance(space, str) else SearchSpace.from_dict(space)
    except ArchitectureError as exc:
        raise InvalidSpace(str(exc)) from None


def to_plain(arch: Any) -> Any:
    """Request items (pydantic models or strings) as the plain values ``space.parse`` reads."""
    if hasattr(arch, "model_dump"):
        data = arch.model_dump()
        if data.get("depths") is None:
            data.pop("depths", None)
        return data
    return arch


def parse_architectures(space: SearchSpace, items: Sequence[Any], field: str = "architectures") -> list[Architecture]:
    archs = []
    for index, item in enumerate(items):
        try:
            archs.append(space.parse(to_plain(item)))
        except ArchitectureError as exc:
            raise InvalidArchitecture(
                f"{field}[{index}]: {exc}", details={"index": index, "space": space.name}
            ) from None
    return archs


def parse_architecture(space: SearchSpace, arch: Any, field: str = "architecture") -> Architecture:
    """One architecture (an id string or a request's config object); 422 naming what is wrong."""
    try:
        return space.parse(to_plain(arch))
    except ArchitectureError as exc:
        where = f"{field} {arch!r}" if isinstance(arch, str) else field
        raise InvalidArchitecture(f"{where}: {exc}", details={"space": space.name}) from None
