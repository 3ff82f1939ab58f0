"""Search spaces and architectures as the API sees them (pure: ``blockzoo.space``, no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blockzoo.cost_model import Cost
from blockzoo.search import blockwise_cost_fn
from blockzoo.space import Architecture, ArchitectureError, SearchSpace, get_space, list_spaces

from app.errors import InvalidArchitecture, InvalidSpace, NotFound


def names() -> list[str]:
    return list_spaces()


def by_name(name: str) -> SearchSpace:
    if name not in list_spaces():
        raise NotFound(f"no search space {name!r}; known spaces: {list_spaces()}")
    return get_space(name)


def resolve(space: Any) -> SearchSpace:
    """A preset by name, or a custom space definition (the fields of GET /v1/spaces/{name})."""
    if hasattr(space, "to_core"):  # a request's SpaceDefinition
        space = space.to_core()
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


MAX_CUSTOM_SPACE_ARCHITECTURES = 1000  # per request: a custom space's architectures can be deep


def check_request_size(space: Any, count: int) -> None:
    """A request on a custom space names at most MAX_CUSTOM_SPACE_ARCHITECTURES architectures."""
    if not isinstance(space, str) and count > MAX_CUSTOM_SPACE_ARCHITECTURES:
        raise InvalidArchitecture(
            f"{count} architectures of a custom space; at most {MAX_CUSTOM_SPACE_ARCHITECTURES} per request "
            "(presets take up to 10000): split the request",
            details={"count": count, "max": MAX_CUSTOM_SPACE_ARCHITECTURES})


def costs(space: SearchSpace, archs: Sequence[Architecture], in_channels: int, num_classes: int, *,
          max_layers: int) -> list[Cost]:
    """The analytic cost of each architecture, each distinct block costed once.

    The work is the layers of the distinct blocks; past ``max_layers`` the request is refused
    before any is costed (a custom space can make one request arbitrarily deep).
    """
    blocks = {(m, expand) for arch in archs for m, expand in enumerate(arch.expand)}
    layers = sum(len(expand) for _, expand in blocks)
    if layers > max_layers:
        raise InvalidArchitecture(
            f"these {len(archs)} architectures have {layers} layers in distinct blocks; at most {max_layers} "
            "are costed per request (the server's max_cost_layers): split the request",
            details={"layers": layers, "max_cost_layers": max_layers})
    cost_fn = blockwise_cost_fn(space, in_channels, num_classes)
    return [cost_fn(arch) for arch in archs]
