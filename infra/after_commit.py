"""Work that must wait until the transaction commits: enqueue a job, delete a zoo's files.

A request registers the action on its session; it runs once the session commits, and is
dropped if the session rolls back, so a worker never looks for a row that was not committed
and no file goes before its row does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("blockzoo.db")

_PENDING = "blockzoo_after_commit"

Action = Callable[[], None]


def on_commit(session: Session, action: Action) -> None:
    """Run ``action`` once ``session`` commits (never if it rolls back)."""
    session.info.setdefault(_PENDING, []).append(action)


def pending(session: Session) -> int:
    """How many actions wait for this session's commit."""
    return len(session.info.get(_PENDING, ()))


def install(factory: sessionmaker[Session]) -> None:
    event.listen(factory, "after_commit", _run_pending)
    event.listen(factory, "after_rollback", lambda session: session.info.pop(_PENDING, None))


def _run_pending(session: Session) -> None:
    # The session is still inside its commit: an action that needs the database opens its own.
    for action in session.info.pop(_PENDING, []):
        try:
            action()
        except Exception:  # the commit stands; one failed action must not hide the others
            log.exception("an after-commit action failed")
