"""Validations: can the scores be trusted on this zoo's data? Train a sample and see how each signal ranks it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import FileResponse

from app.api.deps import OwnerDep, RuntimeDep, SessionDep
from app.schemas.common import Page, errors
from app.schemas.validations import ValidationCreate, ValidationOut
from app.services import validations as validations_service

router = APIRouter(tags=["validations"])

ValidationId = Annotated[str, Path(examples=["val_2b4d6f8a0c1e3a5c7e9b"])]


@router.post("/zoos/{zoo_id}/validations", status_code=status.HTTP_202_ACCEPTED, response_model=ValidationOut,
             responses=errors(401, 404, 409, 422))
def create_validation(owner: OwnerDep, session: SessionDep,
                      zoo_id: Annotated[str, Path(examples=["zoo_5f0c1e9a2b7d4c31a8e6"])],
                      body: ValidationCreate) -> ValidationOut:
    """Train `k` of the zoo's architectures (`seeds` times each) on its dataset and report how well
    every signal — the proxy, held-out accuracy, KD loss, each zero-cost baseline, MACs, params —
    ranks them: Spearman ρ and Kendall τ with bootstrap intervals, paired differences with the
    proxy, the seed-to-seed ceiling and a verdict that claims no more than the intervals allow.

    Each (architecture, seed) is its own `validation_train` job, so every worker shares the work;
    `job` is the `validate` job, queued after them, whose progress is trainings done / total (with
    an ETA). Poll `GET /v1/validations/{id}`; a bad design, band or recipe is a 422 saying what is
    accepted.
    """
    validation = validations_service.create(session, owner, zoo_id, body)
    return ValidationOut(**validations_service.view(session, validation))


@router.get("/validations", response_model=Page[ValidationOut], responses=errors(401))
def list_validations(
    owner: OwnerDep, session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    zoo_id: str | None = None,
) -> Page[ValidationOut]:
    """Your validations, newest first (`zoo_id` filters); without their trainings and reports."""
    items, total = validations_service.list_page(session, owner, limit, offset, zoo_id)
    return Page(items=[ValidationOut(**validations_service.view(session, v, full=False)) for v in items],
                total=total, limit=limit, offset=offset)


@router.get("/validations/{validation_id}", response_model=ValidationOut, responses=errors(401, 404))
def get_validation(owner: OwnerDep, session: SessionDep, validation_id: ValidationId) -> ValidationOut:
    """A validation: state, progress, every training's result so far and, once succeeded, the report."""
    return ValidationOut(**validations_service.view(session, validations_service.get(session, owner, validation_id)))


@router.get("/validations/{validation_id}/plot.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The plot (PNG)."},
                       **errors(401, 404, 409)})
def plot_validation(owner: OwnerDep, session: SessionDep, runtime: RuntimeDep,
                    validation_id: ValidationId) -> Response:
    """The report as a picture: ρ of every signal with its interval (bars), and per signal the
    trained accuracy of each architecture against the signal's value. 409 until it succeeded."""
    path = validations_service.plot_file(session, runtime, owner, validation_id)
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.post("/validations/{validation_id}/cancel", response_model=ValidationOut, responses=errors(401, 404, 409))
def cancel_validation(owner: OwnerDep, session: SessionDep, validation_id: ValidationId) -> ValidationOut:
    """Cancel the validation: queued trainings at once, running ones at their next epoch (their
    checkpoints and finished trainings stay in the zoo's cache, so a new validation reuses them)."""
    validation = validations_service.cancel(session, owner, validation_id)
    return ValidationOut(**validations_service.view(session, validation))


@router.delete("/validations/{validation_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=errors(401, 404, 409))
def delete_validation(owner: OwnerDep, session: SessionDep, runtime: RuntimeDep,
                      validation_id: ValidationId) -> Response:
    """Delete a validation and its plot (409 while it runs: cancel it first)."""
    validations_service.delete(session, runtime, owner, validation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
