"""Job liveness: the heartbeat of a running job and the run that owns it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-14 19:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('run_token', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('runner', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('runner')
        batch_op.drop_column('run_token')
        batch_op.drop_column('heartbeat_at')
