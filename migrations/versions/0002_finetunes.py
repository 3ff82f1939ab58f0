"""Fine-tunes: one architecture of a zoo trained from zoo, remap or scratch initialisation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 21:35:34.465332
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('finetunes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner_id', sa.String(length=32), nullable=False),
    sa.Column('zoo_id', sa.String(length=32), nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=True),
    sa.Column('arch_id', sa.String(length=128), nullable=False),
    sa.Column('init', sa.String(length=16), nullable=False),
    sa.Column('recipe', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('path', sa.String(length=512), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_finetunes_job_id_jobs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['owners.id'], name=op.f('fk_finetunes_owner_id_owners'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['zoo_id'], ['zoos.id'], name=op.f('fk_finetunes_zoo_id_zoos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_finetunes'))
    )
    with op.batch_alter_table('finetunes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_finetunes_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_finetunes_zoo_id'), ['zoo_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('finetunes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_finetunes_zoo_id'))
        batch_op.drop_index(batch_op.f('ix_finetunes_owner_id'))

    op.drop_table('finetunes')
