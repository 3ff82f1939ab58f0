"""Which database errors mean "the database is unavailable now" (retry later), not "this is wrong".

The API answers those with 503 and ``Retry-After``; a job rides them out with backoff. Any
other database error is a bug or a bad value and is reported as such.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

# Seconds a client is asked to wait before retrying while the database or the broker is away.
RETRY_AFTER_S = 5


def is_unavailable(error: BaseException) -> bool:
    """True for a lost or refused connection, a pool timeout, or a locked SQLite database."""
    if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                          sa_exc.TimeoutError)):
        return True
    return isinstance(error, sa_exc.DBAPIError) and bool(error.connection_invalidated)


def first_line(error: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's statement and background-link trailer."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return text[0][:300] if text else type(original).__name__
