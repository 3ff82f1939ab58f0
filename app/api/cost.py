"""Analytic cost: MACs and parameters of architectures, no zoo and no torch needed."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import OwnerDep, RuntimeDep
from app.api.rate_limit import RateLimited
from app.schemas.common import errors
from app.schemas.cost import CostItem, CostRequest, CostResponse
from app.services import spaces as spaces_service

router = APIRouter(prefix="/cost", tags=["cost"])


@router.post("", response_model=CostResponse, responses=errors(401, 422, 429), dependencies=[RateLimited])
def compute_cost(_owner: OwnerDep, runtime: RuntimeDep, body: CostRequest) -> CostResponse:
    """MACs and parameters per architecture, computed analytically in milliseconds.

    A custom space takes at most 1,000 architectures per request, and a request may cost at most
    `max_cost_layers` layers of distinct blocks (422 above; every preset architecture together
    stays below it): split larger custom-space requests.
    """
    space = spaces_service.resolve(body.space)
    spaces_service.check_request_size(body.space, len(body.architectures))
    archs = spaces_service.parse_architectures(space, body.architectures)
    costs = spaces_service.costs(space, archs, body.in_channels, body.num_classes,
                                 max_layers=runtime.settings.max_cost_layers)
    items = [CostItem(arch_id=arch.id, architecture=arch.to_dict(), macs=c.macs, params=c.params)
             for arch, c in zip(archs, costs)]
    return CostResponse(space=space.name, in_channels=body.in_channels, num_classes=body.num_classes, items=items)
