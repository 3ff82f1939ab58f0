"""API keys: list yours, make another, revoke one (at once: the next request with it is a 401)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from app.api.deps import OwnerDep, RuntimeDep, SessionDep
from app.schemas.common import errors
from app.schemas.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from app.services import keys as keys_service

router = APIRouter(prefix="/keys", tags=["keys"])

KeyId = Annotated[str, Path(examples=["key_2b7d4c31a8e65f0c1e9a"])]


@router.get("", response_model=list[ApiKeyOut], responses=errors(401))
def list_keys(owner: OwnerDep, session: SessionDep) -> list[ApiKeyOut]:
    """Your API keys, newest first, revoked ones included (the keys themselves are never shown again)."""
    return [ApiKeyOut.model_validate(k) for k in keys_service.list_keys(session, owner)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated, responses=errors(401, 422))
def create_key(owner: OwnerDep, session: SessionDep, runtime: RuntimeDep, body: ApiKeyCreate) -> ApiKeyCreated:
    """Another key for you (to rotate: create one, switch to it, revoke the old). Shown once."""
    new = keys_service.create(session, runtime.secret_key, owner, body.name)
    return ApiKeyCreated(**ApiKeyOut.model_validate(new.api_key).model_dump(), key=new.plaintext)


@router.post("/{key_id}/revoke", response_model=ApiKeyOut, responses=errors(401, 404))
def revoke_key(owner: OwnerDep, session: SessionDep, key_id: KeyId) -> ApiKeyOut:
    """Revoke one of your keys at once (the key in this request too, if you name it); idempotent."""
    return ApiKeyOut.model_validate(keys_service.revoke(session, owner, key_id))
