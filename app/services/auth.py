"""API keys, Polar-style: ``bz_`` + random secret; stored as an HMAC-SHA256 digest.

Only the digest and a short readable prefix (``bz_Ab3dE9fG``) are kept, so a database leak
does not leak usable keys, and a key is shown exactly once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from app.errors import Unauthorized
from infra.db.base import new_id, utcnow
from infra.db.models import ApiKey, Owner
from infra.repositories import owners as owners_repo

KEY_PREFIX = "bz_"
_SHOWN_CHARS = 11  # "bz_" + 8 characters identify a key in listings and logs
_LAST_USED_RESOLUTION = timedelta(minutes=1)  # avoid a write on every request


@dataclass(frozen=True)
class NewKey:
    owner: Owner
    api_key: ApiKey
    plaintext: str


def digest(secret_key: str, key: str) -> str:
    return hmac.new(secret_key.encode(), key.encode(), hashlib.sha256).hexdigest()


def create_owner_with_key(session: Session, secret_key: str, owner_name: str = "default",
                          key_name: str = "default") -> NewKey:
    """A new owner and its first key; the caller commits (the key is usable once it did)."""
    owner = owners_repo.add_owner(session, Owner(id=new_id("own"), name=owner_name))
    return add_key(session, secret_key, owner, key_name)


def add_key(session: Session, secret_key: str, owner: Owner, key_name: str = "default") -> NewKey:
    """A new key for an existing owner; the caller commits (the key is usable once it did)."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = owners_repo.add_api_key(
        session,
        ApiKey(id=new_id("key"), owner_id=owner.id, name=key_name, prefix=plaintext[:_SHOWN_CHARS],
               digest=digest(secret_key, plaintext)),
    )
    return NewKey(owner, key, plaintext)


def authenticate(session: Session, secret_key: str, authorization: str | None) -> Owner:
    if not authorization:
        raise Unauthorized("missing API key; send the header 'Authorization: Bearer <key>' "
                           "(create one with `blockzoo create-key`)")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("malformed Authorization header; expected 'Bearer <key>'")
    if not token.startswith(KEY_PREFIX):
        raise Unauthorized(f"invalid API key; BlockZoo keys start with {KEY_PREFIX!r}")
    key = owners_repo.api_key_by_digest(session, digest(secret_key, token))
    if key is None:
        raise Unauthorized("invalid or revoked API key")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        owners_repo.record_key_use(key, now)
    return key.owner


def has_any_key(session: Session) -> bool:
    return owners_repo.any_api_key(session)
