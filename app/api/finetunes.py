"""Fine-tunes: train a picked architecture from its zoo weights (or remap / scratch) and download it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from fastapi.responses import FileResponse

from app.api.deps import OwnerDep, RuntimeDep, SessionDep
from app.api.rate_limit import RateLimited
from app.api.links import LinkOwnerDep
from app.schemas.common import Page, PageLimit, PageOffset, errors
from app.schemas.finetunes import FinetuneCreate, FinetuneOut
from app.services import finetunes as finetunes_service

router = APIRouter(tags=["finetunes"])

FinetuneId = Annotated[str, Path(examples=["ft_3c9e0d1f2a4b5c6d7e8f"])]


@router.post("/zoos/{zoo_id}/finetunes", status_code=status.HTTP_202_ACCEPTED, response_model=FinetuneOut,
             responses=errors(401, 404, 409, 422, 429), dependencies=[RateLimited])
def create_finetune(owner: OwnerDep, session: SessionDep,
                    zoo_id: Annotated[str, Path(examples=["zoo_5f0c1e9a2b7d4c31a8e6"])],
                    body: FinetuneCreate) -> FinetuneOut:
    """Fine-tune an architecture on the zoo's dataset: a `finetune` job trains it with `recipe`.

    `init` is `zoo` (the paper's: reference prefix and head plus the zoo's distilled blocks,
    distilling missing ones first), `remap` (parameter remapping, no KD) or `scratch`. Poll
    `GET /v1/finetunes/{id}`; the result has the test accuracy before and after, and the weights
    are then at `GET /v1/finetunes/{id}/weights`.
    """
    finetune, _job = finetunes_service.create(session, owner, zoo_id, body)
    return FinetuneOut(**finetunes_service.view(session, finetune))


@router.get("/finetunes", response_model=Page[FinetuneOut], responses=errors(401))
def list_finetunes(
    owner: OwnerDep, session: SessionDep,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
    zoo_id: str | None = None,
) -> Page[FinetuneOut]:
    """Your fine-tunes, newest first (`zoo_id` filters)."""
    items, total = finetunes_service.list_page(session, owner, limit, offset, zoo_id)
    return Page(items=[FinetuneOut(**finetunes_service.view(session, f)) for f in items], total=total, limit=limit,
                offset=offset)


@router.get("/finetunes/{finetune_id}", response_model=FinetuneOut, responses=errors(401, 404))
def get_finetune(owner: OwnerDep, session: SessionDep, finetune_id: FinetuneId) -> FinetuneOut:
    """A fine-tune: state and progress (of its job) and, once succeeded, the accuracies before and after."""
    return FinetuneOut(**finetunes_service.view(session, finetunes_service.get(session, owner, finetune_id)))


@router.delete("/finetunes/{finetune_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=errors(401, 404, 409))
def delete_finetune(owner: OwnerDep, session: SessionDep, runtime: RuntimeDep, finetune_id: FinetuneId) -> Response:
    """Delete a fine-tune and its weights file (409 while its job is queued or running: cancel it first)."""
    finetunes_service.delete(session, runtime, owner, finetune_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/finetunes/{finetune_id}/weights", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "safetensors of the fine-tuned model (load into build_network)."},
                       **errors(401, 404, 409)})
def download_finetune_weights(owner: LinkOwnerDep, session: SessionDep, runtime: RuntimeDep,
                              finetune_id: FinetuneId) -> Response:
    """The fine-tuned weights (409 until the fine-tune succeeded).

    The file is a safetensors state dict of `blockzoo.build_network(space, arch, in_channels,
    num_classes)`; the headers `X-BlockZoo-Space`, `X-BlockZoo-Arch`, `X-BlockZoo-In-Channels`
    and `X-BlockZoo-Num-Classes` say how to build it, `X-BlockZoo-Init` how it started.
    """
    finetune, path = finetunes_service.weights(session, runtime, owner, finetune_id)
    zoo = finetune.zoo
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"{finetune.arch_id}.{finetune.id}.safetensors",
                        headers={"X-BlockZoo-Space": zoo.space_name, "X-BlockZoo-Arch": finetune.arch_id,
                                 "X-BlockZoo-In-Channels": str(zoo.in_channels),
                                 "X-BlockZoo-Num-Classes": str(zoo.num_classes),
                                 "X-BlockZoo-Init": finetune.init})
