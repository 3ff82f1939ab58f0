"""Analytic cost: MACs and parameters of architectures, no zoo and no torch needed."""

from __future__ import annotations

from fastapi import APIRouter
from blockzoo.cost_model import cost

from app.api.deps import OwnerDep
from app.schemas.common import errors
from app.schemas.cost import CostItem, CostRequest, CostResponse
from app.services import spaces as spaces_service

router = APIRouter(prefix="/cost", tags=["cost"])


@router.post("", response_model=CostResponse, responses=errors(401, 422))
def compute_cost(_owner: OwnerDep, body: CostRequest) -> CostResponse:
    """MACs and parameters per architecture, computed analytically in milliseconds."""
    space = spaces_service.resolve(body.space)
    archs = spaces_service.parse_architectures(space, body.architectures)
    items = []
    for arch in archs:
        c = cost(space, arch, in_channels=body.in_channels, num_classes=body.num_classes)
        items.append(CostItem(arch_id=arch.id, macs=c.macs, params=c.params))
    return CostResponse(space=space.name, in_channels=body.in_channels, num_classes=body.num_classes, items=items)
