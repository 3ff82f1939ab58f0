"""Search spaces: the presets an architecture can be drawn from."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from blockzoo.space import Architecture, SearchSpace

from app.api.deps import OwnerDep
from app.schemas.common import Page, PageLimit, PageOffset, errors
from app.schemas.spaces import ArchitectureOut, SpaceDetail, SpaceSummary
from app.services import spaces as spaces_service

router = APIRouter(prefix="/spaces", tags=["spaces"])


def _summary(space: SearchSpace) -> dict:
    return dict(name=space.name, description=space.description, input_size=space.input_size,
                num_stages=space.num_stages, size=space.size, blocks_per_stage=len(space.stage_blocks(0)))


def _arch(arch: Architecture) -> ArchitectureOut:
    return ArchitectureOut(id=arch.id, config=arch.to_dict())


@router.get("", response_model=Page[SpaceSummary], responses=errors(401))
def list_spaces(
    _owner: OwnerDep,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[SpaceSummary]:
    """The search-space presets."""
    names = spaces_service.names()
    items = [SpaceSummary(**_summary(spaces_service.by_name(n))) for n in names[offset:offset + limit]]
    return Page(items=items, total=len(names), limit=limit, offset=offset)


@router.get("/{name}", response_model=SpaceDetail, responses=errors(401, 404))
def get_space(_owner: OwnerDep, name: Annotated[str, Path(examples=["mbv3-tiny"])]) -> SpaceDetail:
    """One space: its full definition, choices, and its largest and smallest architectures."""
    space = spaces_service.by_name(name)
    return SpaceDetail(
        **_summary(space), definition=space.to_dict(), depth_choices=list(space.depth_choices),
        expand_choices=list(space.expand_choices), reference=_arch(space.reference), smallest=_arch(space.smallest),
    )
