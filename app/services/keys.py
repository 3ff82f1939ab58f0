"""The caller's own API keys: list them, make another, revoke one (owner-scoped: 404 for others')."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.errors import NotFound
from app.services import auth
from infra.db.base import utcnow
from infra.db.models import ApiKey, Owner
from infra.repositories import api_keys as keys_repo


def list_keys(session: Session, owner: Owner) -> list[ApiKey]:
    return keys_repo.for_owner(session, owner.id)


def create(session: Session, secret_key: str, owner: Owner, name: str) -> auth.NewKey:
    """Another key for the same owner (rotation: make the new one, switch, revoke the old)."""
    new = auth.add_key(session, secret_key, owner, name)
    session.flush()  # created_at as stored
    return new


def revoke(session: Session, owner: Owner, key_id: str) -> ApiKey:
    """Revoke one of the owner's keys, at once; revoking a revoked key changes nothing."""
    key = keys_repo.get_for_owner(session, owner.id, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id!r}; GET /v1/keys lists yours")
    keys_repo.revoke(key, utcnow())
    session.flush()
    return key


# The operator's view (the `blockzoo list-keys` / `revoke-key` commands): every owner's keys.


def all_keys(session: Session) -> list[ApiKey]:
    return keys_repo.all_keys(session)


class KeyNotFound(LookupError):
    """No key, or more than one, answers to an id or prefix (the message says which)."""


def revoke_any(session: Session, id_or_prefix: str) -> ApiKey:
    """Revoke the one key whose id is ``id_or_prefix`` or whose prefix starts with it."""
    if not id_or_prefix.strip():
        raise KeyNotFound("name a key by its id (key_...) or its prefix (bz_...); `blockzoo list-keys` shows them")
    found = keys_repo.matching(session, id_or_prefix)
    if not found:
        raise KeyNotFound(f"no API key {id_or_prefix!r}; `blockzoo list-keys` shows the keys")
    if len(found) > 1:
        raise KeyNotFound(f"{len(found)} keys match {id_or_prefix!r} ({', '.join(k.id for k in found)}); "
                          "name one by its id")
    keys_repo.revoke(found[0], utcnow())
    return found[0]
