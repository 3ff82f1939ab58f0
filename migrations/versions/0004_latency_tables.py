"""Latency tables: per-block latency lookup tables, uploaded or measured on a worker's device.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-14 20:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('latency_tables',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner_id', sa.String(length=32), nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('space_name', sa.String(length=64), nullable=False),
    sa.Column('space', sa.JSON(), nullable=False),
    sa.Column('in_channels', sa.Integer(), nullable=False),
    sa.Column('num_classes', sa.Integer(), nullable=False),
    sa.Column('batch_size', sa.Integer(), nullable=False),
    sa.Column('request', sa.JSON(), nullable=True),
    sa.Column('device', sa.String(length=64), nullable=True),
    sa.Column('machine', sa.Text(), nullable=True),
    sa.Column('torch_version', sa.String(length=64), nullable=True),
    sa.Column('blocks', sa.Integer(), nullable=True),
    sa.Column('scale', sa.Float(), nullable=True),
    sa.Column('fastest_ms', sa.Float(), nullable=True),
    sa.Column('largest_ms', sa.Float(), nullable=True),
    sa.Column('path', sa.String(length=512), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_latency_tables_job_id_jobs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['owners.id'], name=op.f('fk_latency_tables_owner_id_owners'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_latency_tables'))
    )
    with op.batch_alter_table('latency_tables', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_latency_tables_owner_id'), ['owner_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('latency_tables', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_latency_tables_owner_id'))

    op.drop_table('latency_tables')
