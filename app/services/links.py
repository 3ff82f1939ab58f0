"""Signed, expiring download links: plots and weights a browser opens without an API key.

A link is the resource's path plus ``owner``, ``exp`` (Unix seconds) and ``sig``, an HMAC-SHA256
with the server's secret key over the owner, the path, every other query parameter and the
expiry. It grants exactly that GET, as that owner, until it expires; changing any part of it
breaks the signature. Only the downloads in :data:`SIGNABLE` accept links.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit

from sqlalchemy.orm import Session

from app.errors import ServiceError, Unauthorized
from infra.db.models import Owner
from infra.repositories import owners as owners_repo

SIGNABLE = (
    re.compile(r"/v1/searches/[^/?#]+/plot\.png"),
    re.compile(r"/v1/zoos/[^/?#]+/architectures/[^/?#]+/weights"),
    re.compile(r"/v1/finetunes/[^/?#]+/weights"),
)
LINK_PARAMS = ("owner", "exp", "sig")
MAX_LIFETIME_S = 7 * 24 * 3600
DEFAULT_LIFETIME_S = 3600


class UnsignablePath(ServiceError):
    """A path that no signed link may open."""

    status_code, code = 422, "validation_error"


def _message(owner_id: str, path: str, params: Mapping[str, str], expires: int) -> bytes:
    query = urlencode(sorted((k, v) for k, v in params.items() if k not in LINK_PARAMS))
    return f"{owner_id}\n{path}\n{query}\n{expires}".encode()


def signature(secret_key: str, owner_id: str, path: str, params: Mapping[str, str], expires: int) -> str:
    return hmac.new(secret_key.encode(), _message(owner_id, path, params, expires), hashlib.sha256).hexdigest()


def make_link(secret_key: str, owner: Owner, target: str, lifetime_s: int = DEFAULT_LIFETIME_S,
              now: float | None = None) -> tuple[str, datetime]:
    """(the signed path with its query, when it expires) for ``target`` (a path, optionally with a query)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not any(p.fullmatch(parts.path) for p in SIGNABLE):
        raise UnsignablePath(f"path {target!r} cannot be signed; signed links open these downloads: "
                           "/v1/searches/{id}/plot.png, /v1/zoos/{id}/architectures/{arch}/weights, "
                           "/v1/finetunes/{id}/weights")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if set(params) & set(LINK_PARAMS):
        raise UnsignablePath(f"path {target!r}: the query parameters {', '.join(LINK_PARAMS)} are the link's own")
    expires = int((time.time() if now is None else now) + lifetime_s)
    sig = signature(secret_key, owner.id, parts.path, params, expires)
    query = urlencode({**params, "owner": owner.id, "exp": expires, "sig": sig})
    return f"{parts.path}?{query}", datetime.fromtimestamp(expires, timezone.utc)


def owner_of_link(session: Session, secret_key: str, path: str, params: Mapping[str, str],
                  now: float | None = None) -> Owner:
    """The owner a signed request acts as; 401 when the link is malformed, forged or expired."""
    owner_id, exp, sig = (params.get(k, "") for k in LINK_PARAMS)
    if not (owner_id and exp.isdigit() and sig):
        raise Unauthorized("malformed signed link: it needs owner, exp and sig; get one from POST /v1/links")
    want = signature(secret_key, owner_id, path, params, int(exp))
    if not hmac.compare_digest(want, sig):
        raise Unauthorized("invalid signed link (it was changed, or signed by another server); "
                           "get a new one from POST /v1/links")
    if int(exp) < (time.time() if now is None else now):
        raise Unauthorized("this signed link has expired; get a new one from POST /v1/links")
    owner = owners_repo.get_owner(session, owner_id)
    if owner is None:
        raise Unauthorized("the owner of this signed link no longer exists")
    return owner
