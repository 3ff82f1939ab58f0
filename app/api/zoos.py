"""Zoos, and what a zoo answers: scores and the weights of assembled architectures."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import OwnerDep, RuntimeDep, SessionDep
from app.api.rate_limit import RateLimited
from app.api.links import LinkOwnerDep
from app.schemas.common import Page, PageLimit, PageOffset, errors
from app.schemas.jobs import JobAccepted, JobOut
from app.schemas.scores import ScoreRequest, ScoreResult
from app.schemas.zoos import ZooCreate, ZooCreated, ZooOut
from app.services import exports as exports_service
from app.services import scores as scores_service
from app.services import zoos as zoos_service
from app.services.uploads import receive_upload

router = APIRouter(prefix="/zoos", tags=["zoos"])

UPLOAD_BODY_WEIGHTS = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary", "examples": ["reference.safetensors"],
                         "description": "safetensors state dict of the space's reference architecture."}}},
        },
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                     "example": "(raw safetensors bytes)"},
    },
}

ZooId = Annotated[str, Path(examples=["zoo_5f0c1e9a2b7d4c31a8e6"])]
ArchId = Annotated[str, Path(examples=["d42314-e6642.a8.442.6.888a"], description="Canonical architecture id.")]


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=ZooCreated, responses=errors(401, 404, 422, 429),
             dependencies=[RateLimited])
def create_zoo(owner: OwnerDep, session: SessionDep, body: ZooCreate) -> ZooCreated:
    """Create a zoo: a `build_zoo` job trains the reference and, for `eager`, distils every block.

    A `lazy` zoo is ready once its reference is trained; blocks are distilled the first time an
    architecture needs them. Poll the returned job.
    """
    zoo, job = zoos_service.create(session, owner, body)
    return ZooCreated(zoo=ZooOut(**zoos_service.view(session, zoo)), job=JobOut.model_validate(job) if job else None)


@router.put("/{zoo_id}/reference", status_code=status.HTTP_202_ACCEPTED, response_model=ZooCreated,
            responses=errors(400, 401, 404, 409, 413, 429), openapi_extra={"requestBody": UPLOAD_BODY_WEIGHTS},
            dependencies=[RateLimited])
async def upload_reference(request: Request, owner: OwnerDep, session: SessionDep, runtime: RuntimeDep,
                           zoo_id: ZooId,
                           filename: Annotated[str | None, Query(description="Raw body: the file's name.")] = None,
                           ) -> ZooCreated:
    """Upload the reference weights of a zoo created with `"reference": {"weights_upload": true}`.

    The file (multipart field `file`, or a raw body) is a safetensors state dict of
    `blockzoo.build_network(space, space.reference, in_channels, num_classes)`. Starts the build
    job (which skips training); weights of the wrong shapes fail that job with the reason.
    """
    upload = await receive_upload(request, runtime.storage, runtime.settings.max_upload_bytes)
    zoo, job = await run_in_threadpool(zoos_service.attach_reference, session, runtime, owner, zoo_id, upload)
    return ZooCreated(zoo=ZooOut(**zoos_service.view(session, zoo)), job=JobOut.model_validate(job))


@router.post("/{zoo_id}/resume", status_code=status.HTTP_202_ACCEPTED, response_model=ZooCreated,
             responses=errors(401, 404, 409, 429))
def resume_zoo(owner: OwnerDep, session: SessionDep, zoo_id: ZooId) -> ZooCreated:
    """Resume (retry) a failed or cancelled build from what is on disk.

    The trained reference, a reference checkpoint and every distilled block are kept: the new
    build job trains and distils only what is missing, and reports the reference metrics of the
    training that made it. 409 unless the zoo is `failed`.
    """
    zoo, job = zoos_service.resume(session, owner, zoo_id)
    return ZooCreated(zoo=ZooOut(**zoos_service.view(session, zoo)), job=JobOut.model_validate(job))


@router.get("", response_model=Page[ZooOut], responses=errors(401))
def list_zoos(
    owner: OwnerDep, session: SessionDep,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[ZooOut]:
    """Your zoos, newest first."""
    items, total = zoos_service.list_page(session, owner, limit, offset)
    return Page(items=[ZooOut(**zoos_service.view(session, z)) for z in items], total=total, limit=limit,
                offset=offset)


@router.get("/{zoo_id}", response_model=ZooOut, responses=errors(401, 404))
def get_zoo(owner: OwnerDep, session: SessionDep, zoo_id: ZooId) -> ZooOut:
    """One zoo: state (building|ready|failed), recipes, reference, blocks stored."""
    return ZooOut(**zoos_service.view(session, zoos_service.get(session, owner, zoo_id)))


@router.delete("/{zoo_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=errors(401, 404, 409))
def delete_zoo(owner: OwnerDep, session: SessionDep, runtime: RuntimeDep, zoo_id: ZooId) -> Response:
    """Delete a zoo, its blocks, scores and files (409 while it has unfinished jobs)."""
    zoos_service.delete(session, runtime, owner, zoo_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{zoo_id}/scores", response_model=ScoreResult, tags=["scores"],
             responses={202: {"model": JobAccepted, "description": "Still computing: poll the job."},
                        **errors(401, 404, 409, 422, 429)}, dependencies=[RateLimited])
async def score_architectures(owner: OwnerDep, session: SessionDep, runtime: RuntimeDep, zoo_id: ZooId,
                              body: ScoreRequest) -> ScoreResult | JSONResponse:
    """Proxy accuracy, MACs and params (and requested metrics) per architecture.

    Missing blocks are distilled on demand (lazy zoo). Answers 200 when done within `wait`
    seconds, else 202 with a job whose `result`, once succeeded, is this same body. Scores are
    cached per (zoo, architecture, metric): asking again is instant.
    """
    code, outcome = await scores_service.score(session, runtime, owner, zoo_id, body)
    if code == 200:
        return ScoreResult.model_validate(outcome)
    job = JobOut.model_validate(outcome)
    return JSONResponse(JobAccepted(job=job).model_dump(mode="json"), status_code=202,
                        headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("/{zoo_id}/architectures/{arch_id}/weights", tags=["zoos"], response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "The assembled model as the requested format."},
                       202: {"model": JobAccepted, "description": "Still exporting: poll the job."},
                       **errors(401, 404, 409, 422, 429)})
async def download_weights(owner: LinkOwnerDep, session: SessionDep, runtime: RuntimeDep, zoo_id: ZooId, arch_id: ArchId,
                           wait: Annotated[float, Query(ge=0, le=3600, allow_inf_nan=False,
                                                        description="Seconds to wait for the export.")] = 30.0,
                           file_format: Annotated[Literal["safetensors", "pt2", "onnx"], Query(
                               alias="format", description="safetensors: weights for blockzoo.build_network; pt2 "
                               "(torch.export) or onnx: the whole model, preprocessing inside, for plain torch or "
                               "onnxruntime (docs/deploy-model.md).")] = "safetensors",
                           ) -> Response:
    """The assembled architecture (reference prefix and head, distilled blocks, recalibrated BN) as a file.

    `format=safetensors` (default): a state dict of `blockzoo.build_network(space, arch,
    in_channels, num_classes)`; its metadata holds the space, architecture, in_channels and
    num_classes. `format=pt2` / `format=onnx`: a model from uint8 images (N x H x W x C, the
    dataset's image size) to logits with the resize and normalisation inside, loadable with
    `torch.export.load` or onnxruntime alone, checked against the torch model when exported; its
    spec (JSON) is inside the file. Each format is exported once, then served. Opens with the API
    key or a signed link (`POST /v1/links`).
    """
    zoo, canonical, outcome = await exports_service.weights(session, runtime, owner, zoo_id, arch_id, wait,
                                                            file_format)
    if isinstance(outcome, FilePath):
        return FileResponse(outcome, media_type="application/octet-stream", filename=f"{canonical}.{file_format}",
                            headers={"X-BlockZoo-Space": zoo.space_name, "X-BlockZoo-Arch": canonical,
                                     "X-BlockZoo-In-Channels": str(zoo.in_channels),
                                     "X-BlockZoo-Num-Classes": str(zoo.num_classes)})
    job = JobOut.model_validate(outcome)
    return JSONResponse(JobAccepted(job=job).model_dump(mode="json"), status_code=202,
                        headers={"Location": f"/v1/jobs/{job.id}"})
